<?php

/**
 * The plugin's options, read through one place so names never drift.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Options of the bridge. Every option name starts with "kcb_" so uninstall.php can remove them all.
 */
final class Settings
{
    public const URL = 'kcb_sidecar_url';
    public const SECRET = 'kcb_shared_secret';
    public const TIMEOUT = 'kcb_send_timeout';
    /** Delivery state (circuit breaker, last success, last error): autoloaded, written only on change. */
    public const STATE = 'kcb_delivery_state';
    /** No longer used (a request read it from a stale cache); removed on upgrade and by uninstall. */
    public const PENDING = 'kcb_outbox_pending';
    public const DB_VERSION = 'kcb_db_version';
    public const RESYNC_JOB = 'kcb_resync_job';
    /** Set when a secret was generated and not yet shown to an admin: it is shown once, in full. */
    public const REVEAL = 'kcb_secret_reveal';
    /** Most events the outbox keeps (OutboxLimit); set with `wp option update kcb_outbox_cap N`. */
    public const OUTBOX_CAP = 'kcb_outbox_cap';
    /** The outbox was near or at its cap: what the admin notice shows. */
    public const OUTBOX_ALERT = 'kcb_outbox_alert';

    public const ALL = [
        self::URL, self::SECRET, self::TIMEOUT, self::STATE, self::PENDING, self::DB_VERSION, self::RESYNC_JOB,
        self::REVEAL, self::OUTBOX_CAP, self::OUTBOX_ALERT,
    ];

    public const DEFAULT_TIMEOUT = 3.0;

    public static function sidecarUrl(): string
    {
        return rtrim((string) get_option(self::URL, ''), '/');
    }

    public static function secret(): string
    {
        return (string) get_option(self::SECRET, '');
    }

    /** Seconds a send may take; short because a worker waits for it after the shopper got the page. */
    public static function timeout(): float
    {
        $value = (float) get_option(self::TIMEOUT, self::DEFAULT_TIMEOUT);
        return $value > 0 ? min($value, 30.0) : self::DEFAULT_TIMEOUT;
    }

    public static function isConfigured(): bool
    {
        return self::sidecarUrl() !== '' && self::secret() !== '';
    }

    /** A fresh 64-hex-character secret (256 bits). */
    public static function generateSecret(): string
    {
        return bin2hex(random_bytes(32));
    }

    /**
     * Delivery state: fail_until (unix seconds), failures (consecutive), last_error, last_ok.
     *
     * @return array{fail_until: float, failures: int, last_error: string, last_ok: float, last_error_at: float}
     */
    public static function state(): array
    {
        $state = get_option(self::STATE, []);
        $state = is_array($state) ? $state : [];
        return [
            'fail_until' => (float) ($state['fail_until'] ?? 0),
            'failures' => (int) ($state['failures'] ?? 0),
            'last_error' => (string) ($state['last_error'] ?? ''),
            'last_error_at' => (float) ($state['last_error_at'] ?? 0),
            'last_ok' => (float) ($state['last_ok'] ?? 0),
        ];
    }

    /** @param array<string, mixed> $state */
    public static function saveState(array $state): void
    {
        update_option(self::STATE, $state, true);
    }
}
