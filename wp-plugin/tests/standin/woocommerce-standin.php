<?php

/**
 * WooCommerce stand-in, loaded only in the test WordPress (as a must-use plugin).
 *
 * Real WooCommerce is not installable here. This file provides the classes, functions, REST routes and
 * admin form the bridge touches, and fires the real hook names with the real argument shapes in the order
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

/** Product and order data stores: the parts of WC_Data_Store / WC_Product_Data_Store_CPT the flows use. */
class WC_Data_Store
{
    public static function load(string $type): WC_Data_Store
    {
        return new self();
    }

    /** WooCommerce changes _stock with one SQL statement (no update_post_meta, so no meta hooks). */
    public function update_product_stock(int $product_id, $quantity, string $operation = 'set')
    {
        global $wpdb;
        $quantity = (float) $quantity;
        $sql = match ($operation) {
            'increase' => "UPDATE {$wpdb->postmeta} SET meta_value = meta_value + %f WHERE post_id = %d AND meta_key = '_stock'",
            'decrease' => "UPDATE {$wpdb->postmeta} SET meta_value = meta_value - %f WHERE post_id = %d AND meta_key = '_stock'",
            default => "UPDATE {$wpdb->postmeta} SET meta_value = %f WHERE post_id = %d AND meta_key = '_stock'",
        };
        $wpdb->query($wpdb->prepare($sql, $quantity, $product_id));
        wp_cache_delete($product_id, 'post_meta');
        do_action('woocommerce_updated_product_stock', $product_id);
        $value = get_post_meta($product_id, '_stock', true);
        return wc_stock_amount($value);
    }

    public function read_stock_quantity(WC_Product $product, $new_stock = null): void
    {
        // Into data, not changes: the object now matches the database.
        $product->set_object_read(false);
        $product->set_stock_quantity($new_stock ?? get_post_meta($product->get_id(), '_stock', true));
        $product->set_object_read(true);
    }

    public function get_stock_reduced(int $order_id): bool
    {
        return (bool) get_post_meta($order_id, '_order_stock_reduced', true);
    }

    public function set_stock_reduced(int $order_id, bool $set): void
    {
        update_post_meta($order_id, '_order_stock_reduced', $set ? 'yes' : '');
    }
}

/** Data with a "changes" layer, as WC_Data: setters after the read go to $changes until save(). */
abstract class WC_Data
{
    protected int $id = 0;
    /** @var array<string, mixed> */
    protected array $data = [];
    /** @var array<string, mixed> */
    protected array $changes = [];
    protected bool $object_read = false;
    /** @var array<string, mixed> */
    protected array $meta = [];

    public function get_id(): int
    {
        return $this->id;
    }

    public function set_id(int $id): void
    {
        $this->id = $id;
    }

    public function get_data(): array
    {
        return array_merge(['id' => $this->id], $this->data);
    }

    public function get_changes(): array
    {
        return $this->changes;
    }

    public function apply_changes(): void
    {
        $this->data = array_replace($this->data, $this->changes);
        $this->changes = [];
    }

    public function set_object_read(bool $read = true): void
    {
        $this->object_read = $read;
    }

    public function get_object_read(): bool
    {
        return $this->object_read;
    }

    protected function set_prop(string $prop, $value): void
    {
        if (!array_key_exists($prop, $this->data)) {
            return;
        }
        if ($this->object_read) {
            if ($value !== $this->data[$prop] || array_key_exists($prop, $this->changes)) {
                $this->changes[$prop] = $value;
            }
        } else {
            $this->data[$prop] = $value;
        }
    }

    protected function get_prop(string $prop)
    {
        return array_key_exists($prop, $this->changes) ? $this->changes[$prop] : ($this->data[$prop] ?? null);
    }

    public function get_meta(string $key, bool $single = true)
    {
        return $this->meta[$key] ?? ($single ? '' : []);
    }

    public function add_meta_data(string $key, $value, bool $unique = false): void
    {
        $this->meta[$key] = $value;
    }

    public function update_meta_data(string $key, $value): void
    {
        $this->meta[$key] = $value;
    }

    public function delete_meta_data(string $key): void
    {
        unset($this->meta[$key]);
    }
}

class WC_Product extends WC_Data
{
    protected array $data = [
        'name' => '',
        'status' => 'publish',
        'description' => '',
        'sku' => '',
        'price' => '',
        'regular_price' => '',
        'sale_price' => '',
        'manage_stock' => false,
        'stock_quantity' => null,
        'stock_status' => 'instock',
        'weight' => '',
        'length' => '',
        'width' => '',
        'height' => '',
        'parent_id' => 0,
        'low_stock_amount' => '',
    ];

