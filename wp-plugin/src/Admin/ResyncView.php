<?php

/**
 * The plugin page's Full resync section, its report download and its AJAX endpoints.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\ResyncJob;
use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;

defined('ABSPATH') || exit;

/**
 * Full resync: the start button, progress (admin.js polls ajaxResyncProgress), the report download
 * (a signed GET passed on as a file) and the review of a finished dry run (ReviewView).
 */
final class ResyncView
{
    /** admin-post.php action (and nonce action) of the resync report download. */
    public const REPORT_ACTION = 'kcb_resync_report';
    /** The sidecar writes the report while it reads its plan table: allow a large catalogue time. */
    private const REPORT_TIMEOUT = 60.0;
    private const REPORT_FORMATS = ['csv' => 'text/csv; charset=utf-8', 'json' => 'application/json; charset=utf-8'];

    public static function render(bool $sidecarAnswered, bool $firstSyncWaits): void
    {
        echo '<h2>' . esc_html__('Full resync', 'keycrm-bridge') . '</h2>';
        echo '<p class="description">' . esc_html__(
            'Compares every product of the shop with KeyCRM and fixes the differences. A dry run only reports them.',
            'keycrm-bridge'
        ) . '</p>';
        if ($firstSyncWaits) {
            echo '<div class="notice notice-info inline kcb-first-sync"><p>' . esc_html__(
                'Nothing is written to either side yet. Press "Review and start": the comparison runs as a dry run and is shown here; when it looks right, apply it to start syncing.',
                'keycrm-bridge'
            ) . '</p></div>';
        }
        printf(
            '<p><label><input type="checkbox" id="kcb-resync-dry-run" value="1" checked> %s</label></p>',
            esc_html__('Dry run (report only, change nothing)', 'keycrm-bridge')
        );
        printf(
            '<p><button type="button" class="button button-primary" id="kcb-resync-start">%s</button></p>',
            $firstSyncWaits ? esc_html__('Review and start', 'keycrm-bridge') : esc_html__('Full resync', 'keycrm-bridge')
        );
        $job = ResyncJob::last();
        if ($job !== null && !$job['finished'] && $sidecarAnswered) {
            // Left before the job ended (or started it from another browser or WP-CLI): ask once how it went.
            ResyncJob::remember($job['id'], SidecarClient::fromSettings()->call(
                'GET',
                '/v1/resync/' . rawurlencode($job['id']),
                null,
                AdminPage::STATUS_TIMEOUT
            ));
            $job = ResyncJob::last();
        }
        $running = $job !== null && !$job['finished'] && $sidecarAnswered;
        echo '<progress id="kcb-resync-progress" max="100" value="0"' . ($running ? '' : ' hidden') . '></progress>';
        printf(
            '<div id="kcb-resync-status" class="kcb-result" role="status" aria-live="polite"%s></div>',
            $running ? ' data-job="' . esc_attr($job['id']) . '"' : ''
        );
        $report = $job !== null && $job['report'] ? self::reportLinks($job) : null;
        printf(
            '<p id="kcb-resync-report" class="kcb-report"%s><span class="kcb-report-label">%s</span> '
            . '<a class="button button-secondary" id="kcb-report-csv" href="%s">%s</a> '
            . '<a class="button button-secondary" id="kcb-report-json" href="%s">%s</a></p>',
            $report === null ? ' hidden' : '',
            esc_html($report['label'] ?? ''),
            esc_url($report['csv'] ?? ''),
            esc_html__('Download report (CSV)', 'keycrm-bridge'),
            esc_url($report['json'] ?? ''),
            esc_html__('Download report (JSON)', 'keycrm-bridge')
        );
        $reviewable = $job !== null && $job['finished'] && $job['dry_run'] && $job['report'] && $sidecarAnswered;
        ReviewView::render($reviewable ? $job['id'] : null, $firstSyncWaits);
    }

