<?php

/**
 * wp-admin parts of the stand-in: the WooCommerce menu and a product data box whose save follows
 * WC_Meta_Box_Product_Data::save (woocommerce_process_product_meta → set props → save()).
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- test stand-in.

add_action('admin_menu', static function (): void {
    add_menu_page('WooCommerce', 'WooCommerce', 'manage_woocommerce', 'woocommerce', static function (): void {
        echo '<div class="wrap"><h1>WooCommerce (stand-in)</h1></div>';
    }, '', 55);
}, 9);

add_action('add_meta_boxes_product', static function (): void {
    add_meta_box('standin-product-data', 'Product data', static function (WP_Post $post): void {
        $product = wc_get_product($post->ID);
        wp_nonce_field('standin_product_data', 'standin_product_nonce');
        printf(
            '<p><label>SKU <input name="_sku" value="%s"></label></p><p><label>Regular price <input name="_regular_price" value="%s"></label></p><p><label>Stock <input name="_stock" value="%s"></label></p>',
            esc_attr($product ? $product->get_sku() : ''),
            esc_attr($product ? $product->get_regular_price() : ''),
            esc_attr($product ? (string) $product->get_stock_quantity() : '')
        );
    });
});

add_action('save_post_product', static function (int $post_id, WP_Post $post): void {
    static $saving = false;
    if ($saving || !isset($_POST['standin_product_nonce']) || !wp_verify_nonce((string) $_POST['standin_product_nonce'], 'standin_product_data')) {
        return;
    }
    $saving = true;
    do_action('woocommerce_process_product_meta', $post_id, $post);
    $product = wc_get_product($post_id);
    if ($product) {
        if (isset($_POST['_sku'])) {
            $product->set_sku(sanitize_text_field(wp_unslash($_POST['_sku'])));
        }
        if (isset($_POST['_regular_price'])) {
            $product->set_regular_price(sanitize_text_field(wp_unslash($_POST['_regular_price'])));
        }
        if (isset($_POST['_stock']) && $_POST['_stock'] !== '') {
            $product->set_manage_stock(true);
            $product->set_stock_quantity(sanitize_text_field(wp_unslash($_POST['_stock'])));
        }
        do_action('woocommerce_admin_process_product_object', $product);
        $product->save();
        do_action('woocommerce_process_product_meta_' . $product->get_type(), $post_id);
        // WooCommerce saves a second time here (observed: two woocommerce_update_product per form post).
        wc_get_product($post_id)->save();
    }
    $saving = false;
}, 10, 2);
