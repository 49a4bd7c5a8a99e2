<?php

/**
 * The sidecar's "why" texts in the site's language, by their stable codes.
 *
 * @package KeycrmBridge\Admin
 */

namespace KeycrmBridge\Admin;

defined('ABSPATH') || exit;

/**
 * The sidecar sends each reason as English text with a code and its values beside it
 * (`reason_code`, `reason_args`; sidecar/keycrm_bridge/reasons.py). A known code is translated here;
 * any other (an error's own words, a newer sidecar's new reason) is shown as the sidecar wrote it.
 * The result is plain text: escape it where it is printed.
 */
final class Reasons
{
    /** @param array<string, mixed> $row a row holding $field, "{$field}_code" and "{$field}_args" */
    public static function text(array $row, string $field = 'reason'): string
    {
        $code = (string) ($row[$field . '_code'] ?? '');
        $args = is_array($row[$field . '_args'] ?? null) ? $row[$field . '_args'] : [];
        $arg = static fn(string $key): string => is_scalar($args[$key] ?? null) ? (string) $args[$key] : '';
        $plain = [
            'not_in_keycrm' => __('not known in KeyCRM', 'keycrm-bridge'),
            'woocommerce_unknown' => __('WooCommerce stock not known yet', 'keycrm-bridge'),
            'woocommerce_master' => __('WooCommerce is the master', 'keycrm-bridge'),
            'first_from_keycrm' => __('first value from KeyCRM', 'keycrm-bridge'),
            'sku_not_in_keycrm' => __('SKU not found in KeyCRM', 'keycrm-bridge'),
            'sku_not_in_woocommerce' => __('SKU not found in WooCommerce', 'keycrm-bridge'),
            'stock_not_managed' => __('stock is not managed in WooCommerce for this product', 'keycrm-bridge'),
            'empty_sku' => __('empty SKU: give the product an SKU in WooCommerce', 'keycrm-bridge'),
            'excluded' => __('excluded from sync in WooCommerce (the product\'s "Don\'t sync this product" switch)', 'keycrm-bridge'),
            'written_back' => __('written back: KeyCRM lists this SKU again on a later page than the one the resync wrote it from', 'keycrm-bridge'),
            'first_sync' => __('first sync: review the comparison and apply it (a full resync) to start writing stock', 'keycrm-bridge'),
            'account_changed' => __('the KeyCRM account (API URL or key) changed: review the comparison and apply it (a full resync) to start writing stock', 'keycrm-bridge'),
        ];
        if (isset($plain[$code])) {
            return $plain[$code];
        }
        switch ($code) {
            case 'keycrm_master':
                return $arg('held') === '' ? __('KeyCRM is the master', 'keycrm-bridge') : sprintf(
                    /* translators: %s: units held for site orders KeyCRM does not show yet. */
                    __('KeyCRM is the master; %s held for site orders', 'keycrm-bridge'),
                    $arg('held')
                );
            case 'merged':
                return sprintf(
                    /* translators: 1: the value both sides agreed on, 2: the shop's change since, 3: KeyCRM's change since (signed). */
                    __('merged: agreed %1$s, WooCommerce %2$s, KeyCRM %3$s', 'keycrm-bridge'),
                    $arg('agreed'),
                    $arg('woo'),
                    $arg('kc')
                );
            case 'keycrm_rejected_row':
                /* translators: %s: KeyCRM's own error text. */
                return sprintf(__('KeyCRM rejected the stock row: %s', 'keycrm-bridge'), $arg('detail'));
            case 'woocommerce_refused_write':
                /* translators: %s: WooCommerce's own error text. */
                return sprintf(__('WooCommerce refused the stock write: %s', 'keycrm-bridge'), $arg('detail'));
            case 'mode_changed':
                return sprintf(
                    /* translators: 1: the old sync mode, 2: the new one. */
                    __('SYNC_MODE changed from %1$s to %2$s: review the comparison and apply it (a full resync) to start writing stock', 'keycrm-bridge'),
                    $arg('old'),
                    $arg('new')
                );
        }
        return (string) ($row[$field] ?? '');
    }

    /** A problem code of the comparison (skuhealth.py) in words; an unknown one as it came. */
    public static function problem(string $problem): string
    {
        $words = [
            'only_in_woocommerce' => __('only in WooCommerce', 'keycrm-bridge'),
            'only_in_keycrm' => __('only in KeyCRM', 'keycrm-bridge'),
            'empty_sku' => __('empty SKU', 'keycrm-bridge'),
            'duplicate_in_woocommerce' => __('the SKU is used twice in WooCommerce', 'keycrm-bridge'),
            'duplicate_in_keycrm' => __('the SKU is used twice in KeyCRM', 'keycrm-bridge'),
            'parent_and_variation_share_sku' => __('a product and its variation share the SKU', 'keycrm-bridge'),
            'matches_a_variable_parent' => __('matches a variable product, not a variation', 'keycrm-bridge'),
            'stock_not_managed' => __('stock not managed in WooCommerce', 'keycrm-bridge'),
            'lookalike' => __('looks like another SKU', 'keycrm-bridge'),
            'order_in_flight' => __('a site order is on its way to KeyCRM', 'keycrm-bridge'),
        ];
        return $words[$problem] ?? str_replace('_', ' ', $problem);
    }
}