    private const META = [
        'sku' => '_sku', 'regular_price' => '_regular_price', 'sale_price' => '_sale_price', 'price' => '_price',
        'weight' => '_weight', 'length' => '_length', 'width' => '_width', 'height' => '_height',
        'stock_status' => '_stock_status',
    ];

    public function __construct($product = 0)
    {
        $id = is_numeric($product) ? (int) $product : 0;
        if ($id > 0) {
            $this->read($id);
        }
        $this->object_read = true;
    }

    private function read(int $id): void
    {
        $post = get_post($id);
        $this->id = $id;
        $this->data['name'] = $post->post_title;
        $this->data['status'] = $post->post_status;
        $this->data['description'] = $post->post_content;
        $this->data['parent_id'] = (int) $post->post_parent;
        foreach (self::META as $prop => $key) {
            $this->data[$prop] = (string) get_post_meta($id, $key, true);
        }
        $this->data['manage_stock'] = get_post_meta($id, '_manage_stock', true) === 'yes';
        $stock = get_post_meta($id, '_stock', true);
        $this->data['stock_quantity'] = $stock === '' ? null : wc_stock_amount($stock);
    }

    public function get_type(): string
    {
        return 'simple';
    }

    public function is_type($type): bool
    {
        return in_array($this->get_type(), (array) $type, true);
    }

    public function get_name() { return $this->get_prop('name'); }
    public function get_status() { return $this->get_prop('status'); }
    public function get_description() { return $this->get_prop('description'); }
    public function get_sku() { return $this->get_prop('sku'); }
    public function get_price() { return $this->get_prop('price'); }
    public function get_regular_price() { return $this->get_prop('regular_price'); }
    public function get_sale_price() { return $this->get_prop('sale_price'); }
    public function get_manage_stock() { return $this->get_prop('manage_stock'); }
    public function get_stock_quantity() { return $this->get_prop('stock_quantity'); }
    public function get_stock_status() { return $this->get_prop('stock_status'); }
    public function get_weight() { return $this->get_prop('weight'); }
    public function get_length() { return $this->get_prop('length'); }
    public function get_width() { return $this->get_prop('width'); }
    public function get_height() { return $this->get_prop('height'); }
    public function get_parent_id() { return (int) $this->get_prop('parent_id'); }
    public function get_low_stock_amount() { return $this->get_prop('low_stock_amount'); }

    public function set_name($v): void { $this->set_prop('name', (string) $v); }
    public function set_status($v): void { $this->set_prop('status', (string) $v); }
    public function set_description($v): void { $this->set_prop('description', (string) $v); }
    public function set_sku($v): void { $this->set_prop('sku', (string) $v); }
    public function set_regular_price($v): void { $this->set_prop('regular_price', (string) $v); $this->sync_price(); }
    public function set_sale_price($v): void { $this->set_prop('sale_price', (string) $v); $this->sync_price(); }
    public function set_manage_stock($v): void { $this->set_prop('manage_stock', wc_string_to_bool($v)); }
    public function set_stock_quantity($v): void { $this->set_prop('stock_quantity', $v === '' || $v === null ? null : wc_stock_amount($v)); }
    public function set_stock_status($v): void { $this->set_prop('stock_status', (string) $v); }
    public function set_weight($v): void { $this->set_prop('weight', (string) $v); }
    public function set_length($v): void { $this->set_prop('length', (string) $v); }
    public function set_width($v): void { $this->set_prop('width', (string) $v); }
    public function set_height($v): void { $this->set_prop('height', (string) $v); }
    public function set_parent_id($v): void { $this->set_prop('parent_id', (int) $v); }

    private function sync_price(): void
    {
        $sale = (string) $this->get_prop('sale_price');
        $this->set_prop('price', $sale !== '' ? $sale : (string) $this->get_prop('regular_price'));
    }

    public function managing_stock(): bool
    {
        return (bool) $this->get_manage_stock();
    }

    public function get_stock_managed_by_id(): int
    {
        return $this->get_id();
    }

    public function get_formatted_name(): string
    {
        return $this->get_name() . ' (' . ($this->get_sku() !== '' ? $this->get_sku() : '#' . $this->get_id()) . ')';
    }

    public function save(): int
    {
        $store = WC_Data_Store::load('product');
        do_action('woocommerce_before_product_object_save', $this, $store);
        if ($this->id > 0) {
            $this->update();
        } else {
            $this->create();
        }
        do_action('woocommerce_after_product_object_save', $this, $store);
        return $this->id;
    }

    private function post_type(): string
    {
        return $this->is_type('variation') ? 'product_variation' : 'product';
    }

