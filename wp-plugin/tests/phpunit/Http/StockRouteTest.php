<?php

/**
 * The sidecar's conditional stock writes (POST keycrm-bridge/v1/stock) over real HTTP: a sale or a restock
 * that lands between the sidecar's decision and its write survives the write, in every mode the sidecar
 * writes WooCommerce in; the route is signed, and its own writes come back tagged `sidecar`.
 *
 * The sidecar's side of the race (holding the write, deciding again) is tested end to end in
 * tests/test_write_race_e2e.py; here the test plays the sidecar: it reads, lets the shop sell, then writes.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Signer;

final class StockRouteTest extends BridgeTestCase
{
    private const ROUTE = '/keycrm-bridge/v1/stock';

    /**
     * @param array<string, mixed> $payload
     * @return array{status: int, body: string, seconds: float, url: string, json: mixed}
     */
    private function write(array $payload, string $secret = self::SECRET): array
    {
        $body = (string) json_encode($payload);
        $headers = ['Content-Type: application/json'];
        foreach (Signer::headers($secret, 'POST', self::ROUTE, $body) as $name => $value) {
            $headers[] = $name . ': ' . $value;
        }
        $url = self::env('wp_url') . '/?' . http_build_query(['rest_route' => self::ROUTE]);
        $response = Http::request('POST', $url, $body, $headers);
        $response['json'] = json_decode($response['body'], true);
        return $response;
    }

    private function stock(int $productId): int
    {
        wp_cache_flush();
        return (int) wc_get_product($productId)->get_stock_quantity();
    }

    /** @return array<string, array{0: string, 1: int}> What each mode decides after a KeyCRM receiving of +1 on 10. */
    public function modes(): array
    {
        return ['keycrm (KeyCRM sellable 11)' => ['keycrm', 11], 'two-way (10 + 1 merged)' => ['two-way', 11]];
    }

    /**
     * The checkout lands between the decision (made on 10) and the write: the write is refused with the
     * current value, and the sale's decrement stays.
     *
     * @dataProvider modes
     */
    public function testASaleBetweenDecisionAndWriteSurvives(string $mode, int $decided): void
    {
        $product = $this->makeSimpleProduct('SR-SALE-' . $mode, 10);
        $seen = $this->stock($product->get_id()); // the value the sidecar decides on
        $order = $this->rest('POST', '/orders', ['set_paid' => true, 'line_items' => [
            ['product_id' => $product->get_id(), 'quantity' => 2],
        ]]);
        $this->assertSame(200, $order['status'], $order['body']);
        $this->assertSame(8, $this->stock($product->get_id()), 'the checkout took 2');

        $answer = $this->write(['items' => [['product_id' => $product->get_id(), 'expect' => $seen, 'set' => $decided]]]);
        $this->assertSame(200, $answer['status'], $answer['body']);
        $this->assertSame('conflict', $answer['json']['items'][0]['status']);
        $this->assertSame(8, $answer['json']['items'][0]['stock_quantity'], 'the answer names the current value');
        $this->assertSame(8, $this->stock($product->get_id()), 'the sale survives the write');

        // Deciding again on what the shop shows (the order now counted) is applied.
        $again = $this->write(['items' => [['product_id' => $product->get_id(), 'expect' => 8, 'set' => $decided - 2]]]);
        $this->assertSame(['applied', $decided - 2], [$again['json']['items'][0]['status'], $again['json']['items'][0]['stock_quantity']]);
        $this->assertSame($decided - 2, $this->stock($product->get_id()));
    }

    /** A cancel restocks between the decision (made on 8, after the sale) and the write: the restock stays. */
    public function testARestockBetweenDecisionAndWriteSurvives(): void
    {
        $product = $this->makeSimpleProduct('SR-CANCEL', 10);
        $order = $this->rest('POST', '/orders', ['set_paid' => true, 'line_items' => [
            ['product_id' => $product->get_id(), 'quantity' => 2],
        ]]);
        $seen = $this->stock($product->get_id());
        $this->assertSame(8, $seen);
        $this->rest('PUT', '/orders/' . $order['json']['id'], ['status' => 'cancelled']);
        $this->assertSame(10, $this->stock($product->get_id()), 'the cancel put 2 back');

        $answer = $this->write(['items' => [['product_id' => $product->get_id(), 'expect' => $seen, 'set' => 9]]]);
        $this->assertSame(['conflict', 10], [$answer['json']['items'][0]['status'], $answer['json']['items'][0]['stock_quantity']]);
        $this->assertSame(10, $this->stock($product->get_id()), 'the restock survives the write');
    }

    public function testAnAppliedWriteComesBackTaggedSidecar(): void
    {
        $product = $this->makeSimpleProduct('SR-APPLY', 10);
        $answer = $this->write(['items' => [['product_id' => $product->get_id(), 'expect' => 10, 'set' => 13], ['sku' => 'SR-APPLY', 'expect' => 13, 'set' => 13]]]);
        $this->assertSame(200, $answer['status'], $answer['body']);
        $this->assertSame(['applied', 13], [$answer['json']['items'][0]['status'], $answer['json']['items'][0]['stock_quantity']]);
        $this->assertMatchesRegularExpression('/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/', (string) $answer['json']['items'][0]['date_modified_gmt']);
        $this->assertSame(['applied', 13], [$answer['json']['items'][1]['status'], $answer['json']['items'][1]['stock_quantity']], 'by SKU, nothing to change');
        $this->assertSame(13, $this->stock($product->get_id()));
        $this->waitUntil(fn() => count(self::ofProduct(self::$receiver->events(), $product->get_id())) === 1, 10, 'the stock event');
        $event = self::ofProduct(self::$receiver->events(), $product->get_id())[0];
        $this->assertSame(['sidecar', 13.0], [$event['cause'], $event['stock_quantity']]);
        $this->assertReceiverSawOnlyValidBatches();
    }

    public function testRefusedCallsAndItemsChangeNothing(): void
    {
        $product = $this->makeSimpleProduct('SR-BAD', 10);
        $unmanaged = new WC_Product_Simple();
        $unmanaged->set_name('SR unmanaged');
        $unmanaged->set_sku('SR-UNMANAGED');
        $unmanaged->save();
        $item = ['product_id' => $product->get_id(), 'expect' => 10, 'set' => 0];

        $this->assertSame(401, $this->write(['items' => [$item]], 'another-secret-0123456789abcdef')['status']);
        $url = self::env('wp_url') . '/?' . http_build_query(['rest_route' => self::ROUTE]);
        $this->assertSame(401, Http::request('POST', $url, (string) json_encode(['items' => [$item]]), ['Content-Type: application/json'])['status']);
        $this->assertSame(400, $this->write(['items' => 'all'])['status']);
        $this->assertSame(10, $this->stock($product->get_id()));

        $answer = $this->write(['items' => [
            ['product_id' => 999999, 'expect' => 1, 'set' => 2],
            ['product_id' => $unmanaged->get_id(), 'expect' => 1, 'set' => 2],
            ['product_id' => $product->get_id(), 'expect' => 10, 'set' => -1],
            ['product_id' => $product->get_id(), 'expect' => null, 'set' => 4],
        ]]);
        $this->assertSame(200, $answer['status'], $answer['body']);
        $items = $answer['json']['items'];
        $this->assertSame(['error', 'not_found'], [$items[0]['status'], $items[0]['error']]);
        $this->assertSame(['error', 'stock_not_managed'], [$items[1]['status'], $items[1]['error']]);
        $this->assertSame('error', $items[2]['status']);
        $this->assertSame(['conflict', 10], [$items[3]['status'], $items[3]['stock_quantity']], 'unknown expectation: told, not written');
        $this->assertSame(10, $this->stock($product->get_id()));
    }

    /**
     * Checkouts and conditional writes at the same moment from parallel PHP-FPM workers: every write that
     * says "applied" saw exactly the value it expected, and no checkout's decrement is lost.
     */
    public function testParallelCheckoutsAndWritesLoseNoDecrement(): void
    {
        $product = $this->makeSimpleProduct('SR-PAR', 100);
        $id = $product->get_id();
        $multi = curl_multi_init();
        $handles = [];
        for ($n = 0; $n < 8; $n++) {
            $handles[] = $this->restHandle('POST', '/orders', ['set_paid' => true, 'line_items' => [['product_id' => $id, 'quantity' => 1]]]);
            $body = (string) json_encode(['items' => [['product_id' => $id, 'expect' => 100 - $n, 'set' => 200 + $n]]]);
            $headers = ['Content-Type: application/json'];
            foreach (Signer::headers(self::SECRET, 'POST', self::ROUTE, $body) as $name => $value) {
                $headers[] = $name . ': ' . $value;
            }
            $handles[] = $this->handle(self::env('wp_url') . '/?rest_route=' . self::ROUTE, $body, $headers);
        }
        foreach ($handles as $handle) {
            curl_multi_add_handle($multi, $handle);
        }
        do {
            curl_multi_exec($multi, $running);
            curl_multi_select($multi, 1.0);
        } while ($running > 0);
        $shift = 0;
        $orders = 0;
        foreach ($handles as $index => $handle) {
            $json = json_decode((string) curl_multi_getcontent($handle), true);
            $this->assertSame(200, curl_getinfo($handle, CURLINFO_RESPONSE_CODE), (string) curl_multi_getcontent($handle));
            $n = intdiv($index, 2);
            if ($index % 2 === 0) {
                $orders++;
            } elseif ($json['items'][0]['status'] === 'applied') {
                $shift += (200 + $n) - (100 - $n); // it replaced exactly the value it expected
            } else {
                $this->assertSame('conflict', $json['items'][0]['status']);
            }
            curl_multi_remove_handle($multi, $handle);
        }
        curl_multi_close($multi);
        // Each applied write moved the stock by (set - expect) and nothing else; each checkout by -1.
        $this->assertSame(8, $orders);
        $this->assertSame(100 + $shift - 8, $this->stock($id), 'no checkout lost, no write applied to another value');
    }

    /** @param array<string, mixed> $body */
    private function restHandle(string $method, string $route, array $body)
    {
        $url = self::env('wp_url') . '/?' . http_build_query(['rest_route' => '/wc/v3' . $route]);
        return $this->handle($url, (string) json_encode($body), ['Content-Type: application/json'], $method);
    }

    /** @param string[] $headers */
    private function handle(string $url, string $body, array $headers, string $method = 'POST')
    {
        $handle = curl_init($url);
        curl_setopt_array($handle, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_POSTFIELDS => $body,
            CURLOPT_HTTPHEADER => $headers,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => 60,
        ]);
        return $handle;
    }
}
