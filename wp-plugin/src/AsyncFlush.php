<?php

/**
 * A flush in a request of its own, started by a loopback call that nobody waits for.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * The doorbell of the outbox: a request that changed stock stores its events, opens a connection to its own
 * home URL (?kcb_async_flush=1), writes the request and closes without reading, as WordPress's own
 * spawn_cron() does. It is not a wp-admin request: admin-ajax.php also made Action Scheduler start its async
 * queue runner (a third request, WooCommerce's queued work) right behind every sale, and it loads wp-admin. The
 * web server runs that request as any other; it sends the outbox within moments, so no request that sells
 * ever waits on (or holds a PHP worker for) the sidecar. The call carries an HMAC token, so strangers cannot
 * make the shop call the sidecar; even then the flush is locked, bounded and only sends what is queued.
 */
final class AsyncFlush
{
    public const ACTION = 'kcb_async_flush';
    /** The query argument that marks a front-end request as the doorbell's (handled at wp_loaded). */
    public const QUERY = 'kcb_async_flush';
    private const CONNECT_TIMEOUT = 0.5;

    /** Start the flush request; false when no connection could be made (the caller schedules a retry). */
    public static function kick(): bool
    {
        $url = (string) apply_filters('kcb_loopback_url', add_query_arg(self::QUERY, '1', home_url('/')));
        $parts = wp_parse_url($url);
        if (!is_array($parts) || empty($parts['host'])) {
            return false;
        }
        $tls = ($parts['scheme'] ?? 'http') === 'https';
        $port = (int) ($parts['port'] ?? ($tls ? 443 : 80));
        $path = ($parts['path'] ?? '/') . (isset($parts['query']) ? '?' . $parts['query'] : '');
        $body = http_build_query(['action' => self::ACTION, 'token' => self::token(Settings::secret())]);
        $host = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
        $request = "POST {$path} HTTP/1.1\r\nHost: {$host}\r\nUser-Agent: keycrm-bridge-plugin/" . KCB_VERSION
            . "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " . strlen($body)
            . "\r\nConnection: close\r\n\r\n" . $body;
        // Our own host: its certificate may be self-signed or name another host; the token authenticates.
        $context = stream_context_create(['ssl' => ['verify_peer' => false, 'verify_peer_name' => false]]);
        set_error_handler(static fn() => true);
        try {
            $socket = stream_socket_client(
                ($tls ? 'ssl://' : 'tcp://') . $parts['host'] . ':' . $port,
                $errno,
                $errstr,
                self::CONNECT_TIMEOUT,
                STREAM_CLIENT_CONNECT,
                $context
            );
            if ($socket === false) {
                return false;
            }
            $written = fwrite($socket, $request);
            fclose($socket);
        } finally {
            restore_error_handler();
        }
        return $written === strlen($request);
    }

    /**
     * wp_loaded, first: the doorbell's request to the home URL is answered here, before WordPress looks for
     * a page to show (or WooCommerce for cart actions). Any other request passes through untouched.
     */
    public static function maybeHandle(): void
    {
        // phpcs:ignore -- only a marker; handle() checks the HMAC token.
        if (!isset($_GET[self::QUERY]) || is_admin() || ($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
            return;
        }
        self::handle();
    }

    /**
     * The doorbell's request (maybeHandle, or wp_ajax(_nopriv)_kcb_async_flush where kcb_loopback_url points
     * at admin-ajax.php): check the token, then flush as the retry job would.
     */
    public static function handle(): void
    {
        // phpcs:ignore -- the HMAC token is the authentication (no user, no nonce on a loopback call).
        $token = isset($_POST['token']) ? sanitize_text_field(wp_unslash((string) $_POST['token'])) : '';
        if (!self::isValidToken($token, Settings::secret())) {
            wp_send_json(['error' => 'bad token'], 403);
        }
        ignore_user_abort(true);
        Plugin::instance()->dispatcher->flush();
        wp_send_json(['ok' => true], 200);
    }

    public static function token(string $secret, ?int $timestamp = null): string
    {
        $timestamp = $timestamp ?? time();
        return $timestamp . '.' . hash_hmac('sha256', 'flush.' . $timestamp, $secret);
    }

    public static function isValidToken(string $token, string $secret, ?int $now = null): bool
    {
        if ($secret === '' || !preg_match('/^(\d{9,11})\.([0-9a-f]{64})$/', $token, $parts)) {
            return false;
        }
        if (abs(($now ?? time()) - (int) $parts[1]) > 60) {
            return false;
        }
        return hash_equals(hash_hmac('sha256', 'flush.' . $parts[1], $secret), $parts[2]);
    }
}
