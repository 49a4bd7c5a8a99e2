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
use KeycrmBridge\Settings;

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

        /** @param array<string, mixed> $assoc */
        public static function confirm(string $question, array $assoc = []): void
        {
            self::$out[] = 'Confirm: ' . $question;
            if (empty($assoc['yes'])) {
                throw new RuntimeException('declined'); // The real one exits on "n".
            }
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
        $this->assertSame('done: 120/120, 0 errors', WP_CLI::$out[count(WP_CLI::$out) - 3]);
        $this->assertSame('Success: Resync finished.', end(WP_CLI::$out));
    }

    public function testStatusAsJsonPrintsOnlyJson(): void
    {
        $this->commands->status([], ['format' => 'json']);
        $this->assertCount(1, WP_CLI::$out);
        $data = json_decode(WP_CLI::$out[0], true);
        $this->assertSame('keycrm', $data['sidecar']['mode']);
        $this->assertSame(0, $data['outbox']['pending']);
    }

    public function testResyncAsksBeforeApplyingUnlessYes(): void
    {
        self::$receiver->control(['resync' => true]);
        try {
            $this->commands->resync([], []);
            $this->fail('applied without asking');
        } catch (RuntimeException $e) {
            $this->assertSame('declined', $e->getMessage());
        }
        $this->assertStringStartsWith('Confirm: Apply the full resync', WP_CLI::$out[0]);
        $this->assertCount(1, WP_CLI::$out, 'nothing started before the answer');
        WP_CLI::$out = [];
        $this->commands->resync([], ['yes' => true]);
        $this->assertSame('Success: Resync finished.', end(WP_CLI::$out));
        $phases = array_filter(WP_CLI::$out, static fn($l) => preg_match('/^\w+: \d+\/\d+, \d+ errors$/', $l) === 1);
        $this->assertSame(count($phases), count(array_unique(array_map(static fn($l) => strtok($l, ':'), $phases))),
            'one line per phase, not one every poll');
    }

    public function testResyncIsRememberedLikeThePagesSoThePageOffersItsReport(): void
    {
        // The last job the page remembered is replaced, as a new job started on the page would replace it.
        update_option(Settings::RESYNC_JOB, ['id' => 'rs-page', 'dry_run' => false, 'finished' => true, 'report' => true, 'finished_at' => 1], false);
        self::$receiver->control(['resync' => true]);
        $this->commands->resync([], ['dry-run' => true]);
        $this->assertMatchesRegularExpression('/^Resync (rs-\d+) started \(dry run\)\.$/', WP_CLI::$out[0]);
        preg_match('/^Resync (rs-\d+) started/', WP_CLI::$out[0], $m);
        $id = $m[1];

        $job = $this->freshOption(Settings::RESYNC_JOB);
        $kept = array_intersect_key($job, ['id' => 1, 'dry_run' => 1, 'finished' => 1, 'report' => 1]);
        ksort($kept);
        $this->assertSame(['dry_run' => true, 'finished' => true, 'id' => $id, 'report' => true], $kept);
        $this->assertGreaterThan(1, $job['finished_at']);
        $this->assertSame(
            'Report (CSV or JSON): download it on the KeyCRM Bridge admin page, ' . self::env('wp_url') . '/wp-admin/admin.php?page=keycrm-bridge',
            WP_CLI::$out[count(WP_CLI::$out) - 2]
        );

        $polls = count(self::resyncGets());
        $page = Http::request('GET', self::env('wp_url') . '/wp-admin/admin.php?page=keycrm-bridge', null, [], AdminSession::login());
        $this->assertSame(200, $page['status']);
        $this->assertStringContainsString('<p id="kcb-resync-report" class="kcb-report"><span class="kcb-report-label">Report of the last dry run, finished ', $page['body']);
        $this->assertStringContainsString('admin-post.php?action=kcb_resync_report&#038;id=' . $id . '&#038;format=csv&#038;_wpnonce=', $page['body']);
        $this->assertStringNotContainsString('data-job=', $page['body'], 'the finished job is not followed again');
        $this->assertSame($polls, count(self::resyncGets()), 'the page did not need to ask the sidecar how the job ended');
    }

    /** @return string[] paths of the signed GET /v1/resync/{id} the receiver answered */
    private static function resyncGets(): array
    {
        return array_values(array_filter(
            array_column(self::$receiver->recorded()['gets'], 'path'),
            static fn($p) => preg_match('#^/v1/resync/[^/]+$#', $p) === 1
        ));
    }
}
