<?php

/**
 * The events of one request, in the order WooCommerce fired them.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Memory-only: a hook appends here and returns; the Dispatcher sends the lot once, after the response.
 */
final class EventBuffer
{
    /** @var array<int, array<string, mixed>> */
    private array $events = [];

    /** @var array<string, int> product upsert/delete key => index in $events (not stock or exclude events) */
    private array $productIndex = [];

    /** @param array<string, mixed> $event */
    public function addStock(array $event): void
    {
        $this->events[] = $event;
    }

    /**
     * One product event per product and request: WooCommerce saves a product twice per admin form post,
     * so a later upsert replaces the earlier one in place. Keeping the first position (and time) keeps a
     * rename ahead of the stock events that carry the new SKU; an old_sku is kept unless renamed back.
     *
     * @param array<string, mixed> $event
     */
    public function addProduct(array $event, bool $aheadOfItsStock = false): void
    {
        $key = (string) $event['product_id'];
        if (!isset($this->productIndex[$key])) {
            $position = count($this->events);
            if ($aheadOfItsStock) {
                // A new product: WooCommerce fires its stock hook before "new product"; the sidecar
                // should learn about the product first.
                foreach ($this->events as $index => $existing) {
                    if ($existing['product_id'] === $event['product_id']) {
                        $position = $index;
                        break;
                    }
                }
            }
            array_splice($this->events, $position, 0, [$event]);
            $this->reindexProducts();
            return;
        }
        $index = $this->productIndex[$key];
        $previous = $this->events[$index];
        $event['id'] = $previous['id'];
        $event['occurred_at'] = $previous['occurred_at'];
        if (isset($previous['old_sku']) && !isset($event['old_sku']) && $previous['old_sku'] !== $event['sku']) {
            $event['old_sku'] = $previous['old_sku'];
        }
        if (isset($event['old_sku']) && $event['old_sku'] === $event['sku']) {
            unset($event['old_sku']);
        }
        $this->events[$index] = $event;
    }

    /**
     * Tag the latest stock event of one of $productIds with an order cause. WooCommerce fires the
     * per-item order hook right after the stock hook of that item, so the latest matching event is it.
     *
     * @param int[] $productIds Candidate ids (variation, product, stock-managing parent).
     * @return bool Whether an event was found.
     */
    public function tagOrderItem(array $productIds, string $cause, int $orderId, float $delta): bool
    {
        for ($i = count($this->events) - 1; $i >= 0; $i--) {
            $event = $this->events[$i];
            if ($event['type'] !== 'stock.set' || !in_array($event['product_id'], $productIds, true)) {
                continue;
            }
            if (isset($event['order_id'])) {
                // Already tagged: an earlier item of the same product in this order.
                break;
            }
            $this->events[$i]['cause'] = $cause;
            $this->events[$i]['order_id'] = $orderId;
            $this->events[$i]['quantity_delta'] = $delta;
            return true;
        }
        return false;
    }

    private function reindexProducts(): void
    {
        $this->productIndex = [];
        foreach ($this->events as $index => $event) {
            if ($event['type'] === 'product.upsert' || $event['type'] === 'product.deleted') {
                $this->productIndex[(string) $event['product_id']] = $index;
            }
        }
    }

    /** @return array<int, array<string, mixed>> */
    public function all(): array
    {
        return $this->events;
    }

    public function isEmpty(): bool
    {
        return $this->events === [];
    }

    /** @return array<int, array<string, mixed>> The events, leaving the buffer empty. */
    public function drain(): array
    {
        $events = $this->events;
        $this->events = [];
        $this->productIndex = [];
        return $events;
    }
}
