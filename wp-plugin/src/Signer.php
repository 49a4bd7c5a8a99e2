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

    /**
     * Headers for a request whose raw body is $body (empty string for a GET).
     *
     * @return array<string, string>
     */
    public static function headers(string $secret, string $body, ?int $timestamp = null): array
    {
        $timestamp = $timestamp ?? time();
        return [
            'X-Bridge-Timestamp' => (string) $timestamp,
            'X-Bridge-Signature' => 'sha256=' . hash_hmac('sha256', $timestamp . '.' . $body, $secret),
        ];
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
