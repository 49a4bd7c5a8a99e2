<?php

/**
 * The ERP section of the sidecar status (SYNC_MODE=erp): last package, rows, items set aside.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

defined('ABSPATH') || exit;

/**
 * Renders `erp` of GET /v1/status; nothing when the sidecar is in another mode. Every value escaped.
 */
final class ErpStatusView
{
    /** @param array<string, mixed> $status The sidecar's status answer. */
    public static function render(array $status): void
    {
        $erp = $status['erp'] ?? null;
        if (!is_array($erp)) {
            return;
        }
        $source = ((string) ($erp['source'] ?? '')) === 'moysklad' ? 'MoySklad' : '1C / BAS';
        echo '<h3>' . esc_html(sprintf(
            /* translators: %s: the ERP, "1C / BAS" or "MoySklad". */
            __('Stock from the ERP (%s)', 'keycrm-bridge'),
            $source
        )) . '</h3>';
        $last = is_array($erp['last_package'] ?? null) ? $erp['last_package'] : null;
        $rows = [
            __('Last package', 'keycrm-bridge') => $last
                ? sprintf('%s (%s)', (string) ($last['file'] ?? ''), self::kind($last))
                : __('none yet', 'keycrm-bridge'),
            __('Received', 'keycrm-bridge') => $last && isset($last['at'])
                ? wp_date(get_option('date_format') . ' ' . get_option('time_format'), (int) $last['at'])
                : '—',
            __('Stock rows written to KeyCRM', 'keycrm-bridge') => $last ? (string) (int) ($last['rows_applied'] ?? 0) : '—',
            __('Rows already equal in KeyCRM', 'keycrm-bridge') => $last ? (string) (int) ($last['rows_unchanged'] ?? 0) : '—',
            __('Items set aside', 'keycrm-bridge') => (string) (int) ($erp['set_aside_count'] ?? 0),
            __('Packages waiting', 'keycrm-bridge') => (string) (int) ($erp['jobs_waiting'] ?? 0),
        ];
        $failure = is_array($erp['last_failure'] ?? null) ? $erp['last_failure'] : null;
        if ($failure) {
            $rows[__('Last refused package', 'keycrm-bridge')] = sprintf(
                '%s: %s',
                (string) ($failure['file'] ?? ''),
                (string) ($failure['error'] ?? '')
            );
        }
        echo '<table class="widefat striped kcb-erp"><tbody>';
        foreach ($rows as $label => $value) {
            printf('<tr><th scope="row">%s</th><td>%s</td></tr>', esc_html($label), esc_html($value));
        }
        echo '</tbody></table>';
        $reasons = is_array($erp['set_aside'] ?? null) ? $erp['set_aside'] : [];
        if ($reasons === []) {
            return;
        }
        echo '<ul class="kcb-erp-aside">';
        foreach (array_slice($reasons, 0, 20) as $r) {
            if (is_array($r)) {
                printf('<li>%d × %s</li>', (int) ($r['count'] ?? 0), esc_html((string) ($r['reason'] ?? '')));
            }
        }
        echo '</ul>';
    }

    /** @param array<string, mixed> $last */
    private static function kind(array $last): string
    {
        if (($last['status'] ?? '') === 'failed') {
            return __('refused', 'keycrm-bridge');
        }
        return ($last['package'] ?? '') === 'changes only'
            ? __('changes only', 'keycrm-bridge')
            : __('full', 'keycrm-bridge');
    }
}
