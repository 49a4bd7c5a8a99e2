<?php

/**
 * The review of a comparison on the plugin page: counts, the rows (paged, searchable by SKU), Cancel.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\ResyncJob;
use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;

defined('ABSPATH') || exit;

/**
 * The markup is filled by admin.js from two AJAX calls answered here: kcb_resync_rows (one page of
 * GET /v1/resync/{id}/rows) and kcb_resync_cancel (POST /v1/resync/{id}/cancel).
 */
final class ReviewView
{
    public const PAGE_SIZE = 20;

    /** Strings admin.js shows in the review, translated here. @return array<string, string> */
    public static function i18n(): array
    {
        return [
            /* translators: %s: the stock the shop will get. */
            'update_woocommerce' => __('WooCommerce will be set to %s', 'keycrm-bridge'),
            /* translators: %s: the sellable stock KeyCRM will get. */
            'update_keycrm' => __('KeyCRM will be set to %s', 'keycrm-bridge'),
            /* translators: %s: the stock both sides will get. */
            'update_both' => __('both will be set to %s', 'keycrm-bridge'),
            'create_keycrm' => __('will be created in KeyCRM', 'keycrm-bridge'),
            'none' => __('nothing to change', 'keycrm-bridge'),
            'excluded' => __('nothing: excluded from sync', 'keycrm-bridge'),
            /* translators: 1: first row shown, 2: last row shown, 3: rows in total. */
            'page' => __('Rows %1$d–%2$d of %3$d', 'keycrm-bridge'),
            'noRows' => __('No row matches.', 'keycrm-bridge'),
            'cancelling' => __('Cancelling…', 'keycrm-bridge'),
            'applying' => __('Applying the comparison…', 'keycrm-bridge'),
        ];
    }

    /** The empty review: admin.js shows it once a dry run has finished. */
    public static function render(?string $jobId, bool $firstSyncWaits): void
    {
        echo '<p><button type="button" class="button button-secondary" id="kcb-resync-cancel" hidden>'
            . esc_html__('Cancel', 'keycrm-bridge') . '</button></p>';
        printf('<div id="kcb-review" class="kcb-review" hidden%s>', $jobId !== null ? ' data-review-job="' . esc_attr($jobId) . '"' : '');
        echo '<h3>' . esc_html__('What the comparison found', 'keycrm-bridge') . '</h3>';
        echo '<table class="widefat striped kcb-review-counts"><tbody id="kcb-review-counts"></tbody></table>';
        printf(
            '<p class="kcb-review-search"><label for="kcb-review-sku">%s</label> '
            . '<input type="search" id="kcb-review-sku" class="regular-text"> '
            . '<button type="button" class="button" id="kcb-review-prev">%s</button> '
            . '<button type="button" class="button" id="kcb-review-next">%s</button> <span id="kcb-review-page"></span></p>',
            esc_html__('Find a SKU:', 'keycrm-bridge'),
            esc_html__('Previous', 'keycrm-bridge'),
            esc_html__('Next', 'keycrm-bridge')
        );
        printf(
            '<table class="widefat striped kcb-review-rows"><thead><tr><th>%s</th><th>%s</th><th>%s</th><th>%s</th><th>%s</th>'
            . '</tr></thead><tbody id="kcb-review-rows"></tbody></table>',
            esc_html__('SKU', 'keycrm-bridge'),
            esc_html__('WooCommerce', 'keycrm-bridge'),
            esc_html__('KeyCRM sellable', 'keycrm-bridge'),
            esc_html__('What will happen', 'keycrm-bridge'),
            esc_html__('Why', 'keycrm-bridge')
        );
        printf(
            '<p><button type="button" class="button button-primary" id="kcb-review-apply">%s</button> <span class="description">%s</span></p>',
            $firstSyncWaits ? esc_html__('Apply and start syncing', 'keycrm-bridge') : esc_html__('Apply these changes', 'keycrm-bridge'),
            esc_html__('The bridge reads both sides again and writes what the comparison shows.', 'keycrm-bridge')
        );
        echo '</div>';
    }

    public static function ajaxRows(): void
    {
        $id = self::jobId();
        $offset = isset($_POST['offset']) ? max(0, (int) wp_unslash((string) $_POST['offset'])) : 0;
        $sku = isset($_POST['sku']) ? sanitize_text_field(wp_unslash((string) $_POST['sku'])) : '';
        $path = '/v1/resync/' . rawurlencode($id) . '/rows?' . http_build_query([
            'offset' => $offset,
            'limit' => self::PAGE_SIZE,
            'sku' => substr($sku, 0, 200),
        ]);
        $response = SidecarClient::fromSettings()->call('GET', $path, null, 10.0);
        if (!$response->ok() || !is_array($response->data)) {
            wp_send_json_error(['message' => __('The comparison could not be loaded from the sidecar.', 'keycrm-bridge')]);
        }
        $data = $response->data;
        $job = is_array($data['job'] ?? null) ? $data['job'] : [];
        wp_send_json_success([
            'total' => (int) ($data['total'] ?? 0),
            'offset' => (int) ($data['offset'] ?? 0),
            'rows' => array_map([self::class, 'translatedRow'], array_filter(
                is_array($data['rows'] ?? null) ? $data['rows'] : [],
                'is_array'
            )),
            'counts' => array_merge(
                self::counts(is_array($job['counts'] ?? null) ? $job['counts'] : []),
                self::erpCounts(is_array($job['erp'] ?? null) ? $job['erp'] : [])
            ),
        ]);
    }

