<?php

/**
 * Cause tags over real HTTP (nginx + PHP-FPM): order placement, cancellation, an admin edit in wp-admin,
 * a sidecar-marked REST edit and an ordinary REST edit, each delivered to the receiver after the response.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Signer;

final class CauseTagsTest extends BridgeTestCase
{
    /** @return array<int, array<string, mixed>> Events the receiver has once $count arrived. */
    private function awaitEvents(int $count): array
    {
        $this->waitUntil(fn() => count(self::$receiver->events()) >= $count, 15, "$count events at the receiver");
        $this->assertReceiverSawOnlyValidBatches();
        return self::$receiver->events();
    }

    public function testOrderPlacementAndCancellationCarryOrderCauseIdAndQuantity(): void
    {
        $simple = $this->makeSimpleProduct('CT-ORDER-S', 12);
        $created = $this->rest('POST', '/products', ['type' => 'variable', 'name' => 'CT var', 'sku' => 'CT-ORDER-V']);
        $variation = $this->rest('POST', '/products/' . $created['json']['id'] . '/variations', [
            'sku' => 'CT-ORDER-V-RED', 'regular_price' => '5.00', 'manage_stock' => true, 'stock_quantity' => 2,
        ]);
        $this->assertSame(200, $variation['status'], $variation['body']);
        $variationId = $variation['json']['id'];
        $this->awaitEvents(3);
        self::$receiver->reset();

        $order = $this->rest('POST', '/orders', ['set_paid' => true, 'line_items' => [
            ['product_id' => $simple->get_id(), 'quantity' => 2],
            ['product_id' => $created['json']['id'], 'variation_id' => $variationId, 'quantity' => 1],
        ]]);
        $this->assertSame(200, $order['status'], $order['body']);
        $this->assertSame('processing', $order['json']['status']);
        $orderId = $order['json']['id'];

        $events = $this->awaitEvents(2);
        $this->assertCount(2, $events, 'order stock saves send stock.set only, no product.upsert');
        $bySku = array_column($events, null, 'sku');
        $this->assertSame(['order', $orderId, -2.0, 10.0], [
            $bySku['CT-ORDER-S']['cause'], $bySku['CT-ORDER-S']['order_id'],
            $bySku['CT-ORDER-S']['quantity_delta'], $bySku['CT-ORDER-S']['stock_quantity'],
        ]);
        $this->assertSame(['order', $orderId, -1.0, 1.0], [
            $bySku['CT-ORDER-V-RED']['cause'], $bySku['CT-ORDER-V-RED']['order_id'],
            $bySku['CT-ORDER-V-RED']['quantity_delta'], $bySku['CT-ORDER-V-RED']['stock_quantity'],
        ]);
        $this->assertSame($created['json']['id'], $bySku['CT-ORDER-V-RED']['parent_id']);

        self::$receiver->reset();
        $cancel = $this->rest('PUT', '/orders/' . $orderId, ['status' => 'cancelled']);
        $this->assertSame('cancelled', $cancel['json']['status']);
        $events = $this->awaitEvents(2);
        $bySku = array_column($events, null, 'sku');
        $this->assertSame(['order_restore', $orderId, 2.0, 12.0], [
            $bySku['CT-ORDER-S']['cause'], $bySku['CT-ORDER-S']['order_id'],
            $bySku['CT-ORDER-S']['quantity_delta'], $bySku['CT-ORDER-S']['stock_quantity'],
        ]);
        $this->assertSame(['order_restore', $orderId, 1.0, 2.0], [
            $bySku['CT-ORDER-V-RED']['cause'], $bySku['CT-ORDER-V-RED']['order_id'],
            $bySku['CT-ORDER-V-RED']['quantity_delta'], $bySku['CT-ORDER-V-RED']['stock_quantity'],
        ]);

        // Cancelling again restores nothing twice.
        self::$receiver->reset();
        $this->rest('PUT', '/orders/' . $orderId, ['status' => 'cancelled']);
        $this->rest('GET', '/products/' . $simple->get_id());
        $this->assertSame(12, $this->rest('GET', '/products/' . $simple->get_id())['json']['stock_quantity']);
        $this->assertSame([], self::$receiver->events());
    }

    public function testRestEditWithAndWithoutTheSidecarMarker(): void
    {
        $product = $this->makeSimpleProduct('CT-REST', 5);
        $plain = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 4]);
        $this->assertSame(4, $plain['json']['stock_quantity']);
        $marked = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 9], ['kcb_origin' => Signer::originMarker(self::SECRET)]);
        $this->assertSame(9, $marked['json']['stock_quantity']);
        $forged = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 3], ['kcb_origin' => Signer::originMarker('not-the-secret')]);
        $this->assertSame(3, $forged['json']['stock_quantity']);
        $batch = $this->rest('POST', '/products/batch', ['update' => [['id' => $product->get_id(), 'stock_quantity' => 11]]], [
            'kcb_origin' => Signer::originMarker(self::SECRET),
        ]);
        $this->assertSame(200, $batch['status']);

        $events = $this->awaitEvents(4);
        $this->assertSame(['rest', 'sidecar', 'rest', 'sidecar'], array_column($events, 'cause'));
        $this->assertSame([4.0, 9.0, 3.0, 11.0], array_column($events, 'stock_quantity'));
        $this->assertArrayNotHasKey('order_id', $events[1]);
    }

    public function testAdminEditInWpAdminIsManual(): void
    {
        $product = $this->makeSimpleProduct('CT-ADMIN', 6, 'Admin edited');
        $jar = AdminSession::login();
        $edit = Http::request('GET', self::env('wp_url') . '/wp-admin/post.php?post=' . $product->get_id() . '&action=edit', null, [], $jar);
        $this->assertSame(200, $edit['status']);
        $form = AdminSession::formFields($edit['body'], 'post');
        $this->assertArrayHasKey('_wpnonce', $form);
        $form['_stock'] = '11';
        $form['post_title'] = 'Admin edited v2';
        $form['save'] = 'Update';
        $saved = Http::request('POST', self::env('wp_url') . '/wp-admin/post.php', http_build_query($form), [], $jar);
        $this->assertSame(302, $saved['status'], 'wp-admin redirects after saving');

        $events = $this->awaitEvents(2);
        $stock = self::ofProduct($events, $product->get_id());
        $upsert = self::ofProduct($events, $product->get_id(), 'product.upsert');
        $this->assertCount(1, $stock);
        $this->assertSame(['manual', 11.0], [$stock[0]['cause'], $stock[0]['stock_quantity']]);
        $this->assertCount(1, $upsert, 'two saves per form post make one upsert');
        $this->assertSame(['manual', 'Admin edited v2'], [$upsert[0]['cause'], $upsert[0]['product']['name']]);
    }
}
