<?php

/**
 * WC_Data (objects with a "changes" layer) and WC_Data_Store, the stand-in's storage: products and
 * orders in posts and post meta, as WooCommerce's CPT data stores keep them.
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- mirrors WooCommerce's snake_case API on purpose.

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
