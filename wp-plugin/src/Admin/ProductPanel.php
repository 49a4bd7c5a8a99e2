<?php

/**
 * "Why is this SKU at 3?" on the product and variation edit screens.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge\Admin;

use KeycrmBridge\ProductExclusion;
use KeycrmBridge\Settings;
use KeycrmBridge\SidecarClient;

defined('ABSPATH') || exit;

/**
 * One signed GET /v1/skus/{sku} (3-second limit) when an edit screen is drawn, shown as: KeyCRM's on
 * hand − reserve = sellable, WooCommerce's stock, site orders in flight, the last sync each way and
 * the SKU's timeline in the site's time zone, and the "Don't sync this product" switch
 * (ProductExclusion). Only on admin screens; nothing on the shop's pages.
 */
final class ProductPanel
{
    private const TIMEOUT = 3.0;

    public function addMetaBox(): void
    {
        if (!current_user_can(AdminPage::CAPABILITY)) {
            return;
        }
        add_meta_box('kcb-product-panel', __('KeyCRM Bridge: why this stock', 'keycrm-bridge'), [$this, 'renderProduct'], 'product', 'normal', 'low');
    }

    /** @param \WP_Post $post */
    public function renderProduct($post): void
    {
        $product = function_exists('wc_get_product') ? wc_get_product((int) $post->ID) : false;
        $this->render((int) $post->ID, $product ? (string) $product->get_sku() : '', null);
    }

    /** woocommerce_product_after_variable_attributes( $loop, $variation_data, $variation ) */
    public function renderVariation($loop, $data, $variation): void
    {
        if (!current_user_can(AdminPage::CAPABILITY) || !is_object($variation)) {
            return;
        }
        $product = function_exists('wc_get_product') ? wc_get_product((int) $variation->ID) : false;
        echo '<div class="kcb-variation-panel"><strong>' . esc_html__('KeyCRM Bridge: why this stock', 'keycrm-bridge') . '</strong>';
        $this->render((int) $variation->ID, $product ? (string) $product->get_sku() : '', (int) $loop);
        echo '</div>';
    }

    private function render(int $productId, string $sku, ?int $loop): void
    {
        echo '<div class="kcb-product-panel">';
        ProductExclusion::renderField($productId, $loop);
        if ($sku === '') {
            echo '<p>' . esc_html__('This product has no SKU, so it is not synced: products are matched by SKU.', 'keycrm-bridge') . '</p></div>';
            return;
        }
        if (!Settings::isConfigured()) {
            echo '<p>' . esc_html__('Not configured yet.', 'keycrm-bridge') . '</p></div>';
            return;
        }
        $response = SidecarClient::fromSettings()->call('GET', '/v1/skus/' . rawurlencode($sku), null, self::TIMEOUT);
        if (!$response->ok() || !is_array($response->data)) {
            printf(
                '<p class="kcb-bad">%s</p></div>',
                /* translators: %s: error such as "HTTP 401" or a network error. */
                esc_html(sprintf(__('The sidecar status is not available: %s', 'keycrm-bridge'), $response->error))
            );
            return;
        }
        $info = $response->data;
        if (!empty($info['excluded'])) {
            echo '<p class="kcb-excluded"><strong>' . esc_html__(
                'Excluded from sync: the bridge writes this SKU on neither side.',
                'keycrm-bridge'
            ) . '</strong></p>';
        } elseif (ProductExclusion::isExcluded($productId)) {
            echo '<p class="kcb-excluded">' . esc_html__(
                'Switched off here; the sidecar has not taken the switch yet (it is on its way).',
                'keycrm-bridge'
            ) . '</p>';
        }
        if (empty($info['known'])) {
            echo '<p>' . esc_html__('The bridge has not seen this SKU on either side yet.', 'keycrm-bridge') . '</p></div>';
            return;
        }
        $rows = [];
        if (isset($info['keycrm_on_hand']) && is_numeric($info['keycrm_on_hand'])) {
            $rows[__('KeyCRM', 'keycrm-bridge')] = sprintf(
                /* translators: 1: on hand, 2: reserved by orders, 3: sellable. */
                __('on hand %1$s − reserved %2$s = sellable %3$s', 'keycrm-bridge'),
                $this->num($info['keycrm_on_hand']),
                $this->num($info['keycrm_reserve'] ?? 0),
                $this->num($info['keycrm_sellable'] ?? null)
            );
        }
        $rows[__('WooCommerce stock', 'keycrm-bridge')] = $this->num($info['woocommerce_stock'] ?? null);
        $orders = is_array($info['in_flight_orders'] ?? null) ? $info['in_flight_orders'] : [];
        $rows[__('Site orders in flight', 'keycrm-bridge')] = $orders === [] ? __('none', 'keycrm-bridge') : implode(', ', array_map(
            fn($o) => sprintf('#%s: %s', (string) ($o['order_id'] ?? '?'), $this->num($o['qty'] ?? 0)),
            $orders
        ));
        $last = is_array($info['last_sync'] ?? null) ? $info['last_sync'] : [];
        $rows[__('Last sync to WooCommerce', 'keycrm-bridge')] = $this->lastSync($last['to_woocommerce'] ?? null);
        $rows[__('Last sync to KeyCRM', 'keycrm-bridge')] = $this->lastSync($last['to_keycrm'] ?? null);
        echo '<table class="widefat striped kcb-sku-facts"><tbody>';
        foreach ($rows as $label => $value) {
            printf('<tr><th scope="row">%s</th><td>%s</td></tr>', esc_html($label), esc_html($value));
        }
        echo '</tbody></table>';
        $timeline = is_array($info['timeline'] ?? null) ? $info['timeline'] : [];
        echo '<p><strong>' . esc_html__('What happened, oldest first:', 'keycrm-bridge') . '</strong></p><ol class="kcb-timeline">';
        foreach ($timeline as $entry) {
            if (!is_array($entry)) {
                continue;
            }
            printf(
                '<li><time>%s</time> %s</li>',
                esc_html($this->when($entry['at'] ?? null)),
                esc_html(Timeline::text($entry))
            );
        }
        echo '</ol></div>';
    }

    private function lastSync($entry): string
    {
        if (!is_array($entry)) {
            return __('never', 'keycrm-bridge');
        }
        return sprintf(
            /* translators: 1: date and time, 2: the stock written. */
            __('%1$s (set to %2$s)', 'keycrm-bridge'),
            $this->when($entry['at'] ?? null),
            $this->num($entry['value'] ?? null)
        );
    }

    private function when($at): string
    {
        return is_numeric($at) ? (string) wp_date(get_option('date_format') . ' ' . get_option('time_format'), (int) $at) : '—';
    }

    private function num($value): string
    {
        if (!is_numeric($value)) {
            return __('unknown', 'keycrm-bridge');
        }
        $f = (float) $value;
        return floor($f) === $f ? (string) (int) $f : (string) $f;
    }
}
