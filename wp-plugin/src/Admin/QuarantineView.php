<?php

/**
 * The items the sidecar set aside (quarantine) on the plugin page, with Retry and Drop.
 *
 * @package KeycrmBridge\Admin
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;

defined('ABSPATH') || exit;

/**
 * Lists `quarantine.items` of GET /v1/status (SKU, stage, reason, when, tries); each row's buttons
 * post to admin-post.php (nonce and capability checked), which calls the sidecar's signed
 * POST /v1/quarantine/{id}/retry|drop and comes back with a notice. Every value escaped.
 */
final class QuarantineView
{
    public const ACTION = 'kcb_quarantine';

    /** @param array<string, mixed> $status The sidecar's status answer. */
    public static function render(array $status): void
    {
        $q = is_array($status['quarantine'] ?? null) ? $status['quarantine'] : [];
        $items = is_array($q['items'] ?? null) ? $q['items'] : [];
        echo '<h3>' . esc_html__('Set aside (quarantine)', 'keycrm-bridge') . '</h3>';
        if ($items === []) {
            echo '<p>' . esc_html__('Nothing: every item the sidecar took in went through.', 'keycrm-bridge') . '</p>';
            return;
        }
        $count = (int) ($q['count'] ?? count($items));
        echo '<p class="description">' . esc_html(sprintf(
            /* translators: %d: number of items set aside. */
            _n(
                '%d item could not be processed and was set aside; everything else goes on. Retry hands it back to its stage (after fixing the cause); Drop forgets it.',
                '%d items could not be processed and were set aside; everything else goes on. Retry hands one back to its stage (after fixing the cause); Drop forgets it.',
                $count,
                'keycrm-bridge'
            ),
            $count
        )) . '</p>';
        printf(
            '<table class="widefat striped kcb-quarantine"><thead><tr><th>%s</th><th>%s</th><th>%s</th><th>%s</th><th>%s</th></tr></thead><tbody>',
            esc_html__('SKU', 'keycrm-bridge'),
            esc_html__('Stage', 'keycrm-bridge'),
            esc_html__('Reason', 'keycrm-bridge'),
            esc_html__('When', 'keycrm-bridge'),
            esc_html__('Action', 'keycrm-bridge')
        );
        foreach ($items as $item) {
            if (!is_array($item) || !is_numeric($item['id'] ?? null)) {
                continue;
            }
            $tries = (int) ($item['attempts'] ?? 1);
            $when = AdminFormat::time($item['last_at'] ?? null) . ($tries > 1 ? ' · ' . sprintf(
                /* translators: %d: how many times the item was tried. */
                _n('%d try', '%d tries', $tries, 'keycrm-bridge'),
                $tries
            ) : '');
            printf(
                '<tr><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
                esc_html((string) ($item['sku'] ?? '') !== '' ? (string) $item['sku'] : '—'),
                esc_html(self::stage((string) ($item['stage'] ?? ''))),
                esc_html(Reasons::text($item)),
                esc_html($when),
                self::buttons((int) $item['id'], ($item['status'] ?? '') === 'retry') // Built from escaped parts.
            );
        }
        echo '</tbody></table>';
    }

    private static function buttons(int $id, bool $retrying): string
    {
        if ($retrying) {
            return esc_html__('retry requested', 'keycrm-bridge');
        }
        $form = '<form method="post" action="' . esc_url(admin_url('admin-post.php')) . '" class="kcb-inline">'
            . '<input type="hidden" name="action" value="' . esc_attr(self::ACTION) . '">'
            . '<input type="hidden" name="id" value="' . esc_attr((string) $id) . '">'
            . wp_nonce_field(self::ACTION, '_wpnonce', true, false);
        return $form
            . '<button type="submit" name="op" value="retry" class="button button-small">' . esc_html__('Retry', 'keycrm-bridge') . '</button> '
            . '<button type="submit" name="op" value="drop" class="button button-small">' . esc_html__('Drop', 'keycrm-bridge') . '</button>'
            . '</form>';
    }

    /** The stage in words; an unknown one (a newer sidecar) as it came. */
    private static function stage(string $stage): string
    {
        $words = [
            'intake' => __('reading the shop\'s changes', 'keycrm-bridge'),
            'skumap' => __('matching products by SKU', 'keycrm-bridge'),
            'push' => __('sending product changes to KeyCRM', 'keycrm-bridge'),
            'webhook' => __('KeyCRM\'s stock webhook', 'keycrm-bridge'),
            'sync' => __('syncing stock', 'keycrm-bridge'),
            'erp' => __('the ERP\'s stock', 'keycrm-bridge'),
        ];
        return $words[$stage] ?? $stage;
    }

    /** admin-post.php?action=kcb_quarantine (id, op=retry|drop): one signed call, then back to the page. */
    public static function handle(): void
    {
        AdminPage::guardPost(self::ACTION);
        $id = isset($_POST['id']) && is_string($_POST['id']) ? absint(wp_unslash($_POST['id'])) : 0;
        $op = isset($_POST['op']) && is_string($_POST['op']) ? sanitize_key(wp_unslash($_POST['op'])) : '';
        if ($id <= 0 || !in_array($op, ['retry', 'drop'], true)) {
            AdminPage::redirect('quarantine_unknown');
        }
        if (!Settings::isConfigured()) {
            AdminPage::redirect('not_configured');
        }
        $response = SidecarClient::fromSettings()->call('POST', '/v1/quarantine/' . $id . '/' . $op, [], 10.0);
        delete_transient(SyncNotice::CACHE);  // the notices count the items again
        AdminPage::redirect(match (true) {
            $response->ok() => $op === 'retry' ? 'quarantine_retry' : 'quarantine_drop',
            $response->status === 404 => 'quarantine_missing',
            default => 'quarantine_failed',
        });
    }
}