    private function create(): void
    {
        $id = wp_insert_post([
            'post_type' => $this->post_type(),
            'post_title' => $this->get_name(),
            'post_content' => $this->get_description(),
            'post_status' => $this->get_status(),
            'post_parent' => $this->get_parent_id(),
        ], true);
        if (is_wp_error($id)) {
            throw new RuntimeException($id->get_error_message());
        }
        $this->id = (int) $id;
        update_post_meta($this->id, '_standin_type', $this->get_type());
        $props = array_keys(array_filter(
            array_replace($this->data, $this->changes),
            static fn($v) => $v !== '' && $v !== null && $v !== false
        ));
        $this->write_meta($props, true);
        do_action('woocommerce_product_object_updated_props', $this, $props);
        $this->apply_changes();
        do_action($this->is_type('variation') ? 'woocommerce_new_product_variation' : 'woocommerce_new_product', $this->id, $this);
    }

    private function update(): void
    {
        $changes = $this->changes;
        $post_fields = array_intersect_key($changes, array_flip(['name', 'description', 'status', 'parent_id']));
        if ($post_fields !== []) {
            wp_update_post([
                'ID' => $this->id,
                'post_title' => $this->get_name(),
                'post_content' => $this->get_description(),
                'post_status' => $this->get_status(),
                'post_parent' => $this->get_parent_id(),
            ]);
        }
        $props = array_keys($changes);
        $this->write_meta($props, false);
        do_action('woocommerce_product_object_updated_props', $this, $props);
        $this->apply_changes();
        do_action($this->is_type('variation') ? 'woocommerce_update_product_variation' : 'woocommerce_update_product', $this->id, $this);
        if ($this->is_type('variation') && $this->get_parent_id() > 0) {
            // WooCommerce re-syncs the variable parent after a variation save (price, stock status).
            $parent = wc_get_product($this->get_parent_id());
            if ($parent) {
                do_action('woocommerce_variable_product_sync_data', $parent);
                $parent->save();
            }
        }
    }

    /** @param string[] $props */
    private function write_meta(array $props, bool $creating): void
    {
        foreach (self::META as $prop => $key) {
            if (in_array($prop, $props, true)) {
                update_post_meta($this->id, $key, (string) $this->get_prop($prop));
            }
        }
        if (in_array('manage_stock', $props, true) || $creating) {
            update_post_meta($this->id, '_manage_stock', $this->managing_stock() ? 'yes' : 'no');
        }
        if (in_array('stock_quantity', $props, true) || ($creating && $this->managing_stock())) {
            $before = $this->is_type('variation') ? 'woocommerce_variation_before_set_stock' : 'woocommerce_product_before_set_stock';
            $after = $this->is_type('variation') ? 'woocommerce_variation_set_stock' : 'woocommerce_product_set_stock';
            do_action($before, $this);
            update_post_meta($this->id, '_stock', $this->get_stock_quantity());
            do_action($after, $this);
        }
    }
}

class WC_Product_Simple extends WC_Product
{
}

class WC_Product_Variable extends WC_Product
{
    public function get_type(): string
    {
        return 'variable';
    }
}

class WC_Product_Variation extends WC_Product
{
    public function get_type(): string
    {
        return 'variation';
    }
}

class WC_Order_Item_Product
{
    /** @param array<string, mixed> $meta */
    public function __construct(
        private WC_Order $order,
        private int $id,
        private int $product_id,
        private int $variation_id,
        private int|float $quantity,
        private array $meta = []
    ) {
    }

    public function get_id(): int { return $this->id; }
    public function get_product_id(): int { return $this->product_id; }
    public function get_variation_id(): int { return $this->variation_id; }
    public function get_quantity(): int|float { return $this->quantity; }
    public function get_order_id(): int { return $this->order->get_id(); }
    public function get_type(): string { return 'line_item'; }
    public function is_type($type): bool { return in_array('line_item', (array) $type, true); }

    public function get_product()
    {
        return wc_get_product($this->variation_id ?: $this->product_id);
    }

    public function get_meta(string $key, bool $single = true) { return $this->meta[$key] ?? ''; }
    public function add_meta_data(string $key, $value, bool $unique = false): void { $this->meta[$key] = $value; }
    public function delete_meta_data(string $key): void { unset($this->meta[$key]); }

    public function save(): void
    {
        $this->order->save_items();
    }

    public function to_array(): array
    {
        return [
            'id' => $this->id, 'product_id' => $this->product_id, 'variation_id' => $this->variation_id,
            'quantity' => $this->quantity, 'meta' => $this->meta,
        ];
    }
}

