<?php

/**
 * HMAC signatures shared with the sidecar.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Signs outgoing requests and checks the sidecar's origin marker (see docs of the sidecar contract).
 */
final class Signer
{
    /** How far a timestamp may be from our clock, both ways. */
    public const WINDOW_SECONDS = 300;

    /** The signature form: "v2=" + hex HMAC-SHA256 over the request's method, path, query, time and body. */
    public const VERSION = 'v2';

    /**
     * Headers for the request $method $target (path inside the sidecar's API, with its query string
     * as sent) whose raw body is $body (empty string for a GET). The signature is good for this
     * request only: another method, path, query, time or body does not verify.
     *
     * @return array<string, string>
     */
    public static function headers(string $secret, string $method, string $target, string $body, ?int $timestamp = null): array
    {
        $timestamp = $timestamp ?? time();
        $parts = explode('?', $target, 2);
        return [
            'X-Bridge-Timestamp' => (string) $timestamp,
            'X-Bridge-Signature' => self::signature($secret, $method, rawurldecode($parts[0]), $parts[1] ?? '', (string) $timestamp, $body),
        ];
    }

    /**
     * "v2=" + hex HMAC-SHA256(secret, "v2\n" METHOD "\n" PATH "\n" QUERY "\n" TIMESTAMP "\n" BODY), where PATH
     * is the percent-decoded path with every segment encoded again by rawurlencode and QUERY the raw query string.
     */
    public static function signature(string $secret, string $method, string $decodedPath, string $query, string $timestamp, string $body): string
    {
        $path = implode('/', array_map('rawurlencode', explode('/', $decodedPath)));
        $message = self::VERSION . "\n" . strtoupper($method) . "\n" . $path . "\n" . $query . "\n" . $timestamp . "\n" . $body;
        return self::VERSION . '=' . hash_hmac('sha256', $message, $secret);
    }

    /**
     * Checks a signed request made to us with the same rule ($decodedPath as WordPress routes on it, the raw
     * query string): null when it verifies, else a short reason that never echoes the expected value.
     */
    public static function verify(
        string $secret,
        string $method,
        string $decodedPath,
        string $query,
        string $timestamp,
        string $signature,
        string $body,
        ?int $now = null
    ): ?string {
        if ($secret === '' || $timestamp === '' || $signature === '') {
            return 'missing signature headers';
        }
        if (!preg_match('/^[0-9]{1,12}$/D', $timestamp)) {
            return 'malformed timestamp';
        }
        if (abs(($now ?? time()) - (int) $timestamp) > self::WINDOW_SECONDS) {
            return 'timestamp outside the 5-minute window';
        }
        $expected = self::signature($secret, $method, $decodedPath, $query, $timestamp, $body);
        return hash_equals($expected, trim($signature)) ? null : 'bad signature';
    }

    /** The value the sidecar puts into kcb_origin: "<ts>.<hex HMAC(secret, 'origin.' + ts)>". */
    public static function originMarker(string $secret, ?int $timestamp = null): string
    {
        $timestamp = $timestamp ?? time();
        return $timestamp . '.' . hash_hmac('sha256', 'origin.' . $timestamp, $secret);
    }

    public static function isValidOriginMarker(string $marker, string $secret, ?int $now = null): bool
    {
        if ($secret === '' || !preg_match('/^(\d{9,11})\.([0-9a-f]{64})$/', $marker, $parts)) {
            return false;
        }
        $now = $now ?? time();
        if (abs($now - (int) $parts[1]) > self::WINDOW_SECONDS) {
            return false;
        }
        return hash_equals(hash_hmac('sha256', 'origin.' . $parts[1], $secret), $parts[2]);
    }
}
