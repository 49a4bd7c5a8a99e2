<?php

/**
 * WP-CLI commands (WP-CLI is not packaged in Debian 12): driven through a recording stand-in of the
 * WP_CLI class with the same static methods the commands call.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Cli\Commands;
use KeycrmBridge\Outbox;
use KeycrmBridge\Plugin;

if (!class_exists('WP_CLI')) {
    // phpcs:ignore -- test double named like WP-CLI's class.
    final class WP_CLI
    {
        /** @var string[] */
        public static array $out = [];

        public static function line(string $message = ''): void
        {
            self::$out[] = $message;
        }

        public static function success(string $message): void
        {
            self::$out[] = 'Success: ' . $message;
        }

        public static function warning(string $message): void
        {
            self::$out[] = 'Warning: ' . $message;
        }

        public static function error(string $message): void
        {
            self::$out[] = 'Error: ' . $message;
            throw new RuntimeException($message); // The real one exits.
        }
    }
}

final class CliTest extends BridgeTestCase
{
    private Commands $commands;

    protected function setUp(): void
    {
        parent::setUp();
        WP_CLI::$out = [];
        $this->commands = new Commands(Plugin::instance()->dispatcher);
    }

    public function testStatusShowsOutboxAndSidecarStatus(): void
    {
        $product = $this->makeSimpleProduct('CLI-1', 3);
        Outbox::add([\KeycrmBridge\EventFactory::stockSet($product, 'manual')], 'HTTP 500');
        $this->commands->status();
        $text = implode("\n", WP_CLI::$out);
        $this->assertStringContainsString('Outbox pending:   1', $text);
        $this->assertStringContainsString('"mode": "keycrm"', $text);
    }

    public function testFlushOutboxSendsEverythingAndResyncReportsMissingApi(): void
    {
        $product = $this->makeSimpleProduct('CLI-2', 3);
        Outbox::add([\KeycrmBridge\EventFactory::stockSet($product, 'manual')], 'HTTP 500');
        $this->commands->flushOutbox([], []);
        $this->assertContains('Success: Outbox sent.', WP_CLI::$out);
        $this->assertSame(0, $this->outboxCount());
        $this->assertSame(['CLI-2'], array_column(self::$receiver->events(), 'sku'));

        $this->expectExceptionMessage('does not offer full resync yet');
        $this->commands->resync([], ['dry-run' => true]);
    }

    public function testResyncFollowsTheJob(): void
    {
        self::$receiver->control(['resync' => true]);
        $this->commands->resync([], ['dry-run' => true]);
        $this->assertStringContainsString('(dry run)', WP_CLI::$out[0]);
        $this->assertSame('done: 120/120, 0 errors', WP_CLI::$out[count(WP_CLI::$out) - 2]);
        $this->assertSame('Success: Resync finished.', end(WP_CLI::$out));
    }
}
