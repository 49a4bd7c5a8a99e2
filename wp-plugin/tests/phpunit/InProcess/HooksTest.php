<?php

/**
 * Hook handling inside one PHP process: what each WooCommerce action puts into the request's buffer,
 * then delivered for real to the receiver (which validates every batch against the JSON Schema).
 *
 * @package KeycrmBridge\Tests
 */

use Automattic\WooCommerce\Utilities\FeaturesUtil;
use KeycrmBridge\Plugin;
use KeycrmBridge\Signer;

final class HooksTest extends BridgeTestCase
{
    /** @return array<int, array<string, mixed>> */
    private function buffered(): array
    {
        return Plugin::instance()->buffer->all();
    }

    /** Deliver the buffer as the shutdown hook would, and return what the receiver accepted. */
    private function deliver(): array
    {
        Plugin::instance()->products->flushDirty();
        Plugin::instance()->dispatcher->deliver(Plugin::instance()->buffer->drain());
        $this->assertReceiverSawOnlyValidBatches();
        return self::$receiver->events();
    }

    public function testPluginIsActiveAndDeclaresHposCompatibility(): void
    {
        $this->assertTrue(is_plugin_active('keycrm-bridge/keycrm-bridge.php'));
        $declared = array_filter(
            FeaturesUtil::$declared,
            static fn($d) => $d['feature'] === 'custom_order_tables' && str_ends_with($d['plugin_file'], 'keycrm-bridge/keycrm-bridge.php')
        );
        $this->assertCount(1, $declared);
        $this->assertTrue(array_values($declared)[0]['positive']);
    }

    public function testPluginHeaderCarriesRequirements(): void
    {
        $file = WP_PLUGIN_DIR . '/keycrm-bridge/keycrm-bridge.php';
        $headers = get_file_data($file, [
            'requires' => 'Requires at least', 'php' => 'Requires PHP', 'wc_min' => 'WC requires at least',
            'wc_tested' => 'WC tested up to', 'domain' => 'Text Domain',
        ]);
        $this->assertSame('6.1', $headers['requires']);
        $this->assertSame('8.1', $headers['php']);
        $this->assertSame('7.6', $headers['wc_min']);
        $this->assertNotSame('', $headers['wc_tested']);
        $this->assertSame('keycrm-bridge', $headers['domain']);
    }

