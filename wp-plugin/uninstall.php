<?php

/**
 * Removes everything KeyCRM Bridge stored: its options, its outbox table and its scheduled jobs.
 *
 * @package KeycrmBridge
 */

defined('WP_UNINSTALL_PLUGIN') || exit;

global $wpdb;

$kcbOptions = [
    'kcb_sidecar_url', 'kcb_shared_secret', 'kcb_send_timeout', 'kcb_delivery_state', 'kcb_outbox_pending',
    'kcb_db_version', 'kcb_resync_job', 'kcb_secret_reveal',
];
foreach ($kcbOptions as $kcbOption) {
    delete_option($kcbOption);
}

wp_clear_scheduled_hook('kcb_flush_outbox');
wp_clear_scheduled_hook('kcb_outbox_sweep');
if (function_exists('as_unschedule_all_actions')) {
    as_unschedule_all_actions('kcb_flush_outbox', [], 'keycrm-bridge');
}

$wpdb->query('DROP TABLE IF EXISTS ' . $wpdb->prefix . 'kcb_outbox'); // phpcs:ignore -- fixed table name.
