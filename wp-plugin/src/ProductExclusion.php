<?php

/**
 * "Don't sync this product": the switch on the product and variation edit screens.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

use KeycrmBridge\Admin\AdminPage;

defined('ABSPATH') || exit;

/**
 * Kept as product meta; a change is sent to the sidecar as a product.exclude event (docs/events.md),
 * queued like every other event. Saved only with this product's nonce, by a user who may manage
 * WooCommerce and edit the product.
 */
final class ProductExclusion
{
    public const META = '_kcb_sync_excluded';
    private const NONCE = 'kcb_sync_exclude_';
    private const FIELD = 'kcb_sync_excluded';
    private const NONCE_FIELD = 'kcb_exclude_nonce';

    public function __construct(private EventBuffer $buffer)
    {
    }

    public static function isExcluded(int $productId): bool
    {
        return $productId > 0 && get_post_meta($productId, self::META, true) === 'yes';
    }

    /** The checkbox: for the product ($loop null) or for the variation at $loop of the variations form. */
    public static function renderField(int $productId, ?int $loop): void
    {
        $suffix = $loop === null ? '' : '[' . $loop . ']';
        printf(
            '<p class="kcb-exclude"><label><input type="checkbox" class="kcb-exclude-switch" name="%s" value="yes"%s> <strong>%s</strong></label>'
            . '<br><span class="description">%s</span><input type="hidden" name="%s" value="%s"></p>',
            esc_attr(self::FIELD . $suffix),
            checked(self::isExcluded($productId), true, false),
            esc_html__('Don\'t sync this product', 'keycrm-bridge'),
            esc_html__('The bridge still reads both sides, but writes this SKU\'s stock and fields on neither, also in a full resync.', 'keycrm-bridge'),
            esc_attr(self::NONCE_FIELD . $suffix),
            esc_attr(wp_create_nonce(self::NONCE . $productId))
        );
    }

    /** woocommerce_process_product_meta( $post_id ): the product form was posted. */
    public function onSaveProduct($postId): void
    {
        // phpcs:ignore WordPress.Security.NonceVerification -- verified in save() against this product's nonce.
        $this->save((int) $postId, self::posted(self::NONCE_FIELD, null), self::posted(self::FIELD, null) === 'yes');
    }

    /** woocommerce_save_product_variation( $variation_id, $loop ): one variation of the variations form. */
    public function onSaveVariation($variationId, $loop): void
    {
        $loop = (int) $loop;
        $this->save((int) $variationId, self::posted(self::NONCE_FIELD, $loop), self::posted(self::FIELD, $loop) === 'yes');
    }

    private function save(int $productId, string $nonce, bool $excluded): void
    {
        if ($productId <= 0 || $nonce === '' || !wp_verify_nonce($nonce, self::NONCE . $productId)) {
            return; // not our form (or an old one): the switch keeps its value
        }
        if (!current_user_can(AdminPage::CAPABILITY) || !current_user_can('edit_post', $productId)) {
            return;
        }
        if (self::isExcluded($productId) === $excluded) {
            return;
        }
        if ($excluded) {
            update_post_meta($productId, self::META, 'yes');
        } else {
            delete_post_meta($productId, self::META);
        }
        $product = function_exists('wc_get_product') ? wc_get_product($productId) : false;
        if ($product && (string) $product->get_sku() !== '') {
            $this->buffer->addStock(EventFactory::productExclude($product, $excluded));
        }
    }

    /** A posted string (or one element of a posted array), unslashed and sanitized; '' when absent. */
    private static function posted(string $field, ?int $loop): string
    {
        // phpcs:ignore WordPress.Security.NonceVerification -- the nonce is one of these fields; save() checks it.
        $value = $_POST[$field] ?? null;
        if ($loop !== null) {
            $value = is_array($value) ? ($value[$loop] ?? null) : null;
        }
        return is_string($value) ? sanitize_text_field(wp_unslash($value)) : '';
    }
}
