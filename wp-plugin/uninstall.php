<?php

/**
 * Removes everything KeyCRM Bridge stored: its options, its outbox table and its scheduled jobs, on every
 * site of a multisite network (each site has its own options, table and jobs).
 *
 * @package KeycrmBridge
 */

defined('WP_UNINSTALL_PLUGIN') || exit;

/** Cleans the current site (the one switch_to_blog() selected). */
function kcb_uninstall_site(): void
{
    global $wpdb;
    $options = [
        'kcb_sidecar_url', 'kcb_shared_secret', 'kcb_send_timeout', 'kcb_delivery_state', 'kcb_outbox_pending',
        'kcb_db_version', 'kcb_resync_job', 'kcb_secret_reveal', 'kcb_outbox_cap', 'kcb_outbox_alert',
        'kcb_notices_logged',
    ];
    foreach ($options as $option) {
        delete_option($option);
    }
    delete_transient('kcb_status_cache');
    wp_clear_scheduled_hook('kcb_flush_outbox');
    wp_clear_scheduled_hook('kcb_outbox_sweep');
    if (function_exists('as_unschedule_all_actions')) {
        as_unschedule_all_actions('kcb_flush_outbox', [], 'keycrm-bridge');
    }
    $wpdb->query('DROP TABLE IF EXISTS ' . $wpdb->prefix . 'kcb_outbox'); // phpcs:ignore -- fixed table name.
}

if (is_multisite()) {
    // Every site, not only those where the plugin is active now: a site may have been deactivated
    // locally while its table and options stayed.
    foreach (get_sites(['fields' => 'ids', 'number' => 0]) as $kcbSiteId) {
        switch_to_blog((int) $kcbSiteId);
        kcb_uninstall_site();
        restore_current_blog();
    }
} else {
    kcb_uninstall_site();
}
