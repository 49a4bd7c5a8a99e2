<?php

/**
 * WooCommerce → KeyCRM Bridge admin page.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\Dispatcher;
use KeycrmBridge\Outbox;
use KeycrmBridge\ResyncJob;
use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;
use KeycrmBridge\SidecarResponse;

defined('ABSPATH') || exit;

/**
 * Settings, connection test, sidecar status, outbox and Full resync. Capability manage_woocommerce,
 * a nonce on every action, every output escaped.
 */
final class AdminPage
{
    public const SLUG = 'keycrm-bridge';
    public const CAPABILITY = 'manage_woocommerce';
    private const AJAX_NONCE = 'kcb_admin';
    private const STATUS_TIMEOUT = 3.0;
    /** admin-post.php action (and nonce action) of the resync report download. */
    public const REPORT_ACTION = 'kcb_resync_report';
    /** The sidecar writes the report while it reads its plan table: allow a large catalogue time. */
    private const REPORT_TIMEOUT = 60.0;
    private const REPORT_FORMATS = ['csv' => 'text/csv; charset=utf-8', 'json' => 'application/json; charset=utf-8'];

    private string $hookSuffix = '';
    /** Whether GET /v1/status answered while this page was rendered (no resync lookup otherwise). */
    private bool $sidecarAnswered = false;
    /** Whether the sidecar waits for the owner's review of the first comparison. */
    private bool $firstSyncWaits = false;

    public function __construct(private Dispatcher $dispatcher)
    {
    }

    public function registerMenu(): void
    {
        $parent = class_exists('WooCommerce') ? 'woocommerce' : 'options-general.php';
        $this->hookSuffix = (string) add_submenu_page(
            $parent,
            __('KeyCRM Bridge', 'keycrm-bridge'),
            __('KeyCRM Bridge', 'keycrm-bridge'),
            self::CAPABILITY,
            self::SLUG,
            [$this, 'render']
        );
    }

    public static function pageUrl(array $args = []): string
    {
        $base = class_exists('WooCommerce') ? 'admin.php' : 'options-general.php';
        return add_query_arg(array_merge(['page' => self::SLUG], $args), admin_url($base));
    }

    /**
     * @param string[] $links
     * @return string[]
     */
    public function actionLinks($links): array
    {
        $links = is_array($links) ? $links : [];
        array_unshift($links, sprintf(
            '<a href="%s">%s</a>',
            esc_url(self::pageUrl()),
            esc_html__('Settings', 'keycrm-bridge')
        ));
        return $links;
    }

    public function enqueueAssets($hook): void
    {
        if ($hook !== $this->hookSuffix) {
            return;
        }
        $base = plugin_dir_url(KCB_PLUGIN_FILE);
        wp_enqueue_style('kcb-admin', $base . 'assets/admin.css', [], KCB_VERSION);
        wp_enqueue_script('kcb-admin', $base . 'assets/admin.js', [], KCB_VERSION, true);
        wp_localize_script('kcb-admin', 'kcbAdmin', [
            'ajaxUrl' => admin_url('admin-ajax.php'),
            'nonce' => wp_create_nonce(self::AJAX_NONCE),
            'i18n' => [
                'testing' => __('Testing the connection…', 'keycrm-bridge'),
                'starting' => __('Starting the full resync…', 'keycrm-bridge'),
                'failed' => __('The request failed. Reload the page and try again.', 'keycrm-bridge'),
            ] + ReviewView::i18n(),
        ]);
    }

    public function render(): void
    {
        if (!current_user_can(self::CAPABILITY)) {
            wp_die(esc_html__('You do not have permission to manage KeyCRM Bridge.', 'keycrm-bridge'), 403);
        }
        echo '<div class="wrap kcb-admin">';
        echo '<h1>' . esc_html__('KeyCRM Bridge', 'keycrm-bridge') . '</h1>';
        $this->renderNotice();
        $this->renderConnection();
        $this->renderSidecarStatus();
        $this->renderOutbox();
        $this->renderResync();
        echo '</div>';
    }

