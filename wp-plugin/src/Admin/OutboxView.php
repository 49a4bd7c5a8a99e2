<?php

/**
 * The plugin page's outbox section.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\Dispatcher;
use KeycrmBridge\Outbox;
use KeycrmBridge\Settings;

defined('ABSPATH') || exit;

/**
 * This shop's outbox: what the sidecar has not confirmed yet, and "Send now".
 */
final class OutboxView
{
    public function __construct(private Dispatcher $dispatcher)
    {
    }

    public function render(): void
    {
        $stats = Outbox::stats();
        $state = Settings::state();
        echo '<h2>' . esc_html__('Outbox of this shop', 'keycrm-bridge') . '</h2>';
        echo '<p class="description">'
            . esc_html__('Changes the sidecar has not confirmed yet. They are resent oldest first until it accepts them.', 'keycrm-bridge')
            . '</p>';
        $rows = [
            __('Events waiting', 'keycrm-bridge') => (string) $stats['pending'],
            __('Oldest waiting for', 'keycrm-bridge') => $stats['pending'] > 0 ? AdminFormat::age($stats['oldest_age_s']) : '—',
            __('Set aside (refused as malformed)', 'keycrm-bridge') => (string) $stats['dead'],
            __('Last delivery error', 'keycrm-bridge') => $state['last_error'] !== '' ? $state['last_error'] : '—',
            __('Last successful delivery', 'keycrm-bridge') => AdminFormat::time($state['last_ok'] > 0 ? $state['last_ok'] : null),
        ];
        if ($state['fail_until'] > time()) {
            $rows[__('Sending paused until', 'keycrm-bridge')] = AdminFormat::time($state['fail_until']);
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

    public function handleFlushOutbox(): void
    {
        AdminPage::guardPost('kcb_flush_outbox');
        if (!empty($_POST['kcb_revive'])) {
            Outbox::reviveDead();
        }
        $result = $this->dispatcher->flush(20.0);
        $code = match ($result['status']) {
            'busy' => 'flush_busy',
            'failed', 'not_configured' => 'flush_failed',
            default => 'flushed',
        };
        AdminPage::redirect($code);
    }
}
