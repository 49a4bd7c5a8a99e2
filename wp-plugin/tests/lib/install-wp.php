<?php

/**
 * Installs WordPress into the fresh database and activates KeyCRM Bridge (run by env.sh).
 * Usage: php install-wp.php WP_DIR URL ADMIN_USER ADMIN_PASS
 *
 * @package KeycrmBridge\Tests
 */

[$script, $wpDir, $url, $user, $pass] = $argv;
$_SERVER['HTTP_HOST'] = parse_url($url, PHP_URL_HOST) . ':' . parse_url($url, PHP_URL_PORT);
$_SERVER['REQUEST_URI'] = '/';
define('WP_INSTALLING', true);
require $wpDir . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

add_filter('pre_wp_mail', '__return_false'); // No MTA on test machines.
$result = wp_install('KCB Test Shop', $user, 'admin@example.com', false, '', wp_slash($pass), 'en_US');
update_option('siteurl', $url);
update_option('home', $url);
update_option('permalink_structure', '');
update_option('timezone_string', 'Europe/Kyiv');
fwrite(STDERR, "WordPress installed, admin user id {$result['user_id']}\n");

$activated = activate_plugin('keycrm-bridge/keycrm-bridge.php');
if (is_wp_error($activated)) {
    fwrite(STDERR, 'activation failed: ' . $activated->get_error_message() . "\n");
    exit(1);
}
if (!is_plugin_active('keycrm-bridge/keycrm-bridge.php')) {
    fwrite(STDERR, "plugin not active after activation\n");
    exit(1);
}
fwrite(STDERR, "KeyCRM Bridge activated\n");
