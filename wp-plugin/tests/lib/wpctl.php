<?php

/**
 * Small control tool for the test WordPress (there is no WP-CLI in Debian 12):
 *   php wpctl.php ENV_DIR configure URL SECRET   point the plugin at a sidecar
 *   php wpctl.php ENV_DIR activate|deactivate    toggle KeyCRM Bridge
 *   php wpctl.php ENV_DIR product SKU STOCK      create a simple product, print its id
 *   php wpctl.php ENV_DIR outbox                 print the outbox row count
 *   php wpctl.php ENV_DIR locale USER LOCALE     set a user's admin language ("" for the site's)
 *
 * @package KeycrmBridge\Tests
 */

[$script, $envDir, $command] = array_pad($argv, 3, '');
$env = json_decode((string) file_get_contents($envDir . '/env.json'), true);
$_SERVER['HTTP_HOST'] = parse_url($env['wp_url'], PHP_URL_HOST) . ':' . parse_url($env['wp_url'], PHP_URL_PORT);
$_SERVER['REQUEST_URI'] = '/';
require $env['wp_dir'] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

const KCB_PLUGIN = 'keycrm-bridge/keycrm-bridge.php';

switch ($command) {
    case 'configure':
        update_option('kcb_sidecar_url', $argv[3]);
        update_option('kcb_shared_secret', $argv[4]);
        update_option('kcb_delivery_state', []);
        break;
    case 'activate':
        $result = activate_plugin(KCB_PLUGIN);
        if (is_wp_error($result)) {
            fwrite(STDERR, $result->get_error_message() . "\n");
            exit(1);
        }
        break;
    case 'deactivate':
        deactivate_plugins(KCB_PLUGIN);
        break;
    case 'product':
        $product = new WC_Product_Simple();
        $product->set_name('Bench ' . $argv[3]);
        $product->set_sku($argv[3]);
        $product->set_regular_price('10');
        $product->set_manage_stock(true);
        $product->set_stock_quantity((int) $argv[4]);
        echo $product->save(), "\n";
        if (class_exists('KeycrmBridge\Plugin')) {
            KeycrmBridge\Plugin::instance()->resetRequestState();
        }
        break;
    case 'outbox':
        global $wpdb;
        echo (int) $wpdb->get_var("SELECT COUNT(*) FROM {$wpdb->prefix}kcb_outbox"), "\n";
        break;
    case 'locale':
        $user = get_user_by('login', $argv[3]);
        update_user_meta($user->ID, 'locale', $argv[4] ?? '');
        break;
    default:
        fwrite(STDERR, "unknown command: $command\n");
        exit(2);
}
