<?php

/**
 * wc/v3 REST routes of the stand-in: the subset of WooCommerce's REST API the tests, the benchmark and the
 * sidecar use, firing the hooks WooCommerce fires for each (see woocommerce-hooks-observed.md 01-20).
 * Test environment only: no authentication (the real API needs OAuth 1.0a or keys over HTTPS).
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- test stand-in.

function standin_apply_product_params(WC_Product $product, array $p): void
{
    $setters = [
        'name' => 'set_name', 'sku' => 'set_sku', 'regular_price' => 'set_regular_price', 'sale_price' => 'set_sale_price',
        'description' => 'set_description', 'status' => 'set_status', 'weight' => 'set_weight',
        'manage_stock' => 'set_manage_stock', 'stock_quantity' => 'set_stock_quantity',
    ];
    foreach ($setters as $key => $setter) {
        if (array_key_exists($key, $p)) {
            $product->$setter($p[$key]);
        }
    }
    foreach (['length', 'width', 'height'] as $dimension) {
        if (isset($p['dimensions'][$dimension])) {
            $product->{'set_' . $dimension}($p['dimensions'][$dimension]);
        }
    }
}

function standin_product_response($product): array
{
    return [
        'id' => $product->get_id(),
        'type' => $product->get_type(),
        'name' => $product->get_name(),
        'sku' => $product->get_sku(),
        'parent_id' => $product->get_parent_id(),
        'stock_quantity' => $product->get_stock_quantity(),
        'manage_stock' => $product->managing_stock(),
        'regular_price' => $product->get_regular_price(),
        'status' => $product->get_status(),
    ];
}

function standin_update_product(int $id, array $params, WP_REST_Request $request)
{
    $product = wc_get_product($id);
    if (!$product) {
        return new WP_Error('woocommerce_rest_product_invalid_id', 'Invalid ID.', ['status' => 404]);
    }
    standin_apply_product_params($product, $params);
    $product->save();
    $hook = $product->is_type('variation') ? 'woocommerce_rest_insert_product_variation_object' : 'woocommerce_rest_insert_product_object';
    do_action($hook, $product, $request, false);
    return standin_product_response($product);
}

function standin_create_product(array $params, WP_REST_Request $request, int $parent_id = 0)
{
    $product = match (true) {
        $parent_id > 0 => new WC_Product_Variation(),
        ($params['type'] ?? 'simple') === 'variable' => new WC_Product_Variable(),
        default => new WC_Product_Simple(),
    };
    if ($parent_id > 0) {
        $product->set_parent_id($parent_id);
    }
    standin_apply_product_params($product, $params);
    $product->save();
    $hook = $parent_id > 0 ? 'woocommerce_rest_insert_product_variation_object' : 'woocommerce_rest_insert_product_object';
    do_action($hook, $product, $request, true);
    return standin_product_response($product);
}

function standin_delete_product(int $id, bool $force)
{
    $product = wc_get_product($id);
    if (!$product) {
        return new WP_Error('woocommerce_rest_product_invalid_id', 'Invalid ID.', ['status' => 404]);
    }
    $response = standin_product_response($product);
    $variation = $product->is_type('variation');
    if ($force) {
        do_action($variation ? 'woocommerce_before_delete_product_variation' : 'woocommerce_before_delete_product', $id);
        wp_delete_post($id, true);
        do_action($variation ? 'woocommerce_delete_product_variation' : 'woocommerce_delete_product', $id);
    } else {
        wp_trash_post($id);
        do_action('woocommerce_trash_product', $id);
    }
    return $response;
}

add_action('rest_api_init', static function (): void {
    $open = ['permission_callback' => '__return_true'];
    register_rest_route('wc/v3', '/products', $open + [
        'methods' => 'POST',
        'callback' => static fn(WP_REST_Request $r) => standin_create_product($r->get_json_params() ?: $r->get_params(), $r),
    ]);
    register_rest_route('wc/v3', '/products/batch', $open + [
        'methods' => 'POST',
        'callback' => static function (WP_REST_Request $r) {
            $body = $r->get_json_params() ?: [];
            $out = ['create' => [], 'update' => [], 'delete' => []];
            foreach ((array) ($body['create'] ?? []) as $item) {
                $out['create'][] = standin_create_product((array) $item, $r);
            }
            foreach ((array) ($body['update'] ?? []) as $item) {
                $out['update'][] = standin_update_product((int) ($item['id'] ?? 0), (array) $item, $r);
            }
            foreach ((array) ($body['delete'] ?? []) as $id) {
                $out['delete'][] = standin_delete_product((int) $id, true);
            }
            return $out;
        },
    ]);
    register_rest_route('wc/v3', '/products/(?P<id>\d+)', $open + [
        'methods' => 'GET, POST, PUT, PATCH, DELETE',
        'callback' => static function (WP_REST_Request $r) {
            $id = (int) $r['id'];
            if ($r->get_method() === 'GET') {
                $product = wc_get_product($id);
                return $product ? standin_product_response($product) : new WP_Error('not_found', 'Invalid ID.', ['status' => 404]);
            }
            if ($r->get_method() === 'DELETE') {
                return standin_delete_product($id, filter_var($r['force'], FILTER_VALIDATE_BOOLEAN));
            }
            return standin_update_product($id, $r->get_json_params() ?: $r->get_body_params(), $r);
        },
    ]);
    register_rest_route('wc/v3', '/products/(?P<id>\d+)/variations', $open + [
        'methods' => 'POST',
        'callback' => static fn(WP_REST_Request $r) => standin_create_product($r->get_json_params() ?: [], $r, (int) $r['id']),
    ]);
    register_rest_route('wc/v3', '/products/(?P<pid>\d+)/variations/(?P<id>\d+)', $open + [
        'methods' => 'POST, PUT, PATCH, DELETE',
        'callback' => static function (WP_REST_Request $r) {
            if ($r->get_method() === 'DELETE') {
                return standin_delete_product((int) $r['id'], true);
            }
            return standin_update_product((int) $r['id'], $r->get_json_params() ?: [], $r);
        },
    ]);
    register_rest_route('wc/v3', '/orders', $open + [
        'methods' => 'POST',
        'callback' => static function (WP_REST_Request $r) {
            $body = $r->get_json_params() ?: [];
            $order = wc_create_order();
            foreach ((array) ($body['line_items'] ?? []) as $line) {
                $product = wc_get_product((int) (($line['variation_id'] ?? 0) ?: ($line['product_id'] ?? 0)));
                if ($product) {
                    $order->add_product($product, (float) ($line['quantity'] ?? 1));
                }
            }
            $order->save();
            if (!empty($body['set_paid'])) {
                $order->payment_complete();
            }
            do_action('woocommerce_rest_insert_shop_order_object', $order, $r, true);
            return ['id' => $order->get_id(), 'status' => $order->get_status()];
        },
    ]);
    register_rest_route('wc/v3', '/orders/(?P<id>\d+)', $open + [
        'methods' => 'POST, PUT, PATCH',
        'callback' => static function (WP_REST_Request $r) {
            $order = wc_get_order((int) $r['id']);
            if (!$order) {
                return new WP_Error('woocommerce_rest_shop_order_invalid_id', 'Invalid ID.', ['status' => 404]);
            }
            $body = $r->get_json_params() ?: [];
            if (isset($body['status'])) {
                $order->update_status((string) $body['status']);
            }
            do_action('woocommerce_rest_insert_shop_order_object', $order, $r, false);
            return ['id' => $order->get_id(), 'status' => $order->get_status()];
        },
    ]);
    register_rest_route('wc/v3', '/orders/(?P<id>\d+)/refunds', $open + [
        'methods' => 'POST',
        'callback' => static function (WP_REST_Request $r) {
            $order = wc_get_order((int) $r['id']);
            if (!$order) {
                return new WP_Error('woocommerce_rest_shop_order_invalid_id', 'Invalid ID.', ['status' => 404]);
            }
            $body = $r->get_json_params() ?: [];
            $quantities = [];
            foreach ((array) ($body['line_items'] ?? []) as $line) {
                $quantities[(int) $line['id']] = (float) ($line['quantity'] ?? 0);
            }
            if (!empty($body['api_restock'])) {
                standin_refund_restock($order, $quantities);
            }
            do_action('woocommerce_order_partially_refunded', $order->get_id(), 0);
            return ['order_id' => $order->get_id()];
        },
    ]);
});
