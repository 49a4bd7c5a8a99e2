<?php

/**
 * On a real shop (WordPress 7.0, WooCommerce 11.0) Action Scheduler runs its queue from a WP-Cron job once
 * a minute, so a retry due 10-30 s after a failure could wait up to a minute longer: after a 2-minute
 * sidecar outage the outbox drained 44 s after the sidecar was back. The stand-in's Action Scheduler runs
 * only when told (standin_as_run_queue), like that once-a-minute runner; here WP-Cron alone must do it.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Dispatcher;
use KeycrmBridge\Plugin;
use KeycrmBridge\RetryScheduler;

final class RetryDoorbellTest extends BridgeTestCase
{
    public function testARetryUnderActionSchedulerIsDueInWpCronTooAndWpCronAloneDrainsTheOutbox(): void
    {
        $this->assertTrue(RetryScheduler::usesActionScheduler(), 'the stand-in provides Action Scheduler');
        $product = $this->makeSimpleProduct('RD-BELL', 5);
        self::$receiver->stop();
        $product->set_stock_quantity(4);
        $product->save();
        $before = time();
        Plugin::instance()->dispatcher->deliver(Plugin::instance()->buffer->drain());
        $this->assertSame(1, $this->outboxCount());

        wp_cache_flush();
        $queued = RetryScheduler::next();
        $cron = wp_next_scheduled(Dispatcher::FLUSH_HOOK);
        $this->assertNotFalse($queued, 'an Action Scheduler retry');
        $this->assertNotFalse($cron, 'and a WP-Cron one');
        $this->assertSame($queued, $cron, 'due at the same time: the end of the back-off');
        $this->assertLessThanOrEqual($before + Dispatcher::BACKOFF_BASE + 1, $cron);

        self::$receiver->restart();
        $this->runDueWpCron((int) $cron);
        $this->assertSame(0, $this->outboxCount(), 'drained by WP-Cron, without waiting for the AS runner');
        $this->assertSame([4.0], array_column(self::ofProduct(self::$receiver->events(), $product->get_id()), 'stock_quantity'));
        // Action Scheduler's own run, when it comes, finds nothing left to send.
        $this->runDueFlush();
        $this->assertCount(1, self::$receiver->events());
    }

    /** What wp-cron.php does for the plugin's flush events due by $now (other jobs are left alone). */
    private function runDueWpCron(int $now): void
    {
        wp_cache_flush();
        foreach ((array) _get_cron_array() as $timestamp => $hooks) {
            if ($timestamp > $now) {
                continue;
            }
            foreach ($hooks as $hook => $events) {
                if ($hook !== Dispatcher::FLUSH_HOOK) {
                    continue;
                }
                foreach ($events as $event) {
                    wp_unschedule_event($timestamp, $hook, $event['args']);
                    do_action_ref_array($hook, $event['args']);
                }
            }
        }
    }
}
