<?php

/**
 * Entries in WooCommerce's log (WooCommerce → Status → Logs, source "keycrm-bridge").
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Nothing is written when WooCommerce (and so wc_get_logger) is absent: the admin notice still shows.
 */
final class Log
{
    public const SOURCE = 'keycrm-bridge';

    /** @param array<string, mixed> $context */
    public static function warning(string $message, array $context = []): void
    {
        self::write('warning', $message, $context);
    }

    /** @param array<string, mixed> $context */
    public static function error(string $message, array $context = []): void
    {
        self::write('error', $message, $context);
    }

    /** @param array<string, mixed> $context */
    private static function write(string $level, string $message, array $context): void
    {
        if (!function_exists('wc_get_logger')) {
            return;
        }
        $logger = wc_get_logger();
        if (is_object($logger) && method_exists($logger, 'log')) {
            $logger->log($level, $message, ['source' => self::SOURCE] + $context);
        }
    }
}
