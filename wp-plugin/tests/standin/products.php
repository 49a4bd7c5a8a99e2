<?php

/**
 * Products: WC_Product with its simple, variable and variation types, wc_get_product() and
 * wc_get_product_id_by_sku().
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- mirrors WooCommerce's snake_case API on purpose.

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