    private function renderNotice(): void
    {
        // phpcs:ignore -- display-only codes set by our own redirects; unknown values are ignored.
        $code = isset($_GET['kcb_notice']) ? sanitize_key(wp_unslash((string) $_GET['kcb_notice'])) : '';
        $messages = [
            'saved' => __('Settings saved.', 'keycrm-bridge'),
            'secret' => __('A new shared secret was generated. Copy it into the sidecar configuration now.', 'keycrm-bridge'),
            'bad_url' => __('The sidecar URL must start with http:// or https://.', 'keycrm-bridge'),
            'bad_secret' => __('A shared secret must be at least 32 characters of letters, digits, "-" or "_".', 'keycrm-bridge'),
            'flushed' => __('The outbox was sent to the sidecar.', 'keycrm-bridge'),
            'flush_failed' => __('The sidecar did not accept the outbox; the events stay queued and will be retried.', 'keycrm-bridge'),
            'flush_busy' => __('Another process is sending the outbox right now; try again in a minute.', 'keycrm-bridge'),
            'report_unreachable' => __(
                'The resync report could not be downloaded: the sidecar did not answer. Check that it is running, then try again.',
                'keycrm-bridge'
            ),
            'report_missing' => __(
                'The sidecar has no report for this resync: it keeps only the last few, or this sidecar version has no reports. Run a new dry run to get a fresh one.',
                'keycrm-bridge'
            ),
            'report_not_ready' => __('The resync report is not ready yet: wait until the resync has finished.', 'keycrm-bridge'),
            'report_refused' => __(
                'The sidecar refused this shop\'s signature, so the resync report could not be downloaded. Make sure the shared secret is the same here and in the sidecar.',
                'keycrm-bridge'
            ),
            'report_failed' => __('The sidecar could not produce the resync report. Its log says more.', 'keycrm-bridge'),
            'report_unknown' => __('That resync report link is not valid. Use the download links below.', 'keycrm-bridge'),
            'not_configured' => __('Enter the sidecar URL and save the settings first.', 'keycrm-bridge'),
        ];
        if (!isset($messages[$code])) {
            return;
        }
        $class = in_array($code, ['saved', 'secret', 'flushed', 'flush_busy'], true) ? 'notice-success' : 'notice-error';
        printf('<div class="notice %s"><p>%s</p></div>', esc_attr($class), esc_html($messages[$code]));
    }

