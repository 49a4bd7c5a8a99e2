<?php

/**
 * POST /wp-json/keycrm-bridge/v1/stock: the sidecar's conditional stock writes.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * The sidecar decides a product's stock from the value it last saw; a sale that lands between that
 * decision and the write must survive it. So each item says what it expects the shop to show and what
 * to set: under a row lock on the product's `_stock`, the value is set only where the shop still shows
 * the expected one, otherwise the answer names the current value and nothing is written (the sidecar
 * then decides again). A checkout that decrements meanwhile waits for the lock and applies its
 * decrement to the new value, so it is never lost either way. The write itself is WooCommerce's own
 * wc_update_product_stock(), so every hook, cache and lookup table behaves as for any stock edit; the
 * hooks it fires are tagged `sidecar`. Signed with the shared secret like the plugin's own calls.
 */
final class StockRoute
{
    public const NAMESPACE = 'keycrm-bridge/v1';
    public const ROUTE = '/stock';
    public const MAX_ITEMS = 100;

    public const APPLIED = 'applied';
    public const CONFLICT = 'conflict';
    public const FAILED = 'error';

    public function __construct(private RequestContext $context)
    {
    }

    public function register(): void
    {
        register_rest_route(self::NAMESPACE, self::ROUTE, [
            'methods' => 'POST',
            'callback' => [$this, 'handle'],
            'permission_callback' => [$this, 'authorize'],
        ]);
    }

    /** @return true|\WP_Error */
    public function authorize(\WP_REST_Request $request)
    {
        // Signed over the REST route as WordPress routes on it (whatever the site's URL layout or
        // permalink form), with the shared Signer's rule; the query is not part of this route.
        $problem = Signer::verify(
            Settings::secret(),
            $request->get_method(),
            $request->get_route(),
            '',
            (string) $request->get_header('x_bridge_timestamp'),
            (string) $request->get_header('x_bridge_signature'),
            (string) $request->get_body()
        );
        return $problem === null ? true : new \WP_Error('kcb_unauthorized', $problem, ['status' => 401]);
    }

    /** @return \WP_REST_Response|\WP_Error */
    public function handle(\WP_REST_Request $request)
    {
        $body = json_decode((string) $request->get_body(), true);
        $items = is_array($body) && isset($body['items']) && is_array($body['items']) ? $body['items'] : null;
        if ($items === null || !array_is_list($items) || count($items) > self::MAX_ITEMS) {
            return new \WP_Error('kcb_bad_request', 'expected {"items": [...]} with at most ' . self::MAX_ITEMS . ' items', ['status' => 400]);
        }
        $this->context->markSidecar();
        $answers = [];
        foreach ($items as $item) {
            $answers[] = $this->applyOne(is_array($item) ? $item : []);
        }
        return new \WP_REST_Response(['items' => $answers], 200);
    }

    /**
     * @param array<string, mixed> $item {product_id or sku, expect: number|null, set: number}
     * @return array<string, mixed>
     */
    private function applyOne(array $item): array
    {
        global $wpdb;
        $answer = array_intersect_key($item, ['product_id' => 1, 'sku' => 1]);
        $set = $item['set'] ?? null;
        $expect = $item['expect'] ?? null;
        if (!self::isQuantity($set) || ($expect !== null && !self::isQuantity($expect, true))) {
            return $answer + ['status' => self::FAILED, 'error' => 'set must be a number >= 0, expect a number or null'];
        }
        $product = $this->product($item);
        if ($product === null) {
            return $answer + ['status' => self::FAILED, 'error' => 'not_found'];
        }
        if (!$product->managing_stock()) {
            return $answer + ['status' => self::FAILED, 'error' => 'stock_not_managed'];
        }
        $ownerId = (int) $product->get_stock_managed_by_id();
        $answer['product_id'] = (int) $product->get_id();
        $wpdb->query('START TRANSACTION');
        try {
            // The row lock: a concurrent checkout's `_stock = _stock - n` waits until we commit.
            $raw = $wpdb->get_var($wpdb->prepare(
                "SELECT meta_value FROM {$wpdb->postmeta} WHERE post_id = %d AND meta_key = '_stock' LIMIT 1 FOR UPDATE",
                $ownerId
            ));
            $current = $raw === null || $raw === '' ? null : wc_stock_amount($raw);
            if ($current === null || $expect === null || (float) $current !== (float) $expect) {
                $wpdb->query('ROLLBACK');
                return $answer + ['status' => self::CONFLICT, 'stock_quantity' => $current];
            }
            $written = (float) $current === (float) $set ? $current : wc_update_product_stock($product, $set, 'set');
            $wpdb->query('COMMIT');
        } catch (\Throwable $error) {
            $wpdb->query('ROLLBACK');
            return $answer + ['status' => self::FAILED, 'error' => 'write failed: ' . $error->getMessage()];
        }
        // WooCommerce's clock: the sidecar orders later events of this product against it.
        $modified = (string) get_post_field('post_modified_gmt', $ownerId, 'raw');
        return $answer + [
            'status' => self::APPLIED,
            'stock_quantity' => $written,
            'date_modified_gmt' => $modified === '' ? null : str_replace(' ', 'T', $modified),
        ];
    }

    /** @param array<string, mixed> $item */
    private function product(array $item): ?object
    {
        $id = isset($item['product_id']) && is_int($item['product_id']) ? $item['product_id'] : 0;
        if ($id <= 0 && isset($item['sku']) && is_string($item['sku']) && $item['sku'] !== '') {
            $id = (int) wc_get_product_id_by_sku($item['sku']);
        }
        $product = $id > 0 ? wc_get_product($id) : null;
        return is_object($product) ? $product : null;
    }

    /** @param mixed $value */
    private static function isQuantity($value, bool $negativeOk = false): bool
    {
        return (is_int($value) || (is_float($value) && is_finite($value)))
            && ($negativeOk || $value >= 0) && abs($value) < 1e12;
    }
}
