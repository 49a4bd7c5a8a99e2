<?php

/**
 * Admin notices for what waits on the owner: late delivery, the first-sync review, guard holds, quarantine.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\Log;
use KeycrmBridge\Outbox;
use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;

defined('ABSPATH') || exit;

/**
 * Reads the sidecar's status from a short cache (the plugin page refreshes it; otherwise one signed
 * GET with a 2-second limit every few minutes) and this shop's own outbox. Each notice also goes to
 * WooCommerce → Status → Logs, once when it appears.
 */
final class SyncNotice
{
    public const CACHE = 'kcb_status_cache';
    public const LOGGED = 'kcb_notices_logged';
    /** Changes older than this that the sidecar has not taken count as a delivery failure. */
    public const DELIVERY_LATE_S = 900;
    private const CACHE_S = 180;
    private const TIMEOUT = 2.0;

    /** @param array<string, mixed>|null $status what GET /v1/status answered; null when it did not */
    public static function remember(?array $status): void
    {
        set_transient(self::CACHE, ['status' => $status], self::CACHE_S);
    }

    public function render(): void
    {
        if (!current_user_can(AdminPage::CAPABILITY) || !Settings::isConfigured()) {
            return;
        }
        $messages = $this->messages();
        $this->logNew($messages);
        $link = AdminPage::pageUrl();
        foreach ($messages as $key => $message) {
            printf(
                '<div class="notice notice-warning kcb-notice kcb-notice-%s"><p><strong>%s:</strong> %s <a href="%s">%s</a></p></div>',
                esc_attr($key),
                esc_html__('KeyCRM Bridge', 'keycrm-bridge'),
                esc_html($message),
                esc_url($link),
                esc_html__('Open KeyCRM Bridge', 'keycrm-bridge')
            );
        }
    }

    /** @return array<string, string> notice key => words */
    public function messages(): array
    {
        $out = [];
        $stats = Outbox::stats();
        if ($stats['pending'] > 0 && $stats['oldest_age_s'] >= self::DELIVERY_LATE_S) {
            $out['delivery'] = sprintf(
                /* translators: 1: how long, such as "20 mins", 2: number of changes waiting. */
                __('changes have not reached the sidecar for %1$s (%2$d waiting). Check that the sidecar is running and reachable.', 'keycrm-bridge'),
                human_time_diff(time() - (int) $stats['oldest_age_s'], time()),
                (int) $stats['pending']
            );
        }
        $status = $this->status();
        if ($status === null) {
            return $out;
        }
        $first = is_array($status['first_sync'] ?? null) ? $status['first_sync'] : [];
        if (($first['approved'] ?? true) === false) {
            $out['review'] = __('no stock is written to either side until you review the first comparison and start the sync (Full resync → Review and start).', 'keycrm-bridge');
        }
        $holds = is_array($status['guard_holds'] ?? null) ? count($status['guard_holds']) : 0;
        if ($holds > 0) {
            $out['guard'] = sprintf(
                /* translators: %d: number of held sync cycles. */
                _n(
                    '%d sync cycle is held because it would empty or halve much of the shop. Confirm or dismiss it with keycrm-bridge guard.',
                    '%d sync cycles are held because they would empty or halve much of the shop. Confirm or dismiss them with keycrm-bridge guard.',
                    $holds,
                    'keycrm-bridge'
                ),
                $holds
            );
        }
        $quarantined = is_array($status['quarantine'] ?? null) ? (int) ($status['quarantine']['count'] ?? 0) : 0;
        if ($quarantined > 0) {
            $out['quarantine'] = sprintf(
                /* translators: %d: number of items set aside. */
                _n(
                    '%d item could not be processed and was set aside; everything else goes on. See the list below.',
                    '%d items could not be processed and were set aside; everything else goes on. See the list below.',
                    $quarantined,
                    'keycrm-bridge'
                ),
                $quarantined
            );
        }
        return $out;
    }

    /** @return array<string, mixed>|null */
    private function status(): ?array
    {
        $cached = get_transient(self::CACHE);
        if (is_array($cached) && array_key_exists('status', $cached)) {
            return is_array($cached['status']) ? $cached['status'] : null;
        }
        $response = SidecarClient::fromSettings()->call('GET', '/v1/status', null, self::TIMEOUT);
        $status = $response->ok() && is_array($response->data) ? $response->data : null;
        self::remember($status);
        return $status;
    }

    /** @param array<string, string> $messages */
    private function logNew(array $messages): void
    {
        $logged = get_option(self::LOGGED, []);
        $logged = is_array($logged) ? $logged : [];
        $new = array_diff_key($messages, array_flip($logged));
        foreach ($new as $key => $message) {
            Log::warning('KeyCRM Bridge: ' . $message, ['notice' => $key]);
        }
        if ($new !== [] || count($logged) !== count($messages)) {
            update_option(self::LOGGED, array_keys($messages), false);
        }
    }
}