    private function renderConnection(): void
    {
        $url = Settings::sidecarUrl();
        $secret = Settings::secret();
        echo '<h2>' . esc_html__('Connection to the sidecar', 'keycrm-bridge') . '</h2>';
        echo '<form method="post" action="' . esc_url(admin_url('admin-post.php')) . '">';
        echo '<input type="hidden" name="action" value="kcb_save_settings">';
        wp_nonce_field('kcb_save_settings');
        echo '<table class="form-table" role="presentation"><tbody>';
        printf(
            '<tr><th scope="row"><label for="kcb_sidecar_url">%s</label></th><td>'
            . '<input type="url" class="regular-text" id="kcb_sidecar_url" name="kcb_sidecar_url" value="%s"'
            . ' placeholder="http://127.0.0.1:8787"><p class="description">%s</p></td></tr>',
            esc_html__('Sidecar URL', 'keycrm-bridge'),
            esc_attr($url),
            esc_html__('Where the keycrm-bridge sidecar listens, as seen from this server.', 'keycrm-bridge')
        );
        echo '<tr><th scope="row">' . esc_html__('Shared secret', 'keycrm-bridge') . '</th><td>';
        if ($secret !== '' && get_option(Settings::REVEAL) === '1') {
            delete_option(Settings::REVEAL);
            printf(
                '<input type="text" readonly class="large-text code" id="kcb-secret-once" value="%s" onfocus="this.select()">'
                . '<p class="description"><strong>%s</strong></p>',
                esc_attr($secret),
                esc_html__('Copy this secret into the sidecar configuration (BRIDGE_SHARED_SECRET) now: it is shown only once.', 'keycrm-bridge')
            );
        } elseif ($secret !== '') {
            printf(
                '<code>%s</code><p class="description">%s</p>',
                esc_html(str_repeat('•', 12) . substr($secret, -4)),
                esc_html__('Hidden. Generate a new one below if it is lost, then update the sidecar too.', 'keycrm-bridge')
            );
        } else {
            echo '<p>' . esc_html__('No secret yet: saving this form generates one.', 'keycrm-bridge') . '</p>';
        }
        printf(
            '<p><label for="kcb_new_secret">%s</label><br><input type="password" class="regular-text" id="kcb_new_secret"'
            . ' name="kcb_new_secret" value="" autocomplete="new-password"></p>',
            esc_html__('Or paste the secret the sidecar already uses:', 'keycrm-bridge')
        );
        echo '</td></tr>';
        printf(
            '<tr><th scope="row"><label for="kcb_send_timeout">%s</label></th><td><input type="number" min="0.5" max="30"'
            . ' step="0.5" id="kcb_send_timeout" name="kcb_send_timeout" value="%s"> %s</td></tr>',
            esc_html__('Send timeout', 'keycrm-bridge'),
            esc_attr((string) Settings::timeout()),
            esc_html__('seconds', 'keycrm-bridge')
        );
        echo '</tbody></table>';
        submit_button(__('Save settings', 'keycrm-bridge'));
        echo '</form>';

        echo '<form method="post" action="' . esc_url(admin_url('admin-post.php')) . '" class="kcb-inline">';
        echo '<input type="hidden" name="action" value="kcb_regenerate_secret">';
        wp_nonce_field('kcb_regenerate_secret');
        submit_button(__('Generate a new secret', 'keycrm-bridge'), 'secondary', 'submit', false);
        echo '</form>';

        echo '<p><button type="button" class="button button-secondary" id="kcb-test-connection">'
            . esc_html__('Test connection', 'keycrm-bridge') . '</button></p>';
        echo '<div id="kcb-test-result" class="kcb-result" role="status" aria-live="polite"></div>';
    }

