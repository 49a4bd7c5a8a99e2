<?php

/**
 * WooCommerce stand-in, loaded only in the test WordPress (as a must-use plugin).
 *
 * Real WooCommerce is not installable here. This file and the ones it loads (data, products, orders, stock
 * functions, REST, admin, Action Scheduler, logger) provide the classes, functions, REST routes and admin
 * form the bridge touches, and fire the real hook names with the real argument shapes in the order
 * a live WooCommerce 11 shop fired them (shared/woocommerce-hooks.md, woocommerce-hooks-observed.md) and
 * WooCommerce's own wc-stock-functions.php / WC_Product_Data_Store_CPT show. Written for the tests; it
 * shares no code with WooCommerce.
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- mirrors WooCommerce's snake_case API on purpose.

require_once __DIR__ . '/features-util.php';

if (!defined('WC_VERSION')) {
    define('WC_VERSION', '11.0.1');
}

final class WooCommerce
{
    public string $version = WC_VERSION;
    private static ?WooCommerce $instance = null;

    public static function instance(): self
    {
        return self::$instance ??= new self();
    }
}

function WC(): WooCommerce
{
    return WooCommerce::instance();
}

// Two of wc-formatting-functions.php's helpers, used throughout.
function wc_stock_amount($amount)
{
    return is_numeric($amount) ? (int) $amount : 0;
}

function wc_string_to_bool($value): bool
{
    return is_bool($value) ? $value : in_array(strtolower((string) $value), ['yes', 'true', '1'], true);
}

require_once __DIR__ . '/data.php';
require_once __DIR__ . '/products.php';
require_once __DIR__ . '/orders.php';
require_once __DIR__ . '/stock-functions.php';
require_once __DIR__ . '/standin-rest.php';
require_once __DIR__ . '/standin-admin.php';
require_once __DIR__ . '/action-scheduler.php';
require_once __DIR__ . '/logger.php';

add_action('plugins_loaded', static function (): void {
    do_action('woocommerce_loaded');
}, 0);

add_action('init', static function (): void {
    // WooCommerce::init() runs on init priority 0 and starts with before_woocommerce_init.
    do_action('before_woocommerce_init');
    register_post_type('product', [
        'label' => 'Products',
        'public' => true,
        'show_ui' => true,
        'show_in_rest' => false,
        'supports' => ['title', 'editor'],
        'capability_type' => 'post',
    ]);
    register_post_type('product_variation', ['label' => 'Variations', 'public' => false]);
    register_post_type('shop_order_placehold', ['label' => 'Orders', 'public' => false]);
    if (wp_installing()) {
        return;
    }
    if (get_option('woocommerce_manage_stock') !== 'yes') {
        update_option('woocommerce_manage_stock', 'yes');
    }
    $admin = get_role('administrator');
    if ($admin && !$admin->has_cap('manage_woocommerce')) {
        $admin->add_cap('manage_woocommerce');
    }
    do_action('woocommerce_init');
}, 0);
