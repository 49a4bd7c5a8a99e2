<?php

/**
 * Minimal HTTP client for the tests (curl), with an optional cookie jar for wp-admin sessions.
 *
 * @package KeycrmBridge\Tests
 */

final class Http
{
    /**
     * Wait until PHP-FPM runs no request but the status query itself: the flush requests that earlier
     * steps started in the background (the plugin's doorbell) are done, so they cannot write into the next
     * test. False when that did not happen within $seconds.
     */
    public static function waitForIdleWorkers(string $baseUrl, float $seconds = 30): bool
    {
        $deadline = microtime(true) + $seconds;
        do {
            $status = self::request('GET', $baseUrl . '/kcb-fpm-status', null, [], null, 10);
            if ($status['status'] === 200 && preg_match('/^active processes:\s+(\d+)$/m', $status['body'], $m) && (int) $m[1] <= 1) {
                return true;
            }
            usleep(50000);
        } while (microtime(true) < $deadline);
        return false;
    }

    /**
     * @param string[] $headers
     * @return array{status: int, body: string, seconds: float, url: string, headers: array<string, string>}
     *         headers: response headers by lower-case name (the last one of a name wins).
     */
    public static function request(string $method, string $url, ?string $body = null, array $headers = [], ?string $cookieJar = null, float $timeout = 60): array
    {
        $curl = curl_init($url);
        curl_setopt_array($curl, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HTTPHEADER => $headers,
            CURLOPT_TIMEOUT_MS => (int) ($timeout * 1000),
            CURLOPT_FOLLOWLOCATION => false,
        ]);
        $received = [];
        curl_setopt($curl, CURLOPT_HEADERFUNCTION, static function ($handle, string $line) use (&$received): int {
            $parts = explode(':', $line, 2);
            if (count($parts) === 2) {
                $received[strtolower(trim($parts[0]))] = trim($parts[1]);
            }
            return strlen($line);
        });
        if ($body !== null) {
            curl_setopt($curl, CURLOPT_POSTFIELDS, $body);
        }
        if ($cookieJar !== null) {
            curl_setopt($curl, CURLOPT_COOKIEJAR, $cookieJar);
            curl_setopt($curl, CURLOPT_COOKIEFILE, $cookieJar);
        }
        $started = microtime(true);
        $raw = curl_exec($curl);
        $seconds = microtime(true) - $started;
        $status = (int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        $effective = (string) curl_getinfo($curl, CURLINFO_REDIRECT_URL);
        curl_close($curl);
        return ['status' => $status, 'body' => is_string($raw) ? $raw : '', 'seconds' => $seconds, 'url' => $effective, 'headers' => $received];
    }
}