    private function renderSidecarStatus(): void
    {
        echo '<h2>' . esc_html__('Sidecar status', 'keycrm-bridge') . '</h2>';
        if (!Settings::isConfigured()) {
            echo '<p>' . esc_html__('Not configured yet.', 'keycrm-bridge') . '</p>';
            return;
        }
        $response = SidecarClient::fromSettings()->call('GET', '/v1/status', null, self::STATUS_TIMEOUT);
        SyncNotice::remember($response->ok() && is_array($response->data) ? $response->data : null);
        if (!$response->ok() || $response->data === null) {
            printf(
                '<p class="kcb-bad">%s</p>',
                esc_html(sprintf(
                    /* translators: %s: error such as "HTTP 401" or a network error. */
                    __('The sidecar status is not available: %s', 'keycrm-bridge'),
                    $response->error
                ))
            );
            return;
        }
        $this->sidecarAnswered = true;
        $status = $response->data;
        $first = is_array($status['first_sync'] ?? null) ? $status['first_sync'] : null;
        $this->firstSyncWaits = $first !== null && empty($first['approved']);
        $rows = [
            __('Sync mode', 'keycrm-bridge') => (string) ($status['mode'] ?? '—'),
            __('Writing stock', 'keycrm-bridge') => $first === null ? '—' : (!empty($first['approved'])
                ? __('yes: the first comparison was reviewed and applied', 'keycrm-bridge')
                : __('not yet: review the first comparison below and start the sync (both sides are only read until then)', 'keycrm-bridge')),
            __('Events waiting in the sidecar', 'keycrm-bridge') => (string) ($status['queue_depth'] ?? '—'),
            __('Oldest waiting event', 'keycrm-bridge') => isset($status['oldest_pending_age_s'])
                ? $this->age((int) $status['oldest_pending_age_s']) : '—',
            __('Last successful call to KeyCRM', 'keycrm-bridge') => $this->time($status['last_keycrm_success_at'] ?? null),
            __('Last change written to WooCommerce', 'keycrm-bridge') => $this->time($status['last_woocommerce_success_at'] ?? null),
            __('KeyCRM requests in the last minute', 'keycrm-bridge') => (string) ($status['budget_used_last_minute'] ?? '—'),
        ];
        echo '<table class="widefat striped kcb-status"><tbody>';
        foreach ($rows as $label => $value) {
            printf('<tr><th scope="row">%s</th><td>%s</td></tr>', esc_html($label), esc_html($value));
        }
        echo '</tbody></table>';
        ErpStatusView::render($status);

        $unmatched = is_array($status['unmatched_skus'] ?? null) ? $status['unmatched_skus'] : [];
        echo '<h3>' . esc_html__('Unmatched SKUs', 'keycrm-bridge') . '</h3>';
        if ($unmatched === [] && isset($status['compared']) && empty($status['compared'])) {
            echo '<p>' . esc_html__('Not known yet: no comparison of the two catalogues has finished.', 'keycrm-bridge') . '</p>';
            return;
        }
        if ($unmatched === []) {
            echo '<p>' . esc_html__('None: every SKU has its pair in KeyCRM.', 'keycrm-bridge') . '</p>';
            return;
        }
        echo '<table class="widefat striped kcb-unmatched"><thead><tr>';
        printf(
            '<th>%s</th><th>%s</th><th>%s</th>',
            esc_html__('SKU', 'keycrm-bridge'),
            esc_html__('Product', 'keycrm-bridge'),
            esc_html__('Reason', 'keycrm-bridge')
        );
        echo '</tr></thead><tbody>';
        foreach (array_slice($unmatched, 0, 200) as $row) {
            if (!is_array($row)) {
                continue;
            }
            $productId = (int) ($row['product_id'] ?? 0);
            $link = $productId > 0 ? get_edit_post_link($productId, 'raw') : '';
            $product = $link
                ? sprintf('<a href="%s">#%d %s</a>', esc_url($link), $productId, esc_html(get_the_title($productId)))
                : esc_html__('not in this shop', 'keycrm-bridge');
            printf(
                '<tr><td><code>%s</code></td><td>%s</td><td>%s</td></tr>',
                esc_html((string) ($row['sku'] ?? '')),
                $product, // Built from escaped parts above.
                esc_html((string) ($row['reason'] ?? ''))
            );
        }
        echo '</tbody></table>';
    }

    private function renderOutbox(): void
    {
        $stats = Outbox::stats();
        $state = Settings::state();
        echo '<h2>' . esc_html__('Outbox of this shop', 'keycrm-bridge') . '</h2>';
        echo '<p class="description">'
            . esc_html__('Changes the sidecar has not confirmed yet. They are resent oldest first until it accepts them.', 'keycrm-bridge')
            . '</p>';
        $rows = [
            __('Events waiting', 'keycrm-bridge') => (string) $stats['pending'],
            __('Oldest waiting for', 'keycrm-bridge') => $stats['pending'] > 0 ? $this->age($stats['oldest_age_s']) : '—',
            __('Set aside (refused as malformed)', 'keycrm-bridge') => (string) $stats['dead'],
            __('Last delivery error', 'keycrm-bridge') => $state['last_error'] !== '' ? $state['last_error'] : '—',
            __('Last successful delivery', 'keycrm-bridge') => $this->time($state['last_ok'] > 0 ? $state['last_ok'] : null),
        ];
        if ($state['fail_until'] > time()) {
            $rows[__('Sending paused until', 'keycrm-bridge')] = $this->time($state['fail_until']);
        }
        echo '<table class="widefat striped kcb-outbox"><tbody>';
        foreach ($rows as $label => $value) {
            printf('<tr><th scope="row">%s</th><td>%s</td></tr>', esc_html($label), esc_html($value));
        }
        echo '</tbody></table>';
        echo '<form method="post" action="' . esc_url(admin_url('admin-post.php')) . '">';
        echo '<input type="hidden" name="action" value="kcb_flush_outbox">';
        wp_nonce_field('kcb_flush_outbox');
        if ($stats['dead'] > 0) {
            printf(
                '<p><label><input type="checkbox" name="kcb_revive" value="1"> %s</label></p>',
                esc_html__('Also retry the events set aside', 'keycrm-bridge')
            );
        }
        submit_button(__('Send now', 'keycrm-bridge'), 'secondary', 'submit', false);
        echo '</form>';
    }