/** Orders live in posts of type shop_order_placehold, as HPOS placeholders do; items in one meta row. */
class WC_Order extends WC_Data
{
    protected array $data = ['status' => 'pending'];
    /** @var WC_Order_Item_Product[] */
    private array $items = [];
    /** @var string[] */
    public array $notes = [];

    public function __construct(int $id = 0)
    {
        if ($id > 0) {
            $this->id = $id;
            $this->data['status'] = (string) get_post_meta($id, '_standin_status', true);
            foreach ((array) get_post_meta($id, '_standin_items', true) as $row) {
                if (is_array($row)) {
                    $this->items[] = new WC_Order_Item_Product($this, (int) $row['id'], (int) $row['product_id'], (int) $row['variation_id'], wc_stock_amount($row['quantity']), (array) $row['meta']);
                }
            }
        }
        $this->object_read = true;
    }

    public function get_status(): string
    {
        return (string) $this->get_prop('status');
    }

    /** @return WC_Order_Item_Product[] */
    public function get_items($types = 'line_item'): array
    {
        return $this->items;
    }

    public function add_product(WC_Product $product, float $quantity): void
    {
        $isVariation = $product->is_type('variation');
        $this->items[] = new WC_Order_Item_Product(
            $this,
            count($this->items) + 1,
            $isVariation ? $product->get_parent_id() : $product->get_id(),
            $isVariation ? $product->get_id() : 0,
            wc_stock_amount($quantity)
        );
    }

    public function get_data_store(): WC_Data_Store
    {
        return WC_Data_Store::load('order');
    }

    public function add_order_note(string $note): int
    {
        $this->notes[] = $note;
        return count($this->notes);
    }

    public function save(): int
    {
        $creating = $this->id === 0;
        if ($creating) {
            $this->id = (int) wp_insert_post(['post_type' => 'shop_order_placehold', 'post_status' => 'draft', 'post_title' => 'Order']);
        }
        $this->apply_changes();
        update_post_meta($this->id, '_standin_status', $this->data['status']);
        $this->save_items();
        do_action($creating ? 'woocommerce_new_order' : 'woocommerce_update_order', $this->id, $this);
        return $this->id;
    }

    public function save_items(): void
    {
        if ($this->id > 0) {
            update_post_meta($this->id, '_standin_items', array_map(static fn($item) => $item->to_array(), $this->items));
        }
    }

    public function update_status(string $new_status): void
    {
        $old = $this->get_status();
        $this->set_prop('status', $new_status);
        $this->save();
        if ($old === $new_status) {
            return;
        }
        $transition = ['from' => $old, 'to' => $new_status, 'note' => '', 'manual' => false];
        do_action('woocommerce_order_status_' . $new_status, $this->id, $this, $transition);
        do_action('woocommerce_order_status_' . $old . '_to_' . $new_status, $this->id, $this);
        do_action('woocommerce_order_status_changed', $this->id, $old, $new_status, $this);
    }

    public function payment_complete(): void
    {
        $this->update_status('processing');
        do_action('woocommerce_payment_complete', $this->id);
    }
}

function wc_stock_amount($amount)
{
    return is_numeric($amount) ? (int) $amount : 0;
}

function wc_string_to_bool($value): bool
{
    return is_bool($value) ? $value : in_array(strtolower((string) $value), ['yes', 'true', '1'], true);
}

/** @return WC_Product|false */
function wc_get_product($product_id = 0)
{
    $product_id = is_object($product_id) ? (int) $product_id->get_id() : (int) $product_id;
    $post = $product_id > 0 ? get_post($product_id) : null;
    if (!$post || !in_array($post->post_type, ['product', 'product_variation'], true)) {
        return false;
    }
    $type = (string) get_post_meta($product_id, '_standin_type', true);
    return match ($type) {
        'variable' => new WC_Product_Variable($product_id),
        'variation' => new WC_Product_Variation($product_id),
        default => new WC_Product_Simple($product_id),
    };
}

function wc_get_product_id_by_sku(string $sku): int
{
    global $wpdb;
    return (int) $wpdb->get_var($wpdb->prepare("SELECT post_id FROM {$wpdb->postmeta} WHERE meta_key = '_sku' AND meta_value = %s LIMIT 1", $sku));
}

/** @return WC_Order|false */
function wc_get_order($order_id)
{
    $order_id = is_object($order_id) ? (int) $order_id->get_id() : (int) $order_id;
    $post = $order_id > 0 ? get_post($order_id) : null;
    return $post && $post->post_type === 'shop_order_placehold' ? new WC_Order($order_id) : false;
}

function wc_create_order(): WC_Order
{
    return new WC_Order();
}

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
