<?php

/**
 * Turns WooCommerce objects into events of the batch JSON Schema (sidecar/keycrm_bridge/schema/events.schema.json).
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Pure builders: no database writes, so calling them from a hook is cheap.
 */
final class EventFactory
{
    private const PRODUCT_TYPES = ['simple', 'variable', 'variation', 'grouped', 'external'];

    /** Unique event id: 32 hex characters, the same on every resend. */
    public static function newId(): string
    {
        return str_replace('-', '', wp_generate_uuid4());
    }

    /**
     * @param object $product A WC_Product (or variation) holding the new quantity.
     * @return array<string, mixed>
     */
    public static function stockSet($product, string $cause): array
    {
        return [
            'id' => self::newId(),
            'type' => 'stock.set',
            'occurred_at' => microtime(true),
            'product_id' => (int) $product->get_id(),
            'parent_id' => (int) $product->get_parent_id(),
            'sku' => self::sku($product->get_sku()),
            'cause' => $cause,
            'stock_quantity' => self::quantity($product),
        ];
    }

    /**
     * @param object $product A WC_Product.
     * @return array<string, mixed>
     */
    public static function productUpsert($product, string $cause, ?string $oldSku = null): array
    {
        $event = [
            'id' => self::newId(),
            'type' => 'product.upsert',
            'occurred_at' => microtime(true),
            'product_id' => (int) $product->get_id(),
            'parent_id' => (int) $product->get_parent_id(),
            'sku' => self::sku($product->get_sku()),
            'cause' => $cause,
            'product' => self::productFields($product),
        ];
        if ($oldSku !== null && $oldSku !== $event['sku']) {
            $event['old_sku'] = self::sku($oldSku);
        }
        return $event;
    }

    /** @return array<string, mixed> */
    public static function productDeleted(int $productId, int $parentId, string $sku, string $cause): array
    {
        return [
            'id' => self::newId(),
            'type' => 'product.deleted',
            'occurred_at' => microtime(true),
            'product_id' => $productId,
            'parent_id' => max(0, $parentId),
            'sku' => self::sku($sku),
            'cause' => $cause,
        ];
    }

    /**
     * The owner's "Don't sync this product" switch, set from wp-admin.
     *
     * @param object $product A WC_Product (or variation).
     * @return array<string, mixed>
     */
    public static function productExclude($product, bool $excluded): array
    {
        return [
            'id' => self::newId(),
            'type' => 'product.exclude',
            'occurred_at' => microtime(true),
            'product_id' => (int) $product->get_id(),
            'parent_id' => (int) $product->get_parent_id(),
            'sku' => self::sku($product->get_sku()),
            'cause' => 'manual',
            'excluded' => $excluded,
        ];
    }

    /**
     * @param object $product A WC_Product.
     * @return array<string, mixed>
     */
    public static function productFields($product): array
    {
        $type = (string) $product->get_type();
        $fields = [
            'name' => mb_substr((string) $product->get_name(), 0, 1024),
            'status' => mb_substr((string) $product->get_status(), 0, 32),
            'description' => mb_substr((string) $product->get_description(), 0, 200000),
            'price' => self::number($product->get_price()),
            'regular_price' => self::number($product->get_regular_price()),
            'sale_price' => self::number($product->get_sale_price()),
            'weight' => self::number($product->get_weight()),
            'length' => self::number($product->get_length()),
            'width' => self::number($product->get_width()),
            'height' => self::number($product->get_height()),
            'manage_stock' => (bool) $product->managing_stock(),
            'stock_quantity' => self::quantity($product),
        ];
        if (in_array($type, self::PRODUCT_TYPES, true)) {
            $fields['type'] = $type;
        }
        return $fields;
    }

    /** @param object $product */
    private static function quantity($product): ?float
    {
        $quantity = $product->get_stock_quantity();
        return ($quantity === null || $quantity === '' || !$product->managing_stock()) ? null : (float) $quantity;
    }

    /** WooCommerce keeps prices and sizes as strings; "" means "not set". */
    private static function number($value): ?float
    {
        if ($value === null || $value === '' || !is_numeric($value)) {
            return null;
        }
        return (float) $value;
    }

    private static function sku($sku): string
    {
        return mb_substr((string) $sku, 0, 191);
    }
}
