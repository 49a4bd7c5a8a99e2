<?php

/**
 * wc-stock-functions.php's flows: wc_update_product_stock() and the order stock reductions and
 * restores, hooked to the order statuses as WooCommerce hooks them, and the refund restock.
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- mirrors WooCommerce's snake_case API on purpose.

/** Same order of events as WooCommerce: before_set_stock, SQL, read back, save(), set_stock. */
function wc_update_product_stock($product, $stock_quantity = null, $operation = 'set', $updating = false)
{
    if (!is_a($product, 'WC_Product')) {
        $product = wc_get_product($product);
    }
    if (!$product) {
        return false;
    }
    if ($stock_quantity === null || !$product->managing_stock()) {
        return $product->get_stock_quantity();
    }
    $with_stock = $product->get_stock_managed_by_id() !== $product->get_id() ? wc_get_product($product->get_stock_managed_by_id()) : $product;
    $store = WC_Data_Store::load('product');
    $variation = $with_stock->is_type('variation');
    do_action($variation ? 'woocommerce_variation_before_set_stock' : 'woocommerce_product_before_set_stock', $with_stock);
    $new_stock = $store->update_product_stock($with_stock->get_id(), $stock_quantity, $operation);
    $store->read_stock_quantity($with_stock, $new_stock);
    if (!$updating) {
        $with_stock->save();
    }
    do_action($variation ? 'woocommerce_variation_set_stock' : 'woocommerce_product_set_stock', $with_stock);
    return $with_stock->get_stock_quantity();
}

function wc_maybe_reduce_stock_levels($order_id): void
{
    $order = wc_get_order($order_id);
    if (!$order || $order->get_data_store()->get_stock_reduced($order->get_id())) {
        return;
    }
    wc_reduce_stock_levels($order);
    $order->get_data_store()->set_stock_reduced($order->get_id(), true);
}

function wc_maybe_increase_stock_levels($order_id): void
{
    $order = wc_get_order($order_id);
    if (!$order || !$order->get_data_store()->get_stock_reduced($order->get_id())) {
        return;
    }
    wc_increase_stock_levels($order);
    $order->get_data_store()->set_stock_reduced($order->get_id(), false);
}

/** Per item: stock down, "_reduced_stock" on the item, woocommerce_reduce_order_item_stock; then the order hook. */
function wc_reduce_stock_levels($order_id): void
{
    $order = $order_id instanceof WC_Order ? $order_id : wc_get_order($order_id);
    if (!$order || get_option('woocommerce_manage_stock') !== 'yes') {
        return;
    }
    foreach ($order->get_items() as $item) {
        $product = $item->get_product();
        if ($item->get_meta('_reduced_stock') || !$product || !$product->managing_stock()) {
            continue;
        }
        $qty = apply_filters('woocommerce_order_item_quantity', $item->get_quantity(), $order, $item);
        $new_stock = wc_update_product_stock($product, $qty, 'decrease');
        $item->add_meta_data('_reduced_stock', $qty, true);
        $item->save();
        $change = ['product' => $product, 'from' => $new_stock + $qty, 'to' => $new_stock];
        do_action('woocommerce_reduce_order_item_stock', $item, $change, $order);
    }
    do_action('woocommerce_reduce_order_stock', $order);
}

function wc_increase_stock_levels($order_id): void
{
    $order = $order_id instanceof WC_Order ? $order_id : wc_get_order($order_id);
    if (!$order || get_option('woocommerce_manage_stock') !== 'yes') {
        return;
    }
    foreach ($order->get_items() as $item) {
        $product = $item->get_product();
        $reduced = $item->get_meta('_reduced_stock');
        if (!$reduced || !$product || !$product->managing_stock()) {
            continue;
        }
        $new_stock = wc_update_product_stock($product, $reduced, 'increase');
        $old_stock = $new_stock - $reduced;
        $item->delete_meta_data('_reduced_stock');
        $item->save();
        do_action('woocommerce_restore_order_item_stock', $item, $new_stock, $old_stock, $order);
    }
    do_action('woocommerce_restore_order_stock', $order);
}

/** Refund with restock (wc_create_refund with restock_items): stock up per item, then restock hook. */
function standin_refund_restock(WC_Order $order, array $quantities_by_item_id): void
{
    foreach ($order->get_items() as $item) {
        $qty = (float) ($quantities_by_item_id[$item->get_id()] ?? 0);
        $product = $item->get_product();
        if ($qty <= 0 || !$product || !$product->managing_stock()) {
            continue;
        }
        $old_stock = $product->get_stock_quantity();
        $new_stock = wc_update_product_stock($product, $qty, 'increase');
        do_action('woocommerce_restock_refunded_item', $product->get_id(), $old_stock, $new_stock, $order, $product);
    }
}

add_action('woocommerce_payment_complete', 'wc_maybe_reduce_stock_levels');
add_action('woocommerce_order_status_completed', 'wc_maybe_reduce_stock_levels');
add_action('woocommerce_order_status_processing', 'wc_maybe_reduce_stock_levels');
add_action('woocommerce_order_status_on-hold', 'wc_maybe_reduce_stock_levels');
add_action('woocommerce_order_status_cancelled', 'wc_maybe_increase_stock_levels');
add_action('woocommerce_order_status_pending', 'wc_maybe_increase_stock_levels');
