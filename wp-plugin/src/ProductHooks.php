<?php

/**
 * Handlers for WooCommerce and WordPress product, stock and order hooks (registered in Plugin).
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Each handler only appends to the request's EventBuffer: no I/O beyond a cached post meta read.
 * Hook facts: shared/woocommerce-hooks.md (what a live WooCommerce 11 shop fired, per action).
 */
final class ProductHooks
{
    private const PRODUCT_POST_TYPES = ['product', 'product_variation'];

    /** Props whose change makes a product.upsert worth sending (stock travels as stock.set). */
    private const SYNCED_PROPS = [
        'name', 'sku', 'status', 'description', 'price', 'regular_price', 'sale_price', 'date_on_sale_from',
        'date_on_sale_to', 'weight', 'length', 'width', 'height', 'manage_stock', 'parent_id',
    ];

    /** @var array<int, string> product id => SKU before this request renamed it */
    private array $oldSku = [];

    /** @var array<int, bool> product id => a synced prop changed and no upsert was buffered since */
    private array $dirty = [];

    public function __construct(private EventBuffer $buffer, private RequestContext $context)
    {
    }

    /** woocommerce_product_set_stock / woocommerce_variation_set_stock: the object holds the new quantity. */
    public function onSetStock($product): void
    {
        if (!is_object($product) || !method_exists($product, 'get_id') || (int) $product->get_id() <= 0) {
            return;
        }
        $this->buffer->addStock(EventFactory::stockSet($product, $this->context->cause()));
    }

    /**
     * woocommerce_before_product_object_save: the only moment both the old SKU (still in post meta) and
     * the list of changed props are known.
     */
    public function onBeforeProductSave($product): void
    {
        if (!is_object($product) || !method_exists($product, 'get_changes')) {
            return;
        }
        $id = (int) $product->get_id();
        $changes = (array) $product->get_changes();
        if ($id <= 0 || $changes === []) {
            return;
        }
        if (array_key_exists('sku', $changes) && !isset($this->oldSku[$id])) {
            $this->oldSku[$id] = (string) get_post_meta($id, '_sku', true);
        }
        if (array_intersect(array_keys($changes), self::SYNCED_PROPS) !== []) {
            $this->dirty[$id] = true;
            // Queue the upsert now, ahead of the stock hook this save may fire: a renamed SKU must reach
            // the sidecar before stock events under the new SKU. The "updated" hook refreshes it in place.
            $this->buffer->addProduct(EventFactory::productUpsert($product, $this->context->cause(), $this->oldSku[$id] ?? null));
        }
    }

    /** woocommerce_new_product / woocommerce_new_product_variation (id, product). */
    public function onProductCreated($productId, $product = null): void
    {
        $product = $this->productObject($productId, $product);
        if ($product === null) {
            return;
        }
        unset($this->dirty[(int) $product->get_id()]);
        $this->buffer->addProduct(EventFactory::productUpsert($product, $this->context->cause()), true);
    }

    /** woocommerce_update_product / woocommerce_update_product_variation (id, product). */
    public function onProductUpdated($productId, $product = null): void
    {
        $id = (int) $productId;
        if (empty($this->dirty[$id])) {
            // Saves without a synced change (order stock saves, parent price syncs) send nothing here.
            return;
        }
        $product = $this->productObject($productId, $product);
        if ($product === null) {
            return;
        }
        unset($this->dirty[$id]);
        $this->buffer->addProduct(EventFactory::productUpsert($product, $this->context->cause(), $this->oldSku[$id] ?? null));
    }

    /**
     * post_updated: catches title, content and status edits made through WordPress core alone (Quick Edit
     * title, other plugins). The upsert is built in flushDirty() or by the WooCommerce save that follows.
     */
    public function onPostUpdated($postId, $after, $before): void
    {
        if (!($after instanceof \WP_Post) || !($before instanceof \WP_Post)) {
            return;
        }
        if (!in_array($after->post_type, self::PRODUCT_POST_TYPES, true)) {
            return;
        }
        if (
            $after->post_title !== $before->post_title || $after->post_content !== $before->post_content
            || $after->post_status !== $before->post_status
        ) {
            $this->dirty[(int) $postId] = true;
        }
    }

    /** trashed_post / untrashed_post: wp-admin fires only these core hooks; REST also fires them. */
    public function onTrashToggled($postId): void
    {
        $postId = (int) $postId;
        if (!in_array(get_post_type($postId), self::PRODUCT_POST_TYPES, true)) {
            return;
        }
        $product = $this->productObject($postId, null);
        if ($product !== null) {
            unset($this->dirty[$postId]);
            $this->buffer->addProduct(EventFactory::productUpsert($product, $this->context->cause(), $this->oldSku[$postId] ?? null));
        }
    }

