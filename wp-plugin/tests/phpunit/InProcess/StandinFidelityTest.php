<?php

/**
 * The WooCommerce stand-in must fire what a live WooCommerce 11 shop fired. Expected sequences are the
 * observed ones from shared/woocommerce-hooks-observed.md (sections 04, 13, 15), restricted to the hooks
 * the stand-in models (it does not model e.g. price syncs, low-stock mails or update_order counts).
 *
 * @package KeycrmBridge\Tests
 */

final class StandinFidelityTest extends BridgeTestCase
{
    private const MODELLED = [
        'woocommerce_before_product_object_save', 'woocommerce_product_before_set_stock', 'woocommerce_product_set_stock',
        'woocommerce_variation_before_set_stock', 'woocommerce_variation_set_stock', 'woocommerce_updated_product_stock',
        'woocommerce_product_object_updated_props', 'woocommerce_update_product', 'woocommerce_update_product_variation',
        'woocommerce_after_product_object_save', 'woocommerce_rest_insert_product_object', 'woocommerce_new_order',
        'woocommerce_order_status_processing', 'woocommerce_order_status_cancelled', 'woocommerce_reduce_order_item_stock',
        'woocommerce_reduce_order_stock', 'woocommerce_restore_order_item_stock', 'woocommerce_restore_order_stock',
        'woocommerce_order_status_pending_to_processing', 'woocommerce_order_status_processing_to_cancelled',
        'woocommerce_order_status_changed',
    ];

    /** @var array<int, array{0: string, 1: array<int, mixed>}> */
    private array $fired = [];

    protected function setUp(): void
    {
        parent::setUp();
        $this->fired = [];
        add_action('all', [$this, 'record'], 10, 99);
    }

    protected function tearDown(): void
    {
        remove_action('all', [$this, 'record'], 10);
        parent::tearDown();
    }

    public function record(...$args): void
    {
        $hook = (string) current_filter();
        if (in_array($hook, self::MODELLED, true)) {
            $this->fired[] = [$hook, array_slice($args, 1)]; // "all" passes the hook name first.
        }
    }

    /** @return string[] */
    private function names(): array
    {
        return array_map(static fn($f) => substr($f[0], strlen('woocommerce_')), $this->fired);
    }

    /** @return array<int, mixed> Arguments of the first call of $hook. */
    private function argsOf(string $hook): array
    {
        foreach ($this->fired as [$name, $args]) {
            if ($name === $hook) {
                return $args;
            }
        }
        $this->fail("$hook did not fire");
    }

    public function testRestStockUpdateMatchesObservedSection04(): void
    {
        $product = $this->makeSimpleProduct('FID-1', 10);
        $this->fired = [];
        standin_update_product($product->get_id(), ['stock_quantity' => 4], new WP_REST_Request('PUT', '/wc/v3/products/' . $product->get_id()));
        $this->assertSame([
            'before_product_object_save', 'product_before_set_stock', 'product_set_stock', 'product_object_updated_props',
            'update_product', 'after_product_object_save', 'rest_insert_product_object',
        ], $this->names());
        [$setStockProduct] = $this->argsOf('woocommerce_product_set_stock');
        $this->assertInstanceOf(WC_Product_Simple::class, $setStockProduct);
        $this->assertSame(4, $setStockProduct->get_stock_quantity(), 'the object already holds the new quantity');
        [$updatedProduct, $props] = $this->argsOf('woocommerce_product_object_updated_props');
        $this->assertSame(['stock_quantity'], $props);
    }

    public function testOrderPaidAndCancelledMatchObservedSections13And15(): void
    {
        $product = $this->makeSimpleProduct('FID-2', 12);
        $order = wc_create_order();
        $order->add_product($product, 2);
        $this->fired = [];
        $order->save();
        $order->payment_complete();
        $this->assertSame([
            'new_order', 'order_status_processing', 'product_before_set_stock', 'updated_product_stock',
            'before_product_object_save', 'product_object_updated_props', 'update_product', 'after_product_object_save',
            'product_set_stock', 'reduce_order_item_stock', 'reduce_order_stock', 'order_status_pending_to_processing',
            'order_status_changed',
        ], $this->names());
        [$item, $change, $orderArg] = $this->argsOf('woocommerce_reduce_order_item_stock');
        $this->assertInstanceOf(WC_Order_Item_Product::class, $item);
        $this->assertSame(['product', 'from', 'to'], array_keys($change));
        $this->assertSame([12, 10], [$change['from'], $change['to']]);
        $this->assertInstanceOf(WC_Order::class, $orderArg);
        [$orderId, $newOrder] = $this->argsOf('woocommerce_new_order');
        $this->assertSame($order->get_id(), $orderId);
        $this->assertInstanceOf(WC_Order::class, $newOrder);

        $this->fired = [];
        wc_get_order($order->get_id())->update_status('cancelled');
        $this->assertSame([
            'order_status_cancelled', 'product_before_set_stock', 'updated_product_stock', 'before_product_object_save',
            'product_object_updated_props', 'update_product', 'after_product_object_save', 'product_set_stock',
            'restore_order_item_stock', 'restore_order_stock', 'order_status_processing_to_cancelled', 'order_status_changed',
        ], $this->names());
        [$item, $new, $old] = $this->argsOf('woocommerce_restore_order_item_stock');
        $this->assertSame([12, 10], [$new, $old]);
        $this->assertSame($product->get_id(), $item->get_product_id());
    }
}