    public function testStockSetByAnAdminScriptIsManualAndDelivered(): void
    {
        $product = $this->makeSimpleProduct('HK-MANUAL', 10);
        wc_update_product_stock($product, 7);
        $events = $this->buffered();
        $this->assertCount(1, $events, 'a stock-only save sends one stock.set and no product.upsert');
        $this->assertSame('stock.set', $events[0]['type']);
        $this->assertSame('manual', $events[0]['cause']);
        $this->assertSame(7.0, $events[0]['stock_quantity']);
        $this->assertSame('HK-MANUAL', $events[0]['sku']);
        $this->assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $events[0]['id']);
        $received = $this->deliver();
        $this->assertSame([$events[0]['id']], array_column($received, 'id'));
    }

    public function testNewProductIsAnnouncedBeforeItsStock(): void
    {
        $product = new WC_Product_Simple();
        $product->set_name('Fresh');
        $product->set_sku('HK-NEW');
        $product->set_regular_price('3.20');
        $product->set_weight('0.5');
        $product->set_manage_stock(true);
        $product->set_stock_quantity(4);
        $product->save();
        $events = $this->buffered();
        $this->assertSame(['product.upsert', 'stock.set'], array_column($events, 'type'));
        $this->assertSame('Fresh', $events[0]['product']['name']);
        $this->assertSame(3.2, $events[0]['product']['regular_price']);
        $this->assertSame(0.5, $events[0]['product']['weight']);
        $this->assertSame('simple', $events[0]['product']['type']);
        $this->assertTrue($events[0]['product']['manage_stock']);
        $this->assertCount(2, $this->deliver());
    }

    public function testSkuRenameCarriesOldAndNewSkuAheadOfStock(): void
    {
        $product = $this->makeSimpleProduct('HK-OLD', 5);
        $product->set_sku('HK-RENAMED');
        $product->set_stock_quantity(6);
        $product->save();
        $events = $this->buffered();
        $upserts = self::ofProduct($events, $product->get_id(), 'product.upsert');
        $this->assertCount(1, $upserts);
        $this->assertSame('HK-OLD', $upserts[0]['old_sku']);
        $this->assertSame('HK-RENAMED', $upserts[0]['sku']);
        $this->assertSame('HK-RENAMED', self::ofProduct($events, $product->get_id())[0]['sku']);
        $this->assertSame(['product.upsert', 'stock.set'], array_column($events, 'type'), 'rename first');
        $this->assertCount(2, $this->deliver());
    }

    public function testNameAndPriceEditSendsOneUpsertWithTheFields(): void
    {
        $product = $this->makeSimpleProduct('HK-EDIT', 5, 'Before');
        $product->set_name('After');
        $product->set_regular_price('12.00');
        $product->set_sale_price('9.99');
        $product->set_description('Long text');
        $product->set_length('10');
        $product->set_width('20');
        $product->set_height('30');
        $product->save();
        // Admin form posts save twice: the second, unchanged save must not add a second event.
        wc_get_product($product->get_id())->save();
        $events = $this->buffered();
        $this->assertCount(1, $events);
        $fields = $events[0]['product'];
        $this->assertSame('After', $fields['name']);
        $this->assertSame(12.0, $fields['regular_price']);
        $this->assertSame(9.99, $fields['sale_price']);
        $this->assertSame(9.99, $fields['price']);
        $this->assertSame('Long text', $fields['description']);
        $this->assertSame([10.0, 20.0, 30.0], [$fields['length'], $fields['width'], $fields['height']]);
        $this->assertArrayNotHasKey('old_sku', $events[0]);
        $this->deliver();
    }

    public function testVariationStockCarriesParentAndVariableParentSyncSendsNothing(): void
    {
        $parent = new WC_Product_Variable();
        $parent->set_name('Shirt');
        $parent->set_sku('HK-SHIRT');
        $parent->save();
        $variation = new WC_Product_Variation();
        $variation->set_parent_id($parent->get_id());
        $variation->set_sku('HK-SHIRT-RED');
        $variation->set_regular_price('5');
        $variation->set_manage_stock(true);
        $variation->set_stock_quantity(7);
        $variation->save();
        Plugin::instance()->resetRequestState();

        wc_update_product_stock(wc_get_product($variation->get_id()), 3);
        $events = $this->buffered();
        $this->assertCount(1, $events, 'the parent re-sync save (no field change) adds nothing');
        $this->assertSame($variation->get_id(), $events[0]['product_id']);
        $this->assertSame($parent->get_id(), $events[0]['parent_id']);
        $this->assertSame('HK-SHIRT-RED', $events[0]['sku']);
        $this->assertSame(3.0, $events[0]['stock_quantity']);
        $this->deliver();
    }

    public function testTrashAndPermanentDelete(): void
    {
        $product = $this->makeSimpleProduct('HK-DEL', 1);
        wp_trash_post($product->get_id());
        $events = $this->buffered();
        $this->assertCount(1, $events);
        $this->assertSame('product.upsert', $events[0]['type']);
        $this->assertSame('trash', $events[0]['product']['status']);
        $this->deliver();

        wp_delete_post($product->get_id(), true);
        $events = $this->buffered();
        $this->assertCount(1, $events);
        $this->assertSame('product.deleted', $events[0]['type']);
        $this->assertSame('HK-DEL', $events[0]['sku']);
        $this->assertSame($product->get_id(), $events[0]['product_id']);
        $this->assertCount(2, $this->deliver());
    }

    public function testImportCause(): void
    {
        $product = $this->makeSimpleProduct('HK-IMP', 2);
        do_action('woocommerce_product_import_before_process_item', ['sku' => 'HK-IMP']);
        wc_update_product_stock($product, 20);
        $this->assertSame('import', $this->buffered()[0]['cause']);
        $this->deliver();
    }

    public function testSidecarMarkerIsCheckedWithTheSecret(): void
    {
        $this->assertTrue(Signer::isValidOriginMarker(Signer::originMarker(self::SECRET), self::SECRET));
        $this->assertFalse(Signer::isValidOriginMarker(Signer::originMarker('another-secret'), self::SECRET));
        $this->assertFalse(Signer::isValidOriginMarker(Signer::originMarker(self::SECRET, time() - 301), self::SECRET));
        $this->assertFalse(Signer::isValidOriginMarker('garbage', self::SECRET));

        $product = $this->makeSimpleProduct('HK-SIDECAR', 2);
        $_GET['kcb_origin'] = Signer::originMarker(self::SECRET);
        wc_update_product_stock($product, 8);
        $this->assertSame('sidecar', $this->buffered()[0]['cause']);
        $this->deliver();
    }

    /** The same vectors as the sidecar's signing module computes: both ends sign one request the same way. */
    public function testSignatureBindsMethodPathQueryTimeAndBody(): void
    {
        $get = Signer::headers('s3cret', 'GET', '/v1/resync/rs%201?x=a%20b', '', 1764201600);
        $this->assertSame('1764201600', $get['X-Bridge-Timestamp']);
        $this->assertSame('v2=3a7fa88b75382ac3d0f60dd774a0ee02d44ed48e627cd77f4b6d955b158ece53', $get['X-Bridge-Signature']);
        $post = Signer::headers('s3cret', 'POST', '/v1/events', '{"events":[]}', 1764201600);
        $this->assertSame('v2=c797716300bc482d4dc1ecc711be9fc5fef02df0f20e6665115039c29c33b2c0', $post['X-Bridge-Signature']);

        $now = 1764201600;
        $sig = $post['X-Bridge-Signature'];
        $this->assertNull(Signer::verify('s3cret', 'POST', '/v1/events', '', '1764201600', $sig, '{"events":[]}', $now));
        $this->assertSame('bad signature', Signer::verify('s3cret', 'POST', '/v1/status', '', '1764201600', $sig, '{"events":[]}', $now));
        $this->assertSame('bad signature', Signer::verify('s3cret', 'GET', '/v1/events', '', '1764201600', $sig, '{"events":[]}', $now));
        $this->assertSame('bad signature', Signer::verify('s3cret', 'POST', '/v1/events', 'a=1', '1764201600', $sig, '{"events":[]}', $now));
        $this->assertSame('bad signature', Signer::verify('s3cret', 'POST', '/v1/events', '', '1764201600', $sig, '{"events":[1]}', $now));
        $this->assertSame('malformed timestamp', Signer::verify('s3cret', 'POST', '/v1/events', '', "\u{00B2}", $sig, '', $now));
        $this->assertSame(
            'timestamp outside the 5-minute window',
            Signer::verify('s3cret', 'POST', '/v1/events', '', '1764201600', $sig, '{"events":[]}', $now + 301)
        );
    }

    public function testRefundWithRestockIsOrderRestoreWithOrderId(): void
    {
        $product = $this->makeSimpleProduct('HK-REFUND', 10);
        $order = wc_create_order();
        $order->add_product($product, 3);
        $order->save();
        $order->payment_complete();
        Plugin::instance()->resetRequestState();

        $order = wc_get_order($order->get_id());
        standin_refund_restock($order, [1 => 2]);
        $events = $this->buffered();
        $this->assertCount(1, $events);
        $this->assertSame('order_restore', $events[0]['cause']);
        $this->assertSame($order->get_id(), $events[0]['order_id']);
        $this->assertSame(2.0, $events[0]['quantity_delta']);
        $this->assertSame(9.0, $events[0]['stock_quantity']);
        $this->deliver();
    }

    public function testTwoLinesOfTheSameProductAreTaggedSeparately(): void
    {
        $product = $this->makeSimpleProduct('HK-TWICE', 10);
        $order = wc_create_order();
        $order->add_product($product, 1);
        $order->add_product($product, 2);
        $order->save();
        $order->payment_complete();
        $events = array_values(array_filter($this->buffered(), static fn($e) => $e['type'] === 'stock.set'));
        $this->assertSame([9.0, 7.0], array_column($events, 'stock_quantity'));
        $this->assertSame([-1.0, -2.0], array_column($events, 'quantity_delta'));
        $this->assertSame(['order', 'order'], array_column($events, 'cause'));
        $this->deliver();
    }

    public function testUkrainianTranslationIsLoaded(): void
    {
        $this->assertTrue(switch_to_locale('uk'));
        try {
            load_plugin_textdomain('keycrm-bridge', false, 'keycrm-bridge/languages');
            $this->assertSame('Повна пересинхронізація', __('Full resync', 'keycrm-bridge'));
        } finally {
            restore_previous_locale();
        }
    }
}
