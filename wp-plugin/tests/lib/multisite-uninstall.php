<?php

/**
 * The steps of multisite.sh, each in its own PHP process (WordPress reads MULTISITE once, at load):
 *   network    install WordPress and make it a network (what Tools → Network Setup does)
 *   sites      add a second site, activate the plugin on both, check each has its table and options
 *   uninstall  deactivate and uninstall the plugin; no table, kcb_ option or job left on either site
 * Usage: php multisite-uninstall.php WP_DIR STEP
 *
 * @package KeycrmBridge\Tests
 */

[$script, $wpDir, $step] = $argv;
$_SERVER['HTTP_HOST'] = 'localhost';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_NAME'] = 'localhost';
if ($step === 'network') {
    define('WP_INSTALLING', true);
    define('WP_INSTALLING_NETWORK', true); // so that wpdb knows the network tables, as network.php does
}
require $wpDir . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
add_filter('pre_wp_mail', '__return_false');

const KCB_PLUGIN = 'keycrm-bridge/keycrm-bridge.php';

function kcb_fail(string $why): void
{
    fwrite(STDERR, "multisite: $why\n");
    exit(1);
}

/** @return array{table: bool, options: string[], jobs: bool} what the plugin keeps on the current site */
function kcb_site_state(): array
{
    global $wpdb;
    $table = $wpdb->prefix . 'kcb_outbox';
    wp_cache_flush();
    return [
        'table' => $wpdb->get_var($wpdb->prepare('SHOW TABLES LIKE %s', $table)) === $table,
        'options' => $wpdb->get_col("SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE 'kcb\\_%'"),
        'jobs' => wp_next_scheduled('kcb_outbox_sweep') !== false || wp_next_scheduled('kcb_flush_outbox') !== false,
    ];
}

if ($step === 'network') {
    wp_install('KCB network', 'admin', 'admin@example.com', false, '', wp_slash('admin-pass'), 'en_US');
    update_option('siteurl', 'http://localhost');
    update_option('home', 'http://localhost');
    require_once ABSPATH . 'wp-admin/includes/network.php';
    global $wpdb;
    foreach ($wpdb->tables('ms_global') as $table => $prefixed) { // as wp-admin/network.php does
        $wpdb->$table = $prefixed;
    }
    install_network();
    $made = populate_network(1, 'localhost', 'admin@example.com', 'KCB network', '/', false);
    if (is_wp_error($made)) {
        kcb_fail('populate_network: ' . $made->get_error_message());
    }
    echo "multisite: network created\n";
    exit(0);
}

if (!is_multisite()) {
    kcb_fail('WordPress does not run as a network');
}

if ($step === 'sites') {
    $second = wpmu_create_blog('localhost', '/second/', 'Second shop', 1);
    if (is_wp_error($second)) {
        kcb_fail('wpmu_create_blog: ' . $second->get_error_message());
    }
    foreach (get_sites(['fields' => 'ids']) as $siteId) {
        switch_to_blog((int) $siteId);
        $activated = activate_plugin(KCB_PLUGIN);
        if (is_wp_error($activated)) {
            kcb_fail("activation on site $siteId: " . $activated->get_error_message());
        }
        update_option('kcb_sidecar_url', 'http://127.0.0.1:1');
        $state = kcb_site_state();
        if (!$state['table'] || $state['options'] === [] || !$state['jobs']) {
            kcb_fail("site $siteId after activation: " . wp_json_encode($state));
        }
        restore_current_blog();
    }
    echo 'multisite: plugin active on sites ' . implode(', ', get_sites(['fields' => 'ids'])) . "\n";
    exit(0);
}

// uninstall: as the network admin's Plugins → Delete does, after deactivation on each site.
foreach (get_sites(['fields' => 'ids']) as $siteId) {
    switch_to_blog((int) $siteId);
    deactivate_plugins(KCB_PLUGIN);
    restore_current_blog();
}
uninstall_plugin(KCB_PLUGIN);
$left = [];
foreach (get_sites(['fields' => 'ids']) as $siteId) {
    switch_to_blog((int) $siteId);
    $state = kcb_site_state();
    if ($state['table'] || $state['options'] !== [] || $state['jobs']) {
        $left[$siteId] = $state;
    }
    restore_current_blog();
}
if ($left !== []) {
    kcb_fail('left behind after uninstall: ' . wp_json_encode($left));
}
echo 'multisite: uninstall removed the table, options and jobs of sites ' . implode(', ', get_sites(['fields' => 'ids'])) . "\n";
