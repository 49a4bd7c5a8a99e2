<?php

/**
 * S14 and S15 from the plugin's side, over real HTTP: the shopper's request never sees the sidecar's
 * trouble, nothing is lost, and when the sidecar is back every event arrives exactly once, in order per SKU.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\RetryScheduler;
use KeycrmBridge\Settings;

final class DeliveryTest extends BridgeTestCase
{
    public function testHealthySidecarGetsOneSignedBatchPerRequestAndNothingIsQueued(): void
    {
        $product = $this->makeSimpleProduct('DL-OK', 10);
        $response = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 8, 'name' => 'DL ok renamed']);
        $this->assertSame(200, $response['status']);
        $this->waitUntil(fn() => count(self::$receiver->recorded()['batches']) === 1, 10, 'one batch');
        $this->assertReceiverSawOnlyValidBatches();
        $batch = self::$receiver->recorded()['batches'][0]['batch'];
        $this->assertSame(self::env('wp_url'), $batch['site']);
        $this->assertSame(['product.upsert', 'stock.set'], array_column($batch['events'], 'type'));
        $this->assertSame([], self::$receiver->recorded()['refused'], 'every request was correctly signed');
        // The row the request stored goes once the flush request has the sidecar's acknowledgement.
        $this->waitUntil(fn() => $this->outboxCount() === 0, 10, 'the acknowledged event removed from the outbox');
    }

    /**
     * With the sidecar back and events still waiting from its absence, a new sale neither waits for the
     * retry job nor overtakes them: its request stores its event behind them and starts the flush request,
     * which sends the whole outbox in order within moments. (A sale used to be queued behind the waiting
     * events and left to the next retry, which on a real shop came 30 s or more later.)
     */
    public function testASaleBehindWaitingEventsGoesOutWithThemAtOnce(): void
    {
        $product = $this->makeSimpleProduct('DL-BEHIND', 10);
        $product->set_stock_quantity(9);
        $waiting = \KeycrmBridge\EventFactory::stockSet($product, 'manual');
        \KeycrmBridge\Outbox::add([$waiting], 'HTTP 503');
        // The back-off after that failure is over; no retry job runs in this test.
        update_option(Settings::STATE, ['failures' => 1, 'fail_until' => time() - 1, 'last_error' => 'HTTP 503']);
        RetryScheduler::clear();

        $response = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 7]);
        $this->assertSame(200, $response['status'], $response['body']);
        $this->waitUntil(fn() => count(self::$receiver->events()) === 2, 10, 'both events at the sidecar, no retry job run');
        $this->assertSame([$waiting['id']], [self::$receiver->events()[0]['id']], 'the waiting event first');
        $this->assertSame([9.0, 7.0], array_column(self::$receiver->events(), 'stock_quantity'));
        $this->waitUntil(fn() => $this->outboxCount() === 0, 10, 'the outbox empty');
        $this->assertReceiverSawOnlyValidBatches();
    }

    /** @return array<string, array{0: string}> */
    public function failureModes(): array
    {
        return ['401' => ['401'], '500' => ['500'], 'garbage' => ['garbage'], 'hang' => ['hang']];
    }

    /**
     * S15: whatever the receiver does, the shopper gets a normal answer without waiting for it, the event
     * goes to the outbox, and the retry job delivers it exactly once when the receiver behaves again.
     *
     * @dataProvider failureModes
     */
    public function testMisbehavingSidecarNeverShowsAndLosesNothing(string $mode): void
    {
        $product = $this->makeSimpleProduct('DL-' . strtoupper($mode), 10);
        self::$receiver->control(['mode' => $mode, 'hang_s' => 6]);

        $response = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 3]);
        $this->assertSame(200, $response['status'], $response['body']);
        $this->assertSame(3, $response['json']['stock_quantity']);
        $this->assertStringNotContainsString('kcb', strtolower($response['body']));
        // The shopper's response does not wait for the sidecar (sent after fastcgi_finish_request).
        $this->assertLessThan(self::TIMEOUT, $response['seconds'], 'response waited for the sidecar');

        // The PHP-FPM worker writes, after the response, in this order: the outbox row, the failure
        // state, the retry. Waiting for the row alone and then reading the state raced the worker's
        // second write (seen with the fast 401 and 500 answers), so wait for the last write too.
        $this->waitUntil(
            fn() => $this->outboxCount() === 1 && ($this->freshOption(Settings::STATE)['failures'] ?? 0) === 1
                && RetryScheduler::next() !== false,
            15,
            'the event in the outbox, the failure recorded and a retry scheduled'
        );
        $queued = $this->outboxEvents()[0];
        $this->assertSame('stock.set', $queued['type']);
        $this->assertSame(3.0, $queued['stock_quantity']);
        $state = $this->freshOption(Settings::STATE);
        $this->assertSame(1, $state['failures']);
        $this->assertNotSame('', $state['last_error']);

        // While the circuit is open, the next change queues behind without calling the sidecar.
        $batchesBefore = count(self::$receiver->recorded()['batches']);
        $second = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 2]);
        $this->assertSame(200, $second['status']);
        $this->waitUntil(fn() => $this->outboxCount() === 2, 15, 'the second event queued');

        self::$receiver->control(['mode' => 'ok']);
        $this->runRetryJob();
        $this->assertSame(0, $this->outboxCount());
        $this->assertReceiverSawOnlyValidBatches();
        $delivered = self::ofProduct(self::$receiver->events(), $product->get_id());
        $this->assertSame([$queued['id'], $this->idOf($delivered, 2.0)], array_column($delivered, 'id'));
        $this->assertSame([3.0, 2.0], array_column($delivered, 'stock_quantity'));
        $this->assertSame($batchesBefore + 1, count(self::$receiver->recorded()['batches']));
        $this->assertSame(0, $this->freshOption(Settings::STATE)['failures']);
    }

    /**
     * S14: 500 stock changes in 500 requests with the receiver stopped; all complete normally and are kept;
     * when it returns, each event arrives exactly once, in order per SKU.
     */
    public function testFiveHundredChangesWhileTheSidecarIsDown(): void
    {
        $skus = 5;
        $products = [];
        for ($i = 0; $i < $skus; $i++) {
            $products[] = $this->makeSimpleProduct('S14-' . $i, 1000);
        }
        self::$receiver->stop();

        $expected = [];
        $slowest = 0.0;
        for ($n = 0; $n < 500; $n++) {
            $product = $products[$n % $skus];
            $quantity = 1000 - intdiv($n, $skus) - 1;
            $response = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => $quantity]);
            $this->assertSame(200, $response['status'], "request $n: " . $response['body']);
            $this->assertSame($quantity, $response['json']['stock_quantity'], "request $n");
            $expected[$product->get_id()][] = (float) $quantity;
            $slowest = max($slowest, $response['seconds']);
        }
        fwrite(STDERR, sprintf("\n[S14] 500 requests with the sidecar down, slowest %.0f ms\n", $slowest * 1000));

        $this->waitUntil(fn() => $this->outboxCount() === 500, 30, '500 events kept in the outbox');
        $this->runRetryJob();
        $this->assertSame(500, $this->outboxCount(), 'nothing leaves while the sidecar is down');

        self::$receiver->restart();
        $this->runRetryJob();
        $this->assertSame(0, $this->outboxCount());
        $this->assertReceiverSawOnlyValidBatches();
        $events = self::$receiver->events();
        $this->assertCount(500, $events);
        $this->assertCount(500, array_unique(array_column($events, 'id')), 'each event exactly once');
        foreach ($products as $product) {
            $mine = self::ofProduct($events, $product->get_id());
            $this->assertSame($expected[$product->get_id()], array_column($mine, 'stock_quantity'), 'order per SKU');
            $times = array_column($mine, 'occurred_at');
            $sorted = $times;
            sort($sorted);
            $this->assertSame($sorted, $times);
        }

        // A second run of the job sends nothing again.
        $this->runRetryJob();
        $this->assertCount(500, self::$receiver->events());
    }

    public function testRefusedEventIsSetAsideAndTheRestFlows(): void
    {
        global $wpdb;
        $product = $this->makeSimpleProduct('DL-BAD', 3);
        self::$receiver->stop();
        $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 2]);
        $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 1]);
        $this->waitUntil(fn() => $this->outboxCount() === 2, 15, 'two queued events');
        // Corrupt the first one so that the schema rejects it (422) once the sidecar is back.
        $table = \KeycrmBridge\Outbox::table();
        $first = (int) $wpdb->get_var("SELECT MIN(id) FROM $table");
        $payload = json_decode((string) $wpdb->get_var("SELECT payload FROM $table WHERE id = $first"), true);
        $payload['cause'] = 'bogus';
        $wpdb->update($table, ['payload' => json_encode($payload)], ['id' => $first]);

        self::$receiver->restart();
        $this->runRetryJob();
        $stats = \KeycrmBridge\Outbox::stats();
        $this->assertSame(['pending' => 0, 'dead' => 1], ['pending' => $stats['pending'], 'dead' => $stats['dead']]);
        $this->assertSame([1.0], array_column(self::$receiver->events(), 'stock_quantity'));
    }

    /** @param array<int, array<string, mixed>> $events */
    private function idOf(array $events, float $quantity): string
    {
        foreach ($events as $event) {
            if ($event['stock_quantity'] === $quantity) {
                return $event['id'];
            }
        }
        return '';
    }
}
