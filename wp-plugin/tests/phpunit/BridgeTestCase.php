<?php

/**
 * Shared set-up: a running receiver, the plugin pointed at it, a clean outbox, helpers for HTTP and waiting.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Dispatcher;
use KeycrmBridge\Outbox;
use KeycrmBridge\Plugin;
use KeycrmBridge\RetryScheduler;
use KeycrmBridge\Settings;
use PHPUnit\Framework\TestCase;

abstract class BridgeTestCase extends TestCase
{
    public const SECRET = 'c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789';
    /** Plugin send timeout in the tests: short, so "hang" cases take little time. */
    public const TIMEOUT = 1.5;

    protected static ?Receiver $receiver = null;

    public static function setUpBeforeClass(): void
    {
        self::$receiver = Receiver::start(self::SECRET);
    }

    public static function tearDownAfterClass(): void
    {
        self::$receiver?->stop();
        self::$receiver = null;
    }

    protected function setUp(): void
    {
        global $wpdb;
        $this->assertTrue(Http::waitForIdleWorkers(self::env('wp_url')), 'the previous test\'s flush requests finished');
        if (!self::$receiver->isRunning()) {
            self::$receiver->restart();
        }
        self::$receiver->reset();
        $wpdb->query('TRUNCATE TABLE ' . Outbox::table());
        update_option(Settings::URL, self::$receiver->url());
        update_option(Settings::SECRET, self::SECRET);
        update_option(Settings::TIMEOUT, (string) self::TIMEOUT);
        delete_option(Settings::STATE);
        RetryScheduler::clear();
        $wpdb->query('DELETE FROM ' . standin_as_table());
        delete_option(Settings::OUTBOX_CAP);
        delete_option(Settings::OUTBOX_ALERT);
        delete_option('standin_wc_log');
        Plugin::instance()->resetRequestState();
        unset($_GET['kcb_origin']);
    }

    protected function tearDown(): void
    {
        Plugin::instance()->resetRequestState();
        unset($_GET['kcb_origin']);
    }

    protected static function env(string $key): string
    {
        return (string) $GLOBALS['kcb_test_env'][$key];
    }

    /** Drop this process's caches so that writes made by PHP-FPM workers are seen. */
    protected function freshOption(string $name)
    {
        wp_cache_flush();
        return get_option($name);
    }

    /**
     * A WooCommerce REST call through nginx + PHP-FPM (plain permalinks: ?rest_route=).
     *
     * @param array<string, mixed>|null $body
     * @param array<string, string>     $query
     * @return array{status: int, body: string, seconds: float, url: string, json: mixed}
     */
    protected function rest(string $method, string $route, ?array $body = null, array $query = []): array
    {
        $url = self::env('wp_url') . '/?' . http_build_query(['rest_route' => '/wc/v3' . $route] + $query);
        $response = Http::request($method, $url, $body === null ? null : (string) json_encode($body), ['Content-Type: application/json']);
        $response['json'] = json_decode($response['body'], true);
        return $response;
    }

    /** @return array<int, array<string, mixed>> */
    protected function outboxEvents(): array
    {
        global $wpdb;
        $rows = $wpdb->get_col('SELECT payload FROM ' . Outbox::table() . ' ORDER BY id ASC');
        return array_map(static fn($payload) => json_decode($payload, true), $rows);
    }

    protected function outboxCount(): int
    {
        global $wpdb;
        return (int) $wpdb->get_var('SELECT COUNT(*) FROM ' . Outbox::table());
    }

    /** Poll a condition with a deadline (for work a PHP-FPM worker finishes after its response). */
    protected function waitUntil(callable $condition, float $seconds, string $what): void
    {
        $deadline = microtime(true) + $seconds;
        while (!$condition()) {
            if (microtime(true) > $deadline) {
                $this->fail('Timed out waiting for: ' . $what);
            }
            usleep(50000);
        }
        $this->addToAssertionCount(1);
    }

    /**
     * Run the retry job the way WP-Cron / Action Scheduler would, once no PHP-FPM worker is still sending
     * after its response (it holds the send lock; a job started meanwhile would find it busy and do nothing).
     */
    protected function runRetryJob(): void
    {
        $this->waitUntil(fn() => !$this->sendInProgress(), 20, 'no send in progress');
        wp_cache_flush();
        do_action(Dispatcher::FLUSH_HOOK);
    }

    protected function sendInProgress(): bool
    {
        global $wpdb;
        return $wpdb->get_var("SELECT IS_USED_LOCK('kcb_outbox_flush')") !== null;
    }

    /**
     * Run Action Scheduler's queue at the time the next flush is due (pretending that time has come),
     * as its runner would. Returns that time, or 0 when no flush was pending.
     */
    protected function runDueFlush(): int
    {
        $this->waitUntil(fn() => !$this->sendInProgress(), 20, 'no send in progress');
        wp_cache_flush();
        $due = RetryScheduler::next();
        if ($due === false) {
            return 0;
        }
        standin_as_run_queue((int) $due);
        return (int) $due;
    }

    protected function makeSimpleProduct(string $sku, int $stock, string $name = 'Test product'): WC_Product
    {
        $product = new WC_Product_Simple();
        $product->set_name($name);
        $product->set_sku($sku);
        $product->set_regular_price('10.50');
        $product->set_manage_stock(true);
        $product->set_stock_quantity($stock);
        $product->save();
        Plugin::instance()->resetRequestState();
        return wc_get_product($product->get_id());
    }

    /** Every batch the receiver saw passed the project's JSON Schema. */
    protected function assertReceiverSawOnlyValidBatches(): void
    {
        foreach (self::$receiver->recorded()['batches'] as $entry) {
            $this->assertTrue($entry['valid'], 'schema errors: ' . implode('; ', $entry['errors']));
        }
    }

    /**
     * @param array<int, array<string, mixed>> $events
     * @return array<int, array<string, mixed>>
     */
    protected static function ofProduct(array $events, int $productId, string $type = 'stock.set'): array
    {
        return array_values(array_filter(
            $events,
            static fn($e) => $e['product_id'] === $productId && $e['type'] === $type
        ));
    }
}