    /**
     * Download links (admin-post.php, nonce included) and their caption for a finished job.
     *
     * @param array{id: string, dry_run: bool, finished_at: int} $job
     * @return array{csv: string, json: string, label: string}
     */
    private static function reportLinks(array $job): array
    {
        $nonce = wp_create_nonce(self::REPORT_ACTION);
        $url = static fn(string $format): string => add_query_arg(
            ['action' => self::REPORT_ACTION, 'id' => $job['id'], 'format' => $format, '_wpnonce' => $nonce],
            admin_url('admin-post.php')
        );
        $when = AdminFormat::time($job['finished_at'] > 0 ? $job['finished_at'] : time());
        return [
            'csv' => $url('csv'),
            'json' => $url('json'),
            'label' => $job['dry_run']
                /* translators: %s: date and time the dry run finished. */
                ? sprintf(__('Report of the last dry run, finished %s:', 'keycrm-bridge'), $when)
                /* translators: %s: date and time the full resync finished. */
                : sprintf(__('Report of the last full resync, finished %s:', 'keycrm-bridge'), $when),
        ];
    }

    /**
     * admin-post.php?action=kcb_resync_report&id=...&format=csv|json: the sidecar's plan of a resync,
     * fetched with a signed GET and passed on as a file download. Failures go back to the page as a notice.
     */
    public static function handleResyncReport(): void
    {
        AdminPage::guardPost(self::REPORT_ACTION);
        // Nonce checked by guardPost; both values are matched against fixed patterns below. An array
        // (?id[]=) is treated as missing rather than cast, which would raise a PHP warning.
        $id = isset($_GET['id']) && is_string($_GET['id']) ? sanitize_text_field(wp_unslash($_GET['id'])) : '';
        $format = isset($_GET['format']) && is_string($_GET['format']) ? sanitize_key(wp_unslash($_GET['format'])) : 'csv';
        if (!ResyncJob::isValidId($id) || !isset(self::REPORT_FORMATS[$format])) {
            AdminPage::redirect('report_unknown');
        }
        if (!Settings::isConfigured()) {
            AdminPage::redirect('not_configured');
        }
        if (!function_exists('wp_tempnam')) {
            require_once ABSPATH . 'wp-admin/includes/file.php';
        }
        $file = wp_tempnam('kcb-resync-' . $format);
        if ($file === '' || !is_writable($file)) {
            AdminPage::redirect('report_failed');
        }
        $response = SidecarClient::fromSettings()->download(
            '/v1/resync/' . rawurlencode($id) . '/plan.' . $format,
            $file,
            self::REPORT_TIMEOUT
        );
        $filename = 'keycrm-resync-' . preg_replace('/[^A-Za-z0-9._-]/', '-', $id) . '.' . $format;
        $sent = $response->ok() && self::sendFile($file, self::REPORT_FORMATS[$format], $filename);
        // Not in a finally block: redirect() exits, and exit skips finally.
        wp_delete_file($file);
        if ($sent) {
            exit;
        }
        AdminPage::redirect(match (true) {
            $response->ok() => 'report_failed',
            $response->status === 0 => 'report_unreachable',
            $response->status === 404 => 'report_missing',
            $response->status === 409 => 'report_not_ready',
            $response->status === 401 => 'report_refused',
            default => 'report_failed',
        });
    }

    /**
     * Pass a downloaded file on as an attachment, in chunks, with nothing of WordPress's output before it.
     * False (nothing sent) when the file cannot be opened.
     */
    private static function sendFile(string $file, string $contentType, string $filename): bool
    {
        $size = is_readable($file) ? filesize($file) : false;
        $handle = $size === false ? false : fopen($file, 'rb');
        if ($handle === false) {
            return false;
        }
        while (ob_get_level() > 0) {
            ob_end_clean();
        }
        nocache_headers();
        // The plan lists the whole catalogue with stock: no copy in a shared or disk cache.
        header('Cache-Control: private, no-store, max-age=0');
        header('Content-Type: ' . $contentType);
        header('Content-Disposition: attachment; filename="' . $filename . '"');
        header('Content-Length: ' . (string) $size);
        header('X-Content-Type-Options: nosniff');
        while (!feof($handle)) {
            $chunk = fread($handle, 65536);
            if ($chunk === false || $chunk === '') {
                break;
            }
            echo $chunk; // phpcs:ignore -- a file the sidecar wrote, sent as an attachment, not HTML.
            flush();
        }
        fclose($handle);
        return true;
    }

