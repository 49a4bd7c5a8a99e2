<?php

/**
 * WooCommerce → KeyCRM Bridge admin page: the menu entry, its assets and the order of its sections.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\Dispatcher;

defined('ABSPATH') || exit;

/**
 * The page is drawn by small views (SettingsView, StatusView, OutboxView, ResyncView with ReviewView);
 * this class draws the page notice, puts the sections in order and holds the checks every action
 * shares: capability manage_woocommerce, a nonce on every action, every output escaped.
 */
final class AdminPage
{
    public const SLUG = 'keycrm-bridge';
    public const CAPABILITY = 'manage_woocommerce';
    /** Nonce action of every AJAX call of the page (admin.js sends it as "nonce"). */
    public const AJAX_NONCE = 'kcb_admin';
    public const STATUS_TIMEOUT = 3.0;

    public readonly SettingsView $settings;
    public readonly OutboxView $outbox;
    private string $hookSuffix = '';

    public function __construct(Dispatcher $dispatcher)
    {
        $this->settings = new SettingsView($dispatcher);
        $this->outbox = new OutboxView($dispatcher);
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
        $this->settings->render();
        $status = StatusView::render();
        $this->outbox->render();
        $first = is_array($status['first_sync'] ?? null) ? $status['first_sync'] : null;
        ResyncView::render($status !== null, $first !== null && empty($first['approved']));
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
            'quarantine_retry' => __('The item was handed back to its stage: the sidecar tries it again now. If it fails again, it is set aside again.', 'keycrm-bridge'),
            'quarantine_drop' => __('The item was dropped: the sidecar forgets it.', 'keycrm-bridge'),
            'quarantine_missing' => __('The sidecar has no such item set aside any more (retried or dropped meanwhile).', 'keycrm-bridge'),
            'quarantine_failed' => __('The sidecar did not take the request. Check that it is running, then try again.', 'keycrm-bridge'),
            'quarantine_unknown' => __('That request was not valid. Use the buttons of the list.', 'keycrm-bridge'),
        ];
        if (!isset($messages[$code])) {
            return;
        }
        $class = in_array($code, ['saved', 'secret', 'flushed', 'flush_busy', 'quarantine_retry', 'quarantine_drop'], true) ? 'notice-success' : 'notice-error';
        printf('<div class="notice %s"><p>%s</p></div>', esc_attr($class), esc_html($messages[$code]));
    }

    public static function guardPost(string $action): void
    {
        if (!current_user_can(self::CAPABILITY)) {
            wp_die(esc_html__('You do not have permission to manage KeyCRM Bridge.', 'keycrm-bridge'), 403);
        }
        check_admin_referer($action);
    }

    public static function guardAjax(): void
    {
        check_ajax_referer(self::AJAX_NONCE, 'nonce');
        if (!current_user_can(self::CAPABILITY)) {
            wp_send_json_error(['message' => __('You do not have permission to manage KeyCRM Bridge.', 'keycrm-bridge')], 403);
        }
    }

    public static function redirect(string $notice): void
    {
        wp_safe_redirect(self::pageUrl(['kcb_notice' => $notice]));
        exit;
    }
}