    private function renderResync(): void
    {
        echo '<h2>' . esc_html__('Full resync', 'keycrm-bridge') . '</h2>';
        echo '<p class="description">' . esc_html__(
            'Compares every product of the shop with KeyCRM and fixes the differences. A dry run only reports them.',
            'keycrm-bridge'
        ) . '</p>';
        if ($this->firstSyncWaits) {
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
            $this->firstSyncWaits ? esc_html__('Review and start', 'keycrm-bridge') : esc_html__('Full resync', 'keycrm-bridge')
        );
        $job = ResyncJob::last();
        if ($job !== null && !$job['finished'] && $this->sidecarAnswered) {
            // Left before the job ended (or started it from another browser or WP-CLI): ask once how it went.
            ResyncJob::remember($job['id'], SidecarClient::fromSettings()->call(
                'GET',
                '/v1/resync/' . rawurlencode($job['id']),
                null,
                self::STATUS_TIMEOUT
            ));
            $job = ResyncJob::last();
        }
        $running = $job !== null && !$job['finished'] && $this->sidecarAnswered;
        echo '<progress id="kcb-resync-progress" max="100" value="0"' . ($running ? '' : ' hidden') . '></progress>';
        printf(
            '<div id="kcb-resync-status" class="kcb-result" role="status" aria-live="polite"%s></div>',
            $running ? ' data-job="' . esc_attr($job['id']) . '"' : ''
        );
        $report = $job !== null && $job['report'] ? $this->reportLinks($job) : null;
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
        $reviewable = $job !== null && $job['finished'] && $job['dry_run'] && $job['report'] && $this->sidecarAnswered;
        ReviewView::render($reviewable ? $job['id'] : null, $this->firstSyncWaits);
    }

