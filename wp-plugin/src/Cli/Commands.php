<?php

/**
 * WP-CLI: wp keycrm-bridge status [--format=json] | resync [--dry-run] [--yes] | flush-outbox
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Cli;

use KeycrmBridge\Admin\AdminPage;
use KeycrmBridge\Dispatcher;
use KeycrmBridge\Outbox;
use KeycrmBridge\ResyncJob;
use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;

defined('ABSPATH') || exit;

/**
 * Talks to the KeyCRM Bridge sidecar and shows this shop's outbox.
 */
final class Commands
{
    public function __construct(private Dispatcher $dispatcher)
    {
    }

    /**
     * Show the outbox of this shop and the sidecar's status.
     *
     * ## OPTIONS
     *
     * [--format=<format>]
     * : table (words, the default) or json (only JSON: this shop's outbox and the sidecar's status).
     *
     * ## EXAMPLES
     *
     *     wp keycrm-bridge status
     *     wp keycrm-bridge status --format=json
     *
     * @param string[]             $args
     * @param array<string, mixed> $assoc
     */
    public function status(array $args = [], array $assoc = []): void
    {
        $stats = Outbox::stats();
        $state = Settings::state();
        if (($assoc['format'] ?? 'table') === 'json') {
            $response = Settings::isConfigured() ? SidecarClient::fromSettings()->call('GET', '/v1/status', null, 5.0) : null;
            \WP_CLI::line((string) wp_json_encode([
                'sidecar_url' => Settings::sidecarUrl(),
                'outbox' => ['pending' => $stats['pending'], 'oldest_age_s' => $stats['oldest_age_s'], 'set_aside' => $stats['dead']],
                'last_error' => $state['last_error'],
                'sidecar' => $response !== null && $response->ok() ? $response->data : null,
                'sidecar_error' => $response === null ? 'not configured' : ($response->ok() ? null : $response->error),
            ], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE));
            return;
        }
        \WP_CLI::line(sprintf('Sidecar URL:      %s', Settings::sidecarUrl() !== '' ? Settings::sidecarUrl() : '(not set)'));
        \WP_CLI::line(sprintf('Outbox pending:   %d (oldest %d s)', $stats['pending'], $stats['oldest_age_s']));
        \WP_CLI::line(sprintf('Outbox set aside: %d', $stats['dead']));
        \WP_CLI::line(sprintf('Last error:       %s', $state['last_error'] !== '' ? $state['last_error'] : '-'));
        if (!Settings::isConfigured()) {
            \WP_CLI::warning('The sidecar URL or shared secret is not set.');
            return;
        }
        $response = SidecarClient::fromSettings()->call('GET', '/v1/status', null, 5.0);
        if (!$response->ok()) {
            \WP_CLI::error('Sidecar status unavailable: ' . $response->error);
        }
        \WP_CLI::line('Sidecar status:');
        \WP_CLI::line((string) wp_json_encode($response->data, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES));
    }

    /**
     * Start a full resync in the sidecar and follow it until it ends. The job is remembered like one
     * started on the admin page (WooCommerce → KeyCRM Bridge), which then offers its report for download.
     *
     * ## OPTIONS
     *
     * [--dry-run]
     * : Report the differences only.
     *
     * [--yes]
     * : Apply without asking (without --dry-run, the command asks before it changes stock).
     *
     * @param string[]             $args
     * @param array<string, mixed> $assoc
     */
    public function resync(array $args, array $assoc): void
    {
        $dryRun = !empty($assoc['dry-run']);
        if (!$dryRun && method_exists('WP_CLI', 'confirm')) {
            // WP-CLI's confirm() returns when --yes is given and exits on "n".
            \WP_CLI::confirm('Apply the full resync to WooCommerce and KeyCRM now (run it with --dry-run first to see what changes)?', $assoc);
        }
        $client = SidecarClient::fromSettings();
        $start = $client->call('POST', '/v1/resync', ['dry_run' => $dryRun], 10.0);
        if ($start->status === 404) {
            \WP_CLI::error('This sidecar does not offer full resync yet (no /v1/resync). Nothing was changed.');
        }
        $id = (string) ($start->data['id'] ?? '');
        if (!$start->ok() || !ResyncJob::isValidId($id)) {
            \WP_CLI::error('Could not start the resync: ' . ($start->ok() ? 'the sidecar named no valid job id' : $start->error));
        }
        ResyncJob::started($id, $dryRun);
        \WP_CLI::line(sprintf('Resync %s started%s.', $id, $dryRun ? ' (dry run)' : ''));
        // One bar redrawn in place where WP-CLI offers it; otherwise a line only when the phase changes.
        $bar = function_exists('WP_CLI\\Utils\\make_progress_bar') ? \WP_CLI\Utils\make_progress_bar('Resync', 100) : null;
        $shown = 0;
        $lastPhase = '';
        while (true) {
            $progress = $client->call('GET', '/v1/resync/' . rawurlencode($id), null, 5.0);
            ResyncJob::remember($id, $progress);
            if (!$progress->ok()) {
                \WP_CLI::error('Lost the resync job: ' . $progress->error);
            }
            $data = (array) $progress->data;
            $phase = (string) ($data['phase'] ?? '?');
            $done = (int) ($data['done'] ?? 0);
            $total = (int) ($data['total'] ?? 0);
            $finished = ResyncJob::isFinished($phase);
            // The total grows while the listings are read: the bar never runs backwards.
            $percent = $finished && $phase === 'done' ? 100 : ($total > 0 ? (int) floor(99 * min($done, $total) / $total) : 0);
            if ($bar !== null && $percent > $shown) {
                $bar->tick($percent - $shown);
            }
            $shown = max($shown, $percent);
            if ($bar === null && ($phase !== $lastPhase || $finished)) {
                \WP_CLI::line(sprintf('%s: %d/%d, %d errors', $phase, $done, $total, (int) ($data['errors'] ?? 0)));
            }
            $lastPhase = $phase;
            if ($finished) {
                break;
            }
            sleep(1); // Polling a job another process runs; nothing to wait on but time.
        }
        if ($bar !== null) {
            $bar->finish();
            \WP_CLI::line(sprintf('%s: %d/%d, %d errors', $phase, $done, $total, (int) ($data['errors'] ?? 0)));
        }
        if (ResyncJob::namesReport($data)) {
            \WP_CLI::line('Report (CSV or JSON): download it on the KeyCRM Bridge admin page, ' . AdminPage::pageUrl());
        } else {
            \WP_CLI::line('This resync has no report: it ended before its plan was ready.');
        }
        \WP_CLI::success('Resync finished.');
    }

    /**
     * Send every event waiting in the outbox now.
     *
     * ## OPTIONS
     *
     * [--revive]
     * : Also resend events the sidecar refused as malformed.
     *
     * @subcommand flush-outbox
     *
     * @param string[]             $args
     * @param array<string, mixed> $assoc
     */
    public function flushOutbox(array $args, array $assoc): void
    {
        if (!empty($assoc['revive'])) {
            Outbox::reviveDead();
        }
        do {
            $result = $this->dispatcher->flush(60.0);
            \WP_CLI::line(sprintf('Sent %d, %d still waiting, %d set aside.', $result['sent'], $result['pending'], $result['dead']));
        } while ($result['status'] === 'budget_spent');
        if ($result['status'] !== 'done') {
            \WP_CLI::error(sprintf('Outbox not sent (%s) %s', $result['status'], $result['error']));
        }
        \WP_CLI::success('Outbox sent.');
    }
}