    public static function ajaxCancel(): void
    {
        $id = self::jobId();
        $response = SidecarClient::fromSettings()->call('POST', '/v1/resync/' . rawurlencode($id) . '/cancel', [], 10.0);
        if ($response->ok()) {
            wp_send_json_success(['message' => __('Cancelled. What was already written stays written; nothing more is.', 'keycrm-bridge')]);
        }
        wp_send_json_error(['message' => $response->status === 409
            ? __('The resync had already finished.', 'keycrm-bridge')
            : __('The sidecar did not cancel the resync. Try again.', 'keycrm-bridge')]);
    }

    /**
     * Counts per action and per problem, in words, for the table above the rows.
     *
     * @param array<string, mixed> $counts
     * @return array<int, array{label: string, value: int}>
     */
    private static function counts(array $counts): array
    {
        $actions = is_array($counts['actions'] ?? null) ? $counts['actions'] : [];
        $problems = is_array($counts['problems'] ?? null) ? $counts['problems'] : [];
        $labels = [
            'update_woocommerce' => __('to be changed in WooCommerce', 'keycrm-bridge'),
            'update_keycrm' => __('to be changed in KeyCRM', 'keycrm-bridge'),
            'update_both' => __('to be changed on both sides', 'keycrm-bridge'),
            'create_keycrm' => __('to be created in KeyCRM', 'keycrm-bridge'),
            'excluded' => __('excluded from sync (written on neither side)', 'keycrm-bridge'),
        ];
        $out = [
            ['label' => __('SKUs compared', 'keycrm-bridge'), 'value' => (int) ($counts['skus'] ?? 0)],
            ['label' => __('the same on both sides', 'keycrm-bridge'), 'value' => (int) ($counts['same'] ?? 0)],
        ];
        foreach ($labels as $key => $label) {
            if ((int) ($actions[$key] ?? 0) > 0) {
                $out[] = ['label' => $label, 'value' => (int) $actions[$key]];
            }
        }
        foreach ($problems as $problem => $n) {
            if ((int) $n > 0) {
                /* translators: %s: the problem in words, such as "only in KeyCRM". */
                $out[] = ['label' => sprintf(__('problem: %s', 'keycrm-bridge'), Reasons::problem((string) $problem)), 'value' => (int) $n];
            }
        }
        return $out;
    }

    /**
     * In erp mode: what the ERP is about to write to KeyCRM's on-hand, per KeyCRM warehouse.
     *
     * @param array<string, mixed> $erp The `erp` of the sidecar's resync status (empty outside erp mode).
     * @return array<int, array{label: string, value: int}>
     */
    private static function erpCounts(array $erp): array
    {
        if ($erp === []) {
            return [];
        }
        $out = [];
        $byWarehouse = is_array($erp['rows_to_write_by_warehouse'] ?? null) ? $erp['rows_to_write_by_warehouse'] : [];
        foreach ($byWarehouse as $warehouse => $n) {
            $out[] = [
                /* translators: %d: KeyCRM warehouse id. */
                'label' => sprintf(__('ERP → KeyCRM warehouse %d: on-hand rows to be written', 'keycrm-bridge'), (int) $warehouse),
                'value' => (int) $n,
            ];
        }
        $out[] = ['label' => __('ERP → KeyCRM: rows already equal', 'keycrm-bridge'), 'value' => (int) ($erp['rows_unchanged'] ?? 0)];
        if ((int) ($erp['skus_keycrm_not_read_yet'] ?? 0) > 0) {
            $out[] = [
                'label' => __('ERP → KeyCRM: SKUs not read from KeyCRM yet', 'keycrm-bridge'),
                'value' => (int) $erp['skus_keycrm_not_read_yet'],
            ];
        }
        return $out;
    }

    /**
     * A row with its reason and problems in the site's language (admin.js shows them as text).
     *
     * @param array<string, mixed> $row
     * @return array<string, mixed>
     */
    private static function translatedRow(array $row): array
    {
        $row['reason'] = Reasons::text($row);
        $row['problems'] = array_map(
            static fn($p): string => Reasons::problem((string) $p),
            is_array($row['problems'] ?? null) ? $row['problems'] : []
        );
        return $row;
    }

    private static function jobId(): string
    {
        check_ajax_referer(AdminPage::AJAX_NONCE, 'nonce');
        if (!current_user_can(AdminPage::CAPABILITY)) {
            wp_send_json_error(['message' => __('You do not have permission to manage KeyCRM Bridge.', 'keycrm-bridge')], 403);
        }
        if (!Settings::isConfigured()) {
            wp_send_json_error(['message' => __('Enter the sidecar URL and save the settings first.', 'keycrm-bridge')]);
        }
        $id = isset($_POST['id']) ? sanitize_text_field(wp_unslash((string) $_POST['id'])) : '';
        if (!ResyncJob::isValidId($id)) {
            wp_send_json_error(['message' => __('Unknown resync job.', 'keycrm-bridge')]);
        }
        return $id;
    }
}
