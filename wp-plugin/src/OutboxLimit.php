<?php

/**
 * The outbox's cap, and the warnings before it is reached.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * From WARN_SHARE of the cap on, every admin page shows a notice and the WooCommerce log has an entry;
 * at the cap, new events are refused (never older ones: the order per SKU holds), each refusal is logged
 * with its SKUs and counted in the notice, which then asks for a Full resync once the sidecar is back.
 */
final class OutboxLimit
{
    public const DEFAULT_CAP = 100000;
    public const MIN_CAP = 100;
    public const WARN_SHARE = 0.8;

    public static function cap(): int
    {
        $cap = (int) apply_filters('kcb_outbox_cap', (int) get_option(Settings::OUTBOX_CAP, self::DEFAULT_CAP));
        return max(self::MIN_CAP, $cap > 0 ? $cap : self::DEFAULT_CAP);
    }

    public static function warnAt(): int
    {
        return (int) floor(self::cap() * self::WARN_SHARE);
    }

    /**
     * How many of $incoming new events may be stored now; records the warning or the refusal.
     *
     * @param array<int, array<string, mixed>> $events
     * @return array<int, array<string, mixed>> The events that may be stored (the oldest first).
     */
    public static function admit(array $events): array
    {
        $incoming = count($events);
        $warnAt = self::warnAt();
        if ($incoming === 0 || Outbox::spanUpperBound() + $incoming < $warnAt) {
            return $events; // the usual case: two index lookups, no count
        }
        $cap = self::cap();
        $rows = Outbox::count();
        $room = max(0, $cap - $rows);
        $kept = array_slice($events, 0, $room);
        $refused = array_slice($events, $room);
        $alert = self::alert();
        $after = $rows + count($kept);
        if ($refused !== []) {
            $alert['dropped'] += count($refused);
            Log::error(
                sprintf('KeyCRM Bridge outbox is full (%d of %d events): %d new events were not kept; run a Full resync once the sidecar is back.', $rows, $cap, count($refused)),
                ['skus' => array_slice(array_values(array_unique(array_column($refused, 'sku'))), 0, 20)]
            );
        } elseif ($after >= $warnAt && $alert['rows'] < $warnAt) {
            Log::warning(sprintf(
                'KeyCRM Bridge outbox holds %d of at most %d events: the sidecar has not accepted events since %s.',
                $after,
                $cap,
                gmdate('Y-m-d H:i:s', (int) (Outbox::stats()['oldest_queued_at'] ?: time())) . ' UTC'
            ));
        }
        if ($after >= $warnAt || $refused !== []) {
            $alert['rows'] = $after;
            $alert['cap'] = $cap;
            $alert['at'] = time();
            update_option(Settings::OUTBOX_ALERT, $alert, true);
        }
        return $kept;
    }

    /** The outbox emptied: the "nearly full" part of the alert is over (a refusal stays until a resync). */
    public static function drained(): void
    {
        $alert = self::alert();
        if ($alert['rows'] === 0) {
            return;
        }
        if ($alert['dropped'] > 0) {
            $alert['rows'] = 0;
            update_option(Settings::OUTBOX_ALERT, $alert, true);
            return;
        }
        delete_option(Settings::OUTBOX_ALERT);
    }

    /** A Full resync started: whatever the refused events said, it is read again from the shop. */
    public static function resyncStarted(): void
    {
        $alert = self::alert();
        if ($alert['dropped'] > 0) {
            $alert['dropped'] = 0;
            if ($alert['rows'] === 0) {
                delete_option(Settings::OUTBOX_ALERT);
                return;
            }
            update_option(Settings::OUTBOX_ALERT, $alert, true);
        }
    }

    /** @return array{rows: int, cap: int, at: int, dropped: int} */
    public static function alert(): array
    {
        $alert = get_option(Settings::OUTBOX_ALERT, []);
        $alert = is_array($alert) ? $alert : [];
        return [
            'rows' => (int) ($alert['rows'] ?? 0),
            'cap' => (int) ($alert['cap'] ?? 0),
            'at' => (int) ($alert['at'] ?? 0),
            'dropped' => (int) ($alert['dropped'] ?? 0),
        ];
    }
}
