<?php

/**
 * Run by demo-seed.sh (`wp eval-file`): the WooCommerce half of the demo catalogue. The KeyCRM
 * simulator makes the other half with the same rule (`--seed-skus N --seed-quantity Q`): simple
 * products SKU-000001 … named "Product SKU-000001", Q in stock. Existing SKUs are left alone, so
 * a second run changes nothing.
 *
 * @package KeycrmBridge
 */

$kcb_count = max(0, (int) getenv('DEMO_SKUS'));
$kcb_stock = max(0, (int) getenv('DEMO_STOCK'));
$kcb_made  = 0;

for ($kcb_i = 1; $kcb_i <= $kcb_count; $kcb_i++) {
    $kcb_sku = sprintf('SKU-%06d', $kcb_i);
    if (wc_get_product_id_by_sku($kcb_sku)) {
        continue;
    }
    $kcb_product = new WC_Product_Simple();
    $kcb_product->set_name('Product ' . $kcb_sku);
    $kcb_product->set_sku($kcb_sku);
    $kcb_product->set_regular_price((string) ( 100 + $kcb_i ));
    $kcb_product->set_manage_stock(true);
    $kcb_product->set_stock_quantity($kcb_stock);
    $kcb_product->set_status('publish');
    $kcb_product->save();
    ++$kcb_made;
}

WP_CLI::success(sprintf('demo catalogue: %d products created, %d were there', $kcb_made, $kcb_count - $kcb_made));
