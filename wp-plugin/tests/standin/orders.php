<?php

/**
 * Orders: WC_Order with its line items (WC_Order_Item_Product), wc_get_order() and wc_create_order().
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- mirrors WooCommerce's snake_case API on purpose.

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
