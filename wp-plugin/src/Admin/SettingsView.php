<?php

/**
 * The plugin page's connection settings: form, secret, connection test.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\Dispatcher;
use KeycrmBridge\Outbox;
use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;

defined('ABSPATH') || exit;

/**
 * The connection form (sidecar URL, shared secret shown once, send timeout), its two admin-post actions
 * and the AJAX connection test.
 */
final class SettingsView
{
    public function __construct(private Dispatcher $dispatcher)
    {
    }

    public function render(): void
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

    public function handleSaveSettings(): void
    {
        AdminPage::guardPost('kcb_save_settings');
        $url = isset($_POST['kcb_sidecar_url']) ? trim(sanitize_text_field(wp_unslash((string) $_POST['kcb_sidecar_url']))) : '';
        if ($url !== '' && !preg_match('#^https?://[^\s/?\#]+#i', $url)) {
            AdminPage::redirect('bad_url');
        }
        update_option(Settings::URL, untrailingslashit(esc_url_raw($url, ['http', 'https'])), true);
        $timeout = isset($_POST['kcb_send_timeout']) ? (float) wp_unslash((string) $_POST['kcb_send_timeout']) : Settings::DEFAULT_TIMEOUT;
        update_option(Settings::TIMEOUT, (string) min(30.0, max(0.5, $timeout)), true);
        $newSecret = isset($_POST['kcb_new_secret']) ? trim(sanitize_text_field(wp_unslash((string) $_POST['kcb_new_secret']))) : '';
        if ($newSecret !== '') {
            if (!preg_match('/^[A-Za-z0-9_-]{32,256}$/', $newSecret)) {
                AdminPage::redirect('bad_secret');
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
        AdminPage::redirect('saved');
    }

    public function handleRegenerateSecret(): void
    {
        AdminPage::guardPost('kcb_regenerate_secret');
        update_option(Settings::SECRET, Settings::generateSecret(), true);
        update_option(Settings::REVEAL, '1', false);
        AdminPage::redirect('secret');
    }

    public function ajaxTestConnection(): void
    {
        AdminPage::guardAjax();
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
        wp_send_json_error(['message' => AdminFormat::explain($response)]);
    }
}
