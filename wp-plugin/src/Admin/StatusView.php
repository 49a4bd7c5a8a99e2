<?php

/**
 * The plugin page's sidecar status: mode, whether stock is written, queue, last calls, unmatched SKUs.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;

defined('ABSPATH') || exit;

/**
 * One signed GET /v1/status per page view (3-second limit); its answer also refreshes the notices'
 * cache and is handed back so the sections below it ask the sidecar nothing when it did not answer.
 */
final class StatusView
{
    /** @return array<string, mixed>|null the sidecar's status, null when it did not answer */
    public static function render(): ?array
    {
        echo '<h2>' . esc_html__('Sidecar status', 'keycrm-bridge') . '</h2>';
        if (!Settings::isConfigured()) {
            echo '<p>' . esc_html__('Not configured yet.', 'keycrm-bridge') . '</p>';
            return null;
        }
        $response = SidecarClient::fromSettings()->call('GET', '/v1/status', null, AdminPage::STATUS_TIMEOUT);
        SyncNotice::remember($response->ok() && is_array($response->data) ? $response->data : null);
        if (!$response->ok() || !is_array($response->data)) {
            printf(
                '<p class="kcb-bad">%s</p>',
                esc_html(sprintf(
                    /* translators: %s: error such as "HTTP 401" or a network error. */
                    __('The sidecar status is not available: %s', 'keycrm-bridge'),
                    $response->error
                ))
            );
            return null;
        }
        $status = $response->data;
        $first = is_array($status['first_sync'] ?? null) ? $status['first_sync'] : null;
        $rows = [
            __('Sync mode', 'keycrm-bridge') => (string) ($status['mode'] ?? '—'),
            __('Writing stock', 'keycrm-bridge') => $first === null ? '—' : (!empty($first['approved'])
                ? __('yes: the first comparison was reviewed and applied', 'keycrm-bridge')
                : __('not yet: review the first comparison below and start the sync (both sides are only read until then)', 'keycrm-bridge')),
            __('Events waiting in the sidecar', 'keycrm-bridge') => (string) ($status['queue_depth'] ?? '—'),
            __('Oldest waiting event', 'keycrm-bridge') => isset($status['oldest_pending_age_s'])
                ? AdminFormat::age((int) $status['oldest_pending_age_s']) : '—',
            __('Last successful call to KeyCRM', 'keycrm-bridge') => AdminFormat::time($status['last_keycrm_success_at'] ?? null),
            __('Last change written to WooCommerce', 'keycrm-bridge') => AdminFormat::time($status['last_woocommerce_success_at'] ?? null),
            __('KeyCRM requests in the last minute', 'keycrm-bridge') => (string) ($status['budget_used_last_minute'] ?? '—'),
        ];
        echo '<table class="widefat striped kcb-status"><tbody>';
        foreach ($rows as $label => $value) {
            printf('<tr><th scope="row">%s</th><td>%s</td></tr>', esc_html($label), esc_html($value));
        }
        echo '</tbody></table>';
        ErpStatusView::render($status);
        QuarantineView::render($status);
        self::renderExcluded($status);
        self::renderUnmatched($status);
        return $status;
    }

    /** @param array<string, mixed> $status */
    private static function renderExcluded(array $status): void
    {
        $rows = is_array($status['excluded_skus'] ?? null) ? $status['excluded_skus'] : [];
        echo '<h3>' . esc_html__('Excluded from sync', 'keycrm-bridge') . '</h3>';
        if ($rows === []) {
            echo '<p>' . esc_html__('None: every product with an SKU is synced. Switch one off on its edit screen ("Don\'t sync this product").', 'keycrm-bridge') . '</p>';
            return;
        }
        self::skuTable('kcb-excluded-skus', $rows, __('Since', 'keycrm-bridge'), static fn(array $row): string => AdminFormat::time($row['since'] ?? null));
    }

    /** "#12 Name" linked to the product's edit screen, escaped; "not in this shop" without one. */
    public static function productLink(int $productId): string
    {
        $link = $productId > 0 ? get_edit_post_link($productId, 'raw') : '';
        return $link
            ? sprintf('<a href="%s">#%d %s</a>', esc_url($link), $productId, esc_html(get_the_title($productId)))
            : esc_html__('not in this shop', 'keycrm-bridge');
    }

    /** @param array<string, mixed> $status */
    private static function renderUnmatched(array $status): void
    {
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
        self::skuTable('kcb-unmatched', array_slice($unmatched, 0, 200), __('Reason', 'keycrm-bridge'), static fn(array $row): string => Reasons::text($row));
    }

    /**
     * SKU, product (linked), and one more column, every value escaped.
     *
     * @param array<int, mixed> $rows
     * @param callable(array<string, mixed>): string $third the third column's text
     */
    private static function skuTable(string $class, array $rows, string $heading, callable $third): void
    {
        printf(
            '<table class="widefat striped %s"><thead><tr><th>%s</th><th>%s</th><th>%s</th></tr></thead><tbody>',
            esc_attr($class),
            esc_html__('SKU', 'keycrm-bridge'),
            esc_html__('Product', 'keycrm-bridge'),
            esc_html($heading)
        );
        foreach ($rows as $row) {
            if (!is_array($row)) {
                continue;
            }
            printf(
                '<tr><td><code>%s</code></td><td>%s</td><td>%s</td></tr>',
                esc_html((string) ($row['sku'] ?? '')),
                self::productLink((int) ($row['product_id'] ?? 0)), // Built from escaped parts.
                esc_html($third($row))
            );
        }
        echo '</tbody></table>';
    }
}