    public static function ajaxResyncStart(): void
    {
        AdminPage::guardAjax();
        if (!Settings::isConfigured()) {
            wp_send_json_error(['message' => __('Enter the sidecar URL and save the settings first.', 'keycrm-bridge')]);
        }
        $dryRun = isset($_POST['dry_run']) && wp_unslash((string) $_POST['dry_run']) === '1';
        $response = SidecarClient::fromSettings()->call('POST', '/v1/resync', ['dry_run' => $dryRun], 10.0);
        if ($response->status === 404 || $response->status === 405) {
            wp_send_json_error([
                'code' => 'unavailable',
                'message' => __(
                    'This sidecar does not offer Full resync yet: it needs a sidecar version with the resync API. Nothing was changed.',
                    'keycrm-bridge'
                ),
            ]);
        }
        $id = is_array($response->data) ? (string) ($response->data['id'] ?? '') : '';
        if (!$response->ok() || !ResyncJob::isValidId($id)) {
            wp_send_json_error(['message' => AdminFormat::explain($response)]);
        }
        ResyncJob::started($id, $dryRun);
        wp_send_json_success([
            'id' => $id,
            'message' => $dryRun
                ? __('Dry run started: nothing will be changed.', 'keycrm-bridge')
                : __('Full resync started.', 'keycrm-bridge'),
        ]);
    }

    public static function ajaxResyncProgress(): void
    {
        AdminPage::guardAjax();
        $id = isset($_POST['id']) ? sanitize_text_field(wp_unslash((string) $_POST['id'])) : '';
        if (!ResyncJob::isValidId($id)) {
            wp_send_json_error(['message' => __('Unknown resync job.', 'keycrm-bridge')]);
        }
        $response = SidecarClient::fromSettings()->call('GET', '/v1/resync/' . rawurlencode($id), null, 5.0);
        ResyncJob::remember($id, $response);
        if (!$response->ok() || $response->data === null) {
            wp_send_json_error(['message' => AdminFormat::explain($response)]);
        }
        $data = $response->data;
        $done = (int) ($data['done'] ?? 0);
        $total = (int) ($data['total'] ?? 0);
        $errors = (int) ($data['errors'] ?? 0);
        $phase = (string) ($data['phase'] ?? '');
        $phaseLabel = ResyncJob::phaseLabel($phase);
        $finished = ResyncJob::isFinished($phase);
        if ($finished) {
            delete_transient(SyncNotice::CACHE);  // an applied resync ends the wait the notices name
        }
        $percent = $total > 0 ? (int) floor(100 * min($done, $total) / $total) : ($finished ? 100 : 0);
        // The sidecar's eta_s is null once the job has ended: no "time left" then.
        $message = $finished ? sprintf(
            /* translators: 1: phase in words, such as "Finished", 2: items done, 3: items in total, 4: errors. */
            __('%1$s — %2$d of %3$d items, %4$d errors.', 'keycrm-bridge'),
            $phaseLabel,
            $done,
            $total,
            $errors
        ) : sprintf(
            /* translators: 1: phase in words, such as "Reading KeyCRM…", 2: items done, 3: items in total, 4: errors, 5: time left. */
            __('%1$s — %2$d of %3$d items, %4$d errors, about %5$s left.', 'keycrm-bridge'),
            $phaseLabel,
            $done,
            $total,
            $errors,
            isset($data['eta_s']) && is_numeric($data['eta_s']) ? AdminFormat::age((int) $data['eta_s']) : '—'
        );
        wp_send_json_success([
            'id' => $id,
            'dry_run' => !empty($data['dry_run']),
            // The sidecar's name (admin.js tells "failed" by it) and the words shown for it.
            'phase' => $phase,
            'phase_label' => $phaseLabel,
            'done' => $done,
            'total' => $total,
            'errors' => $errors,
            'percent' => $percent,
            'finished' => $finished,
            'message' => $message,
            // Only once the sidecar names the report: a job that failed before its plan has none.
            'report' => $finished && ResyncJob::namesReport($data) ? self::reportLinks([
                'id' => $id,
                'dry_run' => !empty($data['dry_run']),
                'finished_at' => is_numeric($data['finished_at'] ?? null) ? (int) $data['finished_at'] : time(),
            ]) : null,
        ]);
    }
}
