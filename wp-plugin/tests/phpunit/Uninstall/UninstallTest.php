<?php

/**
 * Runs last: WordPress's own uninstall_plugin() must leave no option, table or scheduled job behind;
 * activating again brings everything back.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Dispatcher;
use KeycrmBridge\Outbox;
use KeycrmBridge\Settings;
use PHPUnit\Framework\TestCase;

final class UninstallTest extends TestCase
{
    private const PLUGIN = 'keycrm-bridge/keycrm-bridge.php';

    public function testUninstallRemovesOptionsTableAndJobsAndActivationRestoresThem(): void
    {
        global $wpdb;
        $this->assertSame(Outbox::table(), $wpdb->get_var($wpdb->prepare('SHOW TABLES LIKE %s', Outbox::table())));
        update_option(Settings::URL, 'http://127.0.0.1:1');
        wp_schedule_single_event(time() + 60, Dispatcher::FLUSH_HOOK);

        // Flush requests the last tests started could otherwise write their state after the uninstall.
        $this->assertTrue(Http::waitForIdleWorkers((string) $GLOBALS['kcb_test_env']['wp_url']), 'no flush request running');
        deactivate_plugins(self::PLUGIN);
        $this->assertFalse(wp_next_scheduled(Dispatcher::SWEEP_HOOK), 'deactivation stops the jobs');
        $this->assertFalse(wp_next_scheduled(Dispatcher::FLUSH_HOOK));
        uninstall_plugin(self::PLUGIN);

        wp_cache_flush();
        $this->assertNull($wpdb->get_var($wpdb->prepare('SHOW TABLES LIKE %s', Outbox::table())), 'table dropped');
        $left = $wpdb->get_col("SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE 'kcb\\_%'");
        $this->assertSame([], $left, 'no kcb_ option left');

        $this->assertNull(activate_plugin(self::PLUGIN));
        wp_cache_flush();
        $this->assertSame(Outbox::table(), $wpdb->get_var($wpdb->prepare('SHOW TABLES LIKE %s', Outbox::table())));
        $this->assertMatchesRegularExpression('/^[0-9a-f]{64}$/', (string) get_option(Settings::SECRET), 'a fresh secret');
        $this->assertSame('1', get_option(Settings::REVEAL), 'to be shown once');
        $this->assertNotFalse(wp_next_scheduled(Dispatcher::SWEEP_HOOK));
    }
}
