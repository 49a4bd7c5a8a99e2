<?php

/**
 * The outbox from the plugin's side: events leave only on an answer that acknowledges their batch, the
 * table has a cap that is announced before it is reached, Action Scheduler's retry chain never ends while
 * the sidecar is away, and where the response cannot be finished early the events leave by a request of
 * their own.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Admin\OutboxNotice;
use KeycrmBridge\AsyncFlush;
use KeycrmBridge\Dispatcher;
use KeycrmBridge\OutboxLimit;
use KeycrmBridge\Plugin;
use KeycrmBridge\ResyncJob;
use KeycrmBridge\RetryScheduler;
use KeycrmBridge\Settings;

final class OutboxTest extends BridgeTestCase
{
    private const WEEK = 7 * 86400;

    public function testAnAnswerThatDoesNotNameTheBatchLeavesItInPlace(): void
    {
        $product = $this->makeSimpleProduct('OB-ACK', 10);
        self::$receiver->control(['mode' => 'empty200']);
        $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 7]);
        $this->waitUntil(
            fn() => count(self::$receiver->recorded()['batches']) === 1 && ($this->freshOption(Settings::STATE)['failures'] ?? 0) === 1,
            15,
            'the batch sent and its {} 200 counted as a failure'
        );
        $this->assertSame(1, $this->outboxCount(), 'the event kept after a {} 200');
        $this->runRetryJob();
        $this->assertSame(1, $this->outboxCount(), 'a {} 200 acknowledges nothing');
        $this->assertStringContainsString('does not acknowledge', $this->freshOption(Settings::STATE)['last_error']);

        self::$receiver->control(['mode' => 'ok']);
        $this->runRetryJob();
        $this->assertSame(0, $this->outboxCount());
        $ids = array_column(self::$receiver->events(), 'id');
        $this->assertCount(3, $ids, 'sent twice unacknowledged, once acknowledged');
        $this->assertCount(1, array_unique($ids), 'always the same event');
    }

    public function testOnlyTheSidecarsAnswerForExactlyThisBatchCounts(): void
    {
        $body = '{"events":[1,2]}';
        $hash = hash('sha256', $body);
        $answer = static fn(int $status, ?array $data) => KeycrmBridge\SidecarClient::acknowledged(
            new KeycrmBridge\SidecarResponse(KeycrmBridge\SidecarResponse::OK, $status, $data, ''),
            2,
            $body
        )->ok();
        $this->assertTrue($answer(202, ['accepted' => 2, 'batch_sha256' => $hash]));
        $this->assertFalse($answer(200, []), '{}');
        $this->assertFalse($answer(200, ['accepted' => 2, 'batch_sha256' => $hash]), 'not a 202');
        $this->assertFalse($answer(202, ['accepted' => 1, 'batch_sha256' => $hash]), 'another count');
        $this->assertFalse($answer(202, ['accepted' => 2, 'batch_sha256' => hash('sha256', '{}')]), 'another batch');
        $this->assertFalse($answer(202, ['accepted' => 2]), 'no hash');
    }

    /**
     * 500 events over a simulated week with the sidecar away: the retry chain keeps going, every event stays,
     * in order, under the cap; the notice and the WooCommerce log say so before the cap is reached.
     */
    public function testAWeekAwayKeepsFiveHundredEventsInOrderUnderTheCapWithANotice(): void
    {
        update_option(Settings::OUTBOX_CAP, 600);
        $product = $this->makeSimpleProduct('OB-WEEK', 1000);
        self::$receiver->stop();
        $dispatcher = Plugin::instance()->dispatcher;
        $runs = 0;
        for ($day = 0; $day < 7; $day++) {
            for ($n = 0; $n < 72; $n++) {
                $product->set_stock_quantity(1000 - ($day * 72 + $n) - 1);
                $product->save();
                $dispatcher->deliver(Plugin::instance()->buffer->drain());
            }
            // The day's retries: each failed flush must leave the next one scheduled.
            for ($try = 0; $try < 3; $try++) {
                $this->assertGreaterThan(0, $this->runDueFlush(), "day $day: the retry chain goes on");
                $runs++;
            }
            $this->ageOutbox(86400);
        }
        $product->set_stock_quantity(1);
        $product->save();
        $dispatcher->deliver(Plugin::instance()->buffer->drain());
        $this->assertSame(505, $this->outboxCount(), '505 events kept');
        $this->assertGreaterThanOrEqual(self::WEEK, KeycrmBridge\Outbox::stats()['oldest_age_s'], 'the oldest waited a week');
        $this->assertSame(600, OutboxLimit::cap());
        $kept = array_column(self::ofProduct($this->outboxEvents(), $product->get_id()), 'stock_quantity');
        $this->assertSame(range(999.0, 496.0, -1.0) + [504 => 1.0], $kept, 'in the order they happened');
        $this->assertNotFalse(RetryScheduler::next(), 'a retry is still scheduled after ' . $runs . ' failures');

        $this->assertStringContainsString('505', $this->renderNotice(), 'the notice names the queue');
        $warnings = $this->logEntries('warning');
        $this->assertCount(1, $warnings, 'one log entry when the outbox passed 80 % of its cap');
        $this->assertStringContainsString('of at most 600 events', $warnings[0]['message']);

        // Past the cap: new events are refused, loudly, never the older ones.
        for ($n = 0; $n < 100; $n++) {
            $product->set_stock_quantity(2 + $n);
            $product->save();
            $dispatcher->deliver(Plugin::instance()->buffer->drain());
        }
        $this->assertSame(600, $this->outboxCount());
        $this->assertSame(999.0, $this->outboxEvents()[0]['stock_quantity'], 'the oldest event is still first');
        $this->assertCount(5, $this->logEntries('error'), 'every refused event is logged');
        $this->assertSame(['OB-WEEK'], $this->logEntries('error')[0]['context']['skus']);
        $this->assertStringContainsString('5 changes were not kept', $this->renderNotice());

        // The sidecar is back: the next due flush sends everything, oldest first.
        self::$receiver->restart();
        $this->runDueFlush();
        $this->assertSame(0, $this->outboxCount());
        $sent = array_column(self::ofProduct(self::$receiver->events(), $product->get_id()), 'stock_quantity');
        $this->assertCount(600, $sent);
        $this->assertSame(999.0, $sent[0]);
        $notice = $this->renderNotice();
        $this->assertStringNotContainsString('waiting for the sidecar', $notice);
        $this->assertStringContainsString('Full resync', $notice, 'the refused events are not forgotten');
        ResyncJob::started('rs-1', false);
        $this->assertSame('', $this->renderNotice(), 'a Full resync reads them again');
    }

    /**
     * Action Scheduler answers as_next_scheduled_action() with true for the action that is running. A
     * failed flush that asked it scheduled nothing; the chain must go on however often the flush fails.
     */
    public function testTheRetryChainUnderActionSchedulerSurvivesRepeatedFailures(): void
    {
        $this->assertTrue(RetryScheduler::usesActionScheduler(), 'the stand-in provides Action Scheduler');
        $seenInside = [];
        $probe = static function () use (&$seenInside): void {
            $seenInside[] = as_next_scheduled_action(Dispatcher::FLUSH_HOOK, [], Dispatcher::AS_GROUP);
        };
        add_action(Dispatcher::FLUSH_HOOK, $probe, 1);
        try {
            $product = $this->makeSimpleProduct('OB-CHAIN', 5);
            self::$receiver->stop();
            $product->set_stock_quantity(4);
            $product->save();
            Plugin::instance()->dispatcher->deliver(Plugin::instance()->buffer->drain());
            for ($failure = 1; $failure <= 5; $failure++) {
                $before = time();
                $due = $this->runDueFlush();
                $this->assertGreaterThan(0, $due, "failure $failure: a flush was pending");
                $next = RetryScheduler::next();
                $this->assertNotFalse($next, "after failure $failure the next flush is scheduled");
                $this->assertLessThanOrEqual($before + Dispatcher::BACKOFF_MAX + 1, $next, 'within the back-off');
            }
            $this->assertSame([true, true, true, true, true], $seenInside, 'the stand-in sees the running action');
            $this->assertSame(1, $this->outboxCount());

            self::$receiver->restart();
            $back = time();
            $due = $this->runDueFlush();
            $this->assertSame(0, $this->outboxCount(), 'drained by the next scheduled flush');
            $this->assertLessThanOrEqual($back + Dispatcher::BACKOFF_MAX + 1, $due, 'at most 30 s after the sidecar is back');
            $this->assertFalse(RetryScheduler::next(), 'and nothing more is scheduled');
        } finally {
            remove_action(Dispatcher::FLUSH_HOOK, $probe, 1);
        }
    }

    public function testWpCronKeepsOneRetryWhereActionSchedulerIsNotUsed(): void
    {
        add_filter('kcb_use_action_scheduler', '__return_false');
        try {
            $product = $this->makeSimpleProduct('OB-CRON', 5);
            self::$receiver->stop();
            $product->set_stock_quantity(3);
            $product->save();
            Plugin::instance()->dispatcher->deliver(Plugin::instance()->buffer->drain());
            $first = wp_next_scheduled(Dispatcher::FLUSH_HOOK);
            $this->assertNotFalse($first);
            $this->assertSame([], as_get_scheduled_actions(['hook' => Dispatcher::FLUSH_HOOK, 'status' => 'pending'], 'ids'));
            self::$receiver->restart();
            $this->runRetryJob();
            $this->assertSame(0, $this->outboxCount());
        } finally {
            remove_filter('kcb_use_action_scheduler', '__return_false');
        }
    }

    /**
     * Where PHP cannot answer the shopper first (Apache with mod_php), the request only stores its events
     * and starts a loopback request that sends them; they reach the sidecar within a second or two.
     */
    public function testHandOffSendsTheEventsFromARequestOfTheirOwn(): void
    {
        $product = $this->makeSimpleProduct('OB-HAND', 9);
        $product->set_stock_quantity(8);
        $product->save();
        $started = microtime(true);
        Plugin::instance()->dispatcher->handOff(Plugin::instance()->buffer->drain());
        $handOff = microtime(true) - $started;
        $this->assertLessThan(0.5, $handOff, 'the shopper\'s request does not wait for the sidecar');
        $this->waitUntil(fn() => count(self::$receiver->events()) === 1, 10, 'the event sent by the loopback request');
        $this->waitUntil(fn() => $this->outboxCount() === 0, 10, 'and removed from the outbox');
        $this->assertSame(8.0, self::$receiver->events()[0]['stock_quantity']);

        $forged = http_build_query(['action' => AsyncFlush::ACTION, 'token' => AsyncFlush::token('wrong')]);
        foreach ([add_query_arg(AsyncFlush::QUERY, '1', home_url('/')), admin_url('admin-ajax.php')] as $url) {
            $this->assertSame(403, Http::request('POST', $url, $forged)['status'], "a call to $url without the shared secret's token is refused");
        }
    }

    /**
     * While one request's send waits on a sidecar that never answers, the others queue behind it instead of
     * each holding a PHP-FPM worker for the whole timeout (six hung workers would stall the shop).
     */
    public function testOnlyOneRequestWaitsOnAHangingSidecar(): void
    {
        $products = [];
        for ($n = 0; $n < 4; $n++) {
            $products[] = $this->makeSimpleProduct('OB-HANG-' . $n, 10);
        }
        self::$receiver->control(['mode' => 'hang', 'hang_s' => 8]);
        $this->rest('PUT', '/products/' . $products[0]->get_id(), ['stock_quantity' => 9]);
        $this->waitUntil(fn() => count(self::$receiver->recorded()['batches']) === 0 && $this->sendInProgress(), 10, 'the first send hanging');
        $started = microtime(true);
        foreach (array_slice($products, 1) as $product) {
            $response = $this->rest('PUT', '/products/' . $product->get_id(), ['stock_quantity' => 9]);
            $this->assertSame(200, $response['status']);
        }
        // The hung send's own event is in the outbox too: every request stores its events before any send.
        $this->waitUntil(fn() => $this->outboxCount() === 4, 5, 'the others queued behind the hanging send');
        $this->assertLessThan(self::TIMEOUT, microtime(true) - $started, 'none of them waited for the sidecar');
        self::$receiver->control(['mode' => 'ok']);
        $this->runRetryJob();
        $this->assertSame(0, $this->outboxCount());
        $this->assertCount(4, self::$receiver->events());
    }

    private function renderNotice(): string
    {
        wp_cache_flush();
        $admins = get_users(['role' => 'administrator', 'number' => 1]);
        $previous = get_current_user_id();
        wp_set_current_user($admins[0]->ID);
        ob_start();
        (new OutboxNotice())->render();
        $html = (string) ob_get_clean();
        wp_set_current_user($previous);
        return trim(html_entity_decode(wp_strip_all_tags($html)));
    }

    /** @return array<int, array<string, mixed>> */
    private function logEntries(string $level): array
    {
        wp_cache_flush();
        $entries = (array) get_option('standin_wc_log', []);
        return array_values(array_filter(
            $entries,
            static fn($e) => $e['level'] === $level && $e['source'] === 'keycrm-bridge'
        ));
    }

    /** Pretend the queued rows waited $seconds longer (a simulated week). */
    private function ageOutbox(int $seconds): void
    {
        global $wpdb;
        $wpdb->query($wpdb->prepare('UPDATE ' . KeycrmBridge\Outbox::table() . ' SET queued_at = queued_at - %d', $seconds));
    }
}