    /** before_delete_post: fires for REST force delete and wp-admin "Delete Permanently"; meta still there. */
    public function onBeforeDeletePost($postId, $post = null): void
    {
        $post = $post instanceof \WP_Post ? $post : get_post((int) $postId);
        if (!$post || !in_array($post->post_type, self::PRODUCT_POST_TYPES, true)) {
            return;
        }
        unset($this->dirty[(int) $post->ID]);
        $this->buffer->addProduct(EventFactory::productDeleted(
            (int) $post->ID,
            (int) $post->post_parent,
            (string) get_post_meta((int) $post->ID, '_sku', true),
            $this->context->cause()
        ));
    }

    /** woocommerce_reduce_order_item_stock (item, {product, from, to}, order): fires right after set_stock. */
    public function onReduceOrderItemStock($item, $change, $order): void
    {
        $product = is_array($change) ? ($change['product'] ?? null) : null;
        if (!is_object($product) || !is_object($order)) {
            return;
        }
        $delta = (float) ($change['to'] ?? 0) - (float) ($change['from'] ?? 0);
        $this->tagOrMake($product, [(int) $product->get_id()], RequestContext::ORDER, (int) $order->get_id(), $delta);
    }

    /** woocommerce_restore_order_item_stock (item, new stock, old stock, order). */
    public function onRestoreOrderItemStock($item, $newStock, $oldStock, $order): void
    {
        if (!is_object($item) || !is_object($order)) {
            return;
        }
        $product = method_exists($item, 'get_product') ? $item->get_product() : null;
        $this->tagOrMake(
            is_object($product) ? $product : null,
            $this->itemProductIds($item, $product),
            RequestContext::ORDER_RESTORE,
            (int) $order->get_id(),
            (float) $newStock - (float) $oldStock
        );
    }

    /** woocommerce_restock_refunded_item (product id, old stock, new stock, order, product). */
    public function onRestockRefundedItem($productId, $oldStock, $newStock, $order, $product = null): void
    {
        if (!is_object($order)) {
            return;
        }
        $this->tagOrMake(
            is_object($product) ? $product : null,
            [(int) $productId],
            RequestContext::ORDER_RESTORE,
            (int) $order->get_id(),
            (float) $newStock - (float) $oldStock
        );
    }

    /**
     * woocommerce_reduce_order_stock / woocommerce_restore_order_stock (order): a safety net for stock events
     * of this order's items that no per-item hook tagged (extensions that reduce stock their own way).
     */
    public function onOrderStockDone($order, string $cause): void
    {
        if (!is_object($order) || !method_exists($order, 'get_items')) {
            return;
        }
        $sign = $cause === RequestContext::ORDER ? -1.0 : 1.0;
        foreach ($order->get_items() as $item) {
            if (!is_object($item) || !method_exists($item, 'get_quantity')) {
                continue;
            }
            $product = method_exists($item, 'get_product') ? $item->get_product() : null;
            $this->buffer->tagOrderItem(
                $this->itemProductIds($item, is_object($product) ? $product : null),
                $cause,
                (int) $order->get_id(),
                $sign * (float) $item->get_quantity()
            );
        }
    }

    /** woocommerce_product_import_before_process_item: the CSV importer is running in this request. */
    public function onImportItem(): void
    {
        $this->context->markImport();
    }

    /** At shutdown, before sending: upserts for products changed only through WordPress core. */
    public function flushDirty(): void
    {
        foreach (array_keys($this->dirty) as $id) {
            $product = $this->productObject($id, null);
            if ($product !== null) {
                $this->buffer->addProduct(EventFactory::productUpsert($product, $this->context->cause(), $this->oldSku[$id] ?? null));
            }
        }
        $this->dirty = [];
        $this->oldSku = [];
    }

    public function reset(): void
    {
        $this->dirty = [];
        $this->oldSku = [];
    }

    /** @param int[] $ids */
    private function tagOrMake(?object $product, array $ids, string $cause, int $orderId, float $delta): void
    {
        if ($orderId <= 0 || $this->buffer->tagOrderItem($ids, $cause, $orderId, $delta)) {
            return;
        }
        if ($product === null) {
            return;
        }
        // No stock hook came first (a third-party stock routine): make the event here.
        $event = EventFactory::stockSet($product, $cause);
        $event['order_id'] = $orderId;
        $event['quantity_delta'] = $delta;
        $this->buffer->addStock($event);
    }

    /** @return int[] Ids a stock event of this order item may carry: variation, product, stock manager. */
    private function itemProductIds(object $item, ?object $product): array
    {
        $ids = [];
        if (method_exists($item, 'get_variation_id')) {
            $ids[] = (int) $item->get_variation_id();
        }
        if (method_exists($item, 'get_product_id')) {
            $ids[] = (int) $item->get_product_id();
        }
        if ($product !== null && method_exists($product, 'get_stock_managed_by_id')) {
            $ids[] = (int) $product->get_stock_managed_by_id();
        }
        return array_values(array_unique(array_filter($ids)));
    }

    private function productObject($productId, $product): ?object
    {
        if (is_object($product) && method_exists($product, 'get_sku')) {
            return $product;
        }
        if (!function_exists('wc_get_product')) {
            return null;
        }
        $product = wc_get_product((int) $productId);
        return is_object($product) ? $product : null;
    }
}
