<?php

/**
 * The admin notice of an outbox near (or at) its cap, on every admin page.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\OutboxLimit;

defined('ABSPATH') || exit;

/**
 * Reads one autoloaded option (written by OutboxLimit), so an admin page pays nothing while all is well.
 */
final class OutboxNotice
{
    public function render(): void
    {
        if (!current_user_can('manage_woocommerce')) {
            return;
        }
        $alert = OutboxLimit::alert();
        if ($alert['rows'] === 0 && $alert['dropped'] === 0) {
            return;
        }
        $link = admin_url('admin.php?page=' . AdminPage::SLUG);
        echo '<div class="notice notice-error kcb-outbox-notice"><p><strong>'
            . esc_html__('KeyCRM Bridge', 'keycrm-bridge') . ':</strong> ';
        if ($alert['rows'] > 0) {
            echo esc_html(sprintf(
                /* translators: 1: events waiting, 2: the most the outbox keeps */
                __('%1$d stock and product changes are waiting for the sidecar; the outbox keeps at most %2$d. Check that the sidecar is running and reachable.', 'keycrm-bridge'),
                $alert['rows'],
                $alert['cap']
            )) . ' ';
        }
        if ($alert['dropped'] > 0) {
            echo esc_html(sprintf(
                /* translators: %d: number of changes not kept */
                __('%d changes were not kept because the outbox was full: once the sidecar is back, start a Full resync.', 'keycrm-bridge'),
                $alert['dropped']
            )) . ' ';
        }
        echo '<a href="' . esc_url($link) . '">' . esc_html__('Open KeyCRM Bridge', 'keycrm-bridge') . '</a></p></div>';
    }
}
