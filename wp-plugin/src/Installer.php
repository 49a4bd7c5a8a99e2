<?php

/**
 * Activation, upgrade and deactivation.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Creates the outbox table and the secret; uninstall.php undoes all of it.
 */
final class Installer
{
    public const DB_VERSION = '2';

    public static function activate(): void
    {
        self::ensureSchema();
        add_option(Settings::URL, '', '', true);
        add_option(Settings::TIMEOUT, (string) Settings::DEFAULT_TIMEOUT, '', true);
        add_option(Settings::STATE, [], '', true);
        if (Settings::secret() === '') {
            update_option(Settings::SECRET, Settings::generateSecret(), true);
            update_option(Settings::REVEAL, '1', false);
        }
        if (!wp_next_scheduled(Dispatcher::SWEEP_HOOK)) {
            wp_schedule_event(time() + 300, Dispatcher::SWEEP_SCHEDULE, Dispatcher::SWEEP_HOOK);
        }
    }

    public static function deactivate(): void
    {
        wp_clear_scheduled_hook(Dispatcher::SWEEP_HOOK);
        RetryScheduler::clear();
    }

    /** Cheap check on every load (autoloaded option); runs dbDelta only after an update of the plugin. */
    public static function maybeUpgrade(): void
    {
        if (get_option(Settings::DB_VERSION) !== self::DB_VERSION) {
            self::ensureSchema();
        }
    }

    private static function ensureSchema(): void
    {
        require_once ABSPATH . 'wp-admin/includes/upgrade.php';
        dbDelta(Outbox::createTableSql());
        delete_option(Settings::PENDING);
        update_option(Settings::DB_VERSION, self::DB_VERSION, true);
    }
}