    /**
     * Download links (admin-post.php, nonce included) and their caption for a finished job.
     *
     * @param array{id: string, dry_run: bool, finished_at: int} $job
     * @return array{csv: string, json: string, label: string}
     */
    private function reportLinks(array $job): array
    {
        $nonce = wp_create_nonce(self::REPORT_ACTION);
        $url = static fn(string $format): string => add_query_arg(
            ['action' => self::REPORT_ACTION, 'id' => $job['id'], 'format' => $format, '_wpnonce' => $nonce],
            admin_url('admin-post.php')
        );
        $when = $this->time($job['finished_at'] > 0 ? $job['finished_at'] : time());
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

    public function handleSaveSettings(): void
    {
        $this->guardPost('kcb_save_settings');
        $url = isset($_POST['kcb_sidecar_url']) ? trim(sanitize_text_field(wp_unslash((string) $_POST['kcb_sidecar_url']))) : '';
        if ($url !== '' && !preg_match('#^https?://[^\s/?\#]+#i', $url)) {
            $this->redirect('bad_url');
        }
        update_option(Settings::URL, untrailingslashit(esc_url_raw($url, ['http', 'https'])), true);
        $timeout = isset($_POST['kcb_send_timeout']) ? (float) wp_unslash((string) $_POST['kcb_send_timeout']) : Settings::DEFAULT_TIMEOUT;
        update_option(Settings::TIMEOUT, (string) min(30.0, max(0.5, $timeout)), true);
        $newSecret = isset($_POST['kcb_new_secret']) ? trim(sanitize_text_field(wp_unslash((string) $_POST['kcb_new_secret']))) : '';
        if ($newSecret !== '') {
            if (!preg_match('/^[A-Za-z0-9_-]{32,256}$/', $newSecret)) {
                $this->redirect('bad_secret');
            }
            update_option(Settings::SECRET, $newSecret, true);
            delete_option(Settings::REVEAL);
        } elseif (Settings::secret() === '') {
            update_option(Settings::SECRET, Settings::generateSecret(), true);
            update_option(Settings::REVEAL, '1', false);
        }
        if (Settings::isConfigured() && Outbox::hasPending()) {
            // Events kept while the bridge was not configured (or pointed elsewhere) go out now.
            $this->dispatcher->scheduleRetry(time());
        }
        $this->redirect('saved');
    }

    public function handleRegenerateSecret(): void
    {
        $this->guardPost('kcb_regenerate_secret');
        update_option(Settings::SECRET, Settings::generateSecret(), true);
        update_option(Settings::REVEAL, '1', false);
        $this->redirect('secret');
    }

    public function handleFlushOutbox(): void
    {
        $this->guardPost('kcb_flush_outbox');
        if (!empty($_POST['kcb_revive'])) {
            Outbox::reviveDead();
        }
        $result = $this->dispatcher->flush(20.0);
        $code = match ($result['status']) {
            'busy' => 'flush_busy',
            'failed', 'not_configured' => 'flush_failed',
            default => 'flushed',
        };
        $this->redirect($code);
    }

    /**
     * admin-post.php?action=kcb_resync_report&id=...&format=csv|json: the sidecar's plan of a resync,
     * fetched with a signed GET and passed on as a file download. Failures go back to the page as a notice.
     */
    public function handleResyncReport(): void
    {
        $this->guardPost(self::REPORT_ACTION);
        // Nonce checked by guardPost; both values are matched against fixed patterns below. An array
        // (?id[]=) is treated as missing rather than cast, which would raise a PHP warning.
        $id = isset($_GET['id']) && is_string($_GET['id']) ? sanitize_text_field(wp_unslash($_GET['id'])) : '';
        $format = isset($_GET['format']) && is_string($_GET['format']) ? sanitize_key(wp_unslash($_GET['format'])) : 'csv';
        if (!ResyncJob::isValidId($id) || !isset(self::REPORT_FORMATS[$format])) {
            $this->redirect('report_unknown');
        }
        if (!Settings::isConfigured()) {
            $this->redirect('not_configured');
        }
        if (!function_exists('wp_tempnam')) {
            require_once ABSPATH . 'wp-admin/includes/file.php';
        }
        $file = wp_tempnam('kcb-resync-' . $format);
        if ($file === '' || !is_writable($file)) {
            $this->redirect('report_failed');
        }
        $response = SidecarClient::fromSettings()->download(
            '/v1/resync/' . rawurlencode($id) . '/plan.' . $format,
            $file,
            self::REPORT_TIMEOUT
        );
        $filename = 'keycrm-resync-' . preg_replace('/[^A-Za-z0-9._-]/', '-', $id) . '.' . $format;
        $sent = $response->ok() && $this->sendFile($file, self::REPORT_FORMATS[$format], $filename);
        // Not in a finally block: redirect() exits, and exit skips finally.
        wp_delete_file($file);
        if ($sent) {
            exit;
        }
        $this->redirect(match (true) {
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
    private function sendFile(string $file, string $contentType, string $filename): bool
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

    public function ajaxTestConnection(): void
    {
        $this->guardAjax();
        if (!Settings::isConfigured()) {
            wp_send_json_error(['message' => __('Enter the sidecar URL and save the settings first.', 'keycrm-bridge')]);
        }
        $response = SidecarClient::fromSettings()->call('GET', '/v1/status', null, 5.0);
        if ($response->ok()) {
            wp_send_json_success(['message' => sprintf(
                /* translators: %s: sync mode such as "keycrm". */
                __('Connected: the sidecar answered and accepted this shop\'s signature. Sync mode: %s.', 'keycrm-bridge'),
                (string) ($response->data['mode'] ?? '?')
            )]);
        }
        wp_send_json_error(['message' => $this->explain($response)]);
    }

    public function ajaxResyncStart(): void
    {
        $this->guardAjax();
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
            wp_send_json_error(['message' => $this->explain($response)]);
        }
        ResyncJob::started($id, $dryRun);
        wp_send_json_success([
            'id' => $id,
            'message' => $dryRun
                ? __('Dry run started: nothing will be changed.', 'keycrm-bridge')
                : __('Full resync started.', 'keycrm-bridge'),
        ]);
    }

    public function ajaxResyncProgress(): void
    {
        $this->guardAjax();
        $id = isset($_POST['id']) ? sanitize_text_field(wp_unslash((string) $_POST['id'])) : '';
        if (!ResyncJob::isValidId($id)) {
            wp_send_json_error(['message' => __('Unknown resync job.', 'keycrm-bridge')]);
        }
        $response = SidecarClient::fromSettings()->call('GET', '/v1/resync/' . rawurlencode($id), null, 5.0);
        ResyncJob::remember($id, $response);
        if (!$response->ok() || $response->data === null) {
            wp_send_json_error(['message' => $this->explain($response)]);
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
            isset($data['eta_s']) && is_numeric($data['eta_s']) ? $this->age((int) $data['eta_s']) : '—'
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
            'report' => $finished && ResyncJob::namesReport($data) ? $this->reportLinks([
                'id' => $id,
                'dry_run' => !empty($data['dry_run']),
                'finished_at' => is_numeric($data['finished_at'] ?? null) ? (int) $data['finished_at'] : time(),
            ]) : null,
        ]);
    }

    /** Words for a failed call, written for a shop owner rather than for a developer. */
    private function explain(SidecarResponse $response): string
    {
        $url = Settings::sidecarUrl();
        if ($response->status === 0) {
            return sprintf(
                /* translators: 1: sidecar URL, 2: network error. */
                __('Could not reach the sidecar at %1$s (%2$s). Check that it is running and that the URL is right.', 'keycrm-bridge'),
                $url,
                $response->error
            );
        }
        if ($response->status === 401) {
            return __(
                'The sidecar is reachable but refused this shop\'s signature. Make sure the shared secret is the same here and in the sidecar, and that the server clocks are right.',
                'keycrm-bridge'
            );
        }
        if ($response->status === 404 || ($response->status >= 200 && $response->status < 300)) {
            return sprintf(
                /* translators: %s: sidecar URL. */
                __('Something answers at %s, but it is not the keycrm-bridge sidecar. Check the URL.', 'keycrm-bridge'),
                $url
            );
        }
        return sprintf(
            /* translators: %s: HTTP status and error from the sidecar. */
            __('The sidecar answered with an error (%s). Its log says more.', 'keycrm-bridge'),
            $response->error
        );
    }

    private function guardPost(string $action): void
    {
        if (!current_user_can(self::CAPABILITY)) {
            wp_die(esc_html__('You do not have permission to manage KeyCRM Bridge.', 'keycrm-bridge'), 403);
        }
        check_admin_referer($action);
    }

    private function guardAjax(): void
    {
        check_ajax_referer(self::AJAX_NONCE, 'nonce');
        if (!current_user_can(self::CAPABILITY)) {
            wp_send_json_error(['message' => __('You do not have permission to manage KeyCRM Bridge.', 'keycrm-bridge')], 403);
        }
    }

    private function redirect(string $notice): void
    {
        wp_safe_redirect(self::pageUrl(['kcb_notice' => $notice]));
        exit;
    }

    private function age(int $seconds): string
    {
        return $seconds < 60
            /* translators: %d: number of seconds. */
            ? sprintf(_n('%d second', '%d seconds', $seconds, 'keycrm-bridge'), $seconds)
            : human_time_diff(time() - $seconds, time());
    }

    private function time($value): string
    {
        if ($value === null || $value === '' || $value === 0) {
            return __('never', 'keycrm-bridge');
        }
        $timestamp = is_numeric($value) ? (int) $value : strtotime((string) $value);
        if (!$timestamp) {
            return (string) $value;
        }
        $when = wp_date(get_option('date_format') . ' ' . get_option('time_format'), $timestamp);
        if ($timestamp > time()) {
            return sprintf(
                /* translators: 1: date and time, 2: how long from now. */
                __('%1$s (in %2$s)', 'keycrm-bridge'),
                $when,
                human_time_diff(time(), $timestamp)
            );
        }
        return sprintf(
            /* translators: 1: date and time, 2: how long ago. */
            __('%1$s (%2$s ago)', 'keycrm-bridge'),
            $when,
            human_time_diff($timestamp, time())
        );
    }
}
