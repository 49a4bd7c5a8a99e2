<?php

/**
 * One line of an SKU's timeline ("why is this SKU at 3?") in the site's language.
 *
 * @package KeycrmBridge\Admin
 */

namespace KeycrmBridge\Admin;

defined('ABSPATH') || exit;

/**
 * The sidecar sends each timeline entry as an English sentence with its kind and values beside it
 * (`kind`, `args`; sidecar/keycrm_bridge/explain.py). The known kinds are worded here, so the panel
 * reads in the shop's language; an unknown kind (a newer sidecar) shows the sidecar's sentence.
 * The result is plain text: escape it where it is printed.
 */
final class Timeline
{
    /** @param array<string, mixed> $entry */
    public static function text(array $entry): string
    {
        $args = is_array($entry['args'] ?? null) ? $entry['args'] : [];
        $num = static fn(string $key): string => self::num($args[$key] ?? null);
        switch ((string) ($entry['kind'] ?? '')) {
            case 'woo':
                $line = sprintf(
                    /* translators: 1: the shop's stock, 2: what changed it. */
                    __('WooCommerce stock %1$s: %2$s', 'keycrm-bridge'),
                    $num('stock') . self::delta($args['delta'] ?? null),
                    self::wooCause((string) ($args['cause'] ?? 'manual'))
                );
                $order = $args['order_id'] ?? null;
                return is_scalar($order) && in_array($args['cause'] ?? '', ['order', 'order_restore'], true)
                    ? $line . ' #' . $order : $line;
            case 'keycrm':
                $was = isset($args['was']) && is_numeric($args['was']) ? $num('was') . ' → ' : '';
                return sprintf(
                    /* translators: 1: the new value (with the old one before an arrow), 2: where it was seen. */
                    __('KeyCRM sellable %1$s (from %2$s)', 'keycrm-bridge'),
                    $was . $num('sellable'),
                    self::keycrmSource((string) ($args['source'] ?? ''))
                );
            case 'order':
                /* translators: %s: the site order's number. */
                return sprintf(__('site order #%s: no longer held in flight', 'keycrm-bridge'), (string) ($args['order_id'] ?? '?'));
            case 'decision':
                return self::decision($args);
            case 'resync':
                return sprintf(
                    /* translators: 1: the shop's stock, 2: KeyCRM's sellable, 3: the value both sides now agree on. */
                    __('full resync: WooCommerce %1$s, KeyCRM %2$s, agreed %3$s', 'keycrm-bridge'),
                    $num('woo'),
                    $num('kc'),
                    $num('agreed')
                );
            case 'excluded':
                return empty($args['excluded'])
                    ? __('included in sync again', 'keycrm-bridge')
                    : __('excluded from sync in WooCommerce', 'keycrm-bridge');
        }
        return (string) ($entry['text'] ?? '');
    }

    /** @param array<string, mixed> $args */
    private static function decision(array $args): string
    {
        $writes = [];
        if (isset($args['woo_target']) && is_numeric($args['woo_target'])) {
            /* translators: %s: the value written. */
            $writes[] = sprintf(__('WooCommerce set to %s', 'keycrm-bridge'), self::num($args['woo_target']));
        }
        if (isset($args['kc_target']) && is_numeric($args['kc_target'])) {
            /* translators: %s: the value written. */
            $writes[] = sprintf(__('KeyCRM set to %s', 'keycrm-bridge'), self::num($args['kc_target']));
        }
        $what = $writes === [] ? __('nothing to write', 'keycrm-bridge') : implode(', ', $writes);
        $line = sprintf(
            /* translators: 1: the shop's stock, 2: KeyCRM's sellable, 3: what was written. */
            __('decided (WooCommerce %1$s, KeyCRM %2$s): %3$s', 'keycrm-bridge'),
            self::num($args['woo'] ?? null),
            self::num($args['kc'] ?? null),
            $what
        );
        $reason = Reasons::text($args);
        return $reason === '' ? $line : $line . ' — ' . $reason;
    }

    private static function wooCause(string $cause): string
    {
        $words = [
            'manual' => __('edited in WooCommerce', 'keycrm-bridge'),
            'rest' => __('changed through the REST API', 'keycrm-bridge'),
            'import' => __('set by an import', 'keycrm-bridge'),
            'order' => __('a site order', 'keycrm-bridge'),
            'order_restore' => __('a site order cancelled or refunded', 'keycrm-bridge'),
            'sidecar' => __("the bridge's own write, seen back", 'keycrm-bridge'),
        ];
        return $words[$cause] ?? $cause;
    }

    private static function keycrmSource(string $source): string
    {
        $words = [
            'webhook' => __("KeyCRM's stock webhook", 'keycrm-bridge'),
            'sweep' => __('the regular check of KeyCRM', 'keycrm-bridge'),
            'read' => __('a read', 'keycrm-bridge'),
            'read-before-write' => __('a read before writing', 'keycrm-bridge'),
            'order' => __('a read after a KeyCRM order', 'keycrm-bridge'),
            'resync' => __('the full resync', 'keycrm-bridge'),
        ];
        return $words[$source] ?? ($source === '' ? 'KeyCRM' : $source);
    }

    /** @param mixed $delta */
    private static function delta($delta): string
    {
        if (!is_numeric($delta) || (float) $delta === 0.0) {
            return '';
        }
        return ' (' . ((float) $delta > 0 ? '+' : '') . self::num($delta) . ')';
    }

    /** @param mixed $value */
    private static function num($value): string
    {
        if (!is_numeric($value)) {
            return __('unknown', 'keycrm-bridge');
        }
        $f = (float) $value;
        return floor($f) === $f ? (string) (int) $f : (string) $f;
    }
}
