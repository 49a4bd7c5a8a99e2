<?php

/**
 * The plugin's own table of events the sidecar has not accepted yet.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Rows leave the table only when the sidecar's answer acknowledged exactly their batch, oldest (lowest id)
 * first, so the order per SKU that WooCommerce produced is the order of delivery. OutboxLimit keeps the
 * table under its cap.
 */
final class Outbox
{
    public static function table(): string
    {
        global $wpdb;
        return $wpdb->prefix . 'kcb_outbox';
    }

    public static function createTableSql(): string
    {
        global $wpdb;
        $table = self::table();
        $collate = $wpdb->get_charset_collate();
        // dbDelta wants two spaces after PRIMARY KEY and one column per line.
        return "CREATE TABLE {$table} (
  id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  event_id varchar(64) NOT NULL,
  sku varchar(191) NOT NULL DEFAULT '',
  occurred_at double NOT NULL,
  queued_at int(10) unsigned NOT NULL,
  attempts smallint(5) unsigned NOT NULL DEFAULT 0,
  dead tinyint(1) NOT NULL DEFAULT 0,
  last_error varchar(255) NOT NULL DEFAULT '',
  payload longtext NOT NULL,
  PRIMARY KEY  (id),
  UNIQUE KEY event_id (event_id),
  KEY dead_id (dead,id)
) {$collate};";
    }

    /**
     * Store events in one statement. INSERT IGNORE: an event already queued (same id) stays where it is.
     *
     * @param array<int, array<string, mixed>> $events
     */
    public static function add(array $events, string $error = ''): bool
    {
        // Chunks keep each statement far below MariaDB's max_allowed_packet, even with long descriptions.
        $ok = true;
        $admitted = OutboxLimit::admit(array_values($events));
        if ($admitted === []) {
            return $events === [];
        }
        foreach (array_chunk($admitted, 100) as $chunk) {
            $ok = self::insert($chunk, $error) && $ok;
        }
        return $ok;
    }

    /** @param array<int, array<string, mixed>> $events */
    private static function insert(array $events, string $error): bool
    {
        global $wpdb;
        if ($events === []) {
            return true;
        }
        $now = time();
        $rows = [];
        $values = [];
        foreach ($events as $event) {
            $rows[] = '(%s, %s, %f, %d, %d, %s, %s)';
            array_push(
                $values,
                (string) $event['id'],
                (string) $event['sku'],
                (float) $event['occurred_at'],
                $now,
                $error === '' ? 0 : 1,
                mb_substr($error, 0, 255),
                (string) wp_json_encode($event, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION)
            );
        }
        $table = self::table();
        $sql = "INSERT IGNORE INTO {$table} (event_id, sku, occurred_at, queued_at, attempts, last_error, payload) VALUES "
            . implode(', ', $rows);
        // phpcs:ignore -- placeholders are built above, one group per row.
        return $wpdb->query($wpdb->prepare($sql, $values)) !== false;
    }

    /**
     * Oldest pending rows, at most $limit, and together at most $maxBytes of payload.
     *
     * @return array<int, array{id: int, payload: string}>
     */
    public static function oldest(int $limit, int $maxBytes): array
    {
        global $wpdb;
        $table = self::table();
        $rows = $wpdb->get_results(
            $wpdb->prepare("SELECT id, payload FROM {$table} WHERE dead = 0 ORDER BY id ASC LIMIT %d", $limit),
            ARRAY_A
        );
        $picked = [];
        $bytes = 0;
        foreach ((array) $rows as $row) {
            $bytes += strlen((string) $row['payload']) + 1;
            if ($picked !== [] && $bytes > $maxBytes) {
                break;
            }
            $picked[] = ['id' => (int) $row['id'], 'payload' => (string) $row['payload']];
        }
        return $picked;
    }

    /** @param int[] $ids */
    public static function delete(array $ids): void
    {
        global $wpdb;
        if ($ids === []) {
            return;
        }
        $table = self::table();
        $list = implode(',', array_map('intval', $ids));
        // phpcs:ignore -- the list holds integers only.
        $wpdb->query("DELETE FROM {$table} WHERE id IN ({$list})");
    }

    /** @param int[] $ids */
    public static function markAttempt(array $ids, string $error, bool $dead = false): void
    {
        global $wpdb;
        if ($ids === []) {
            return;
        }
        $table = self::table();
        $list = implode(',', array_map('intval', $ids));
        // phpcs:ignore -- the list holds integers only.
        $wpdb->query($wpdb->prepare(
            "UPDATE {$table} SET attempts = LEAST(attempts + 1, 65535), last_error = %s, dead = %d WHERE id IN ({$list})",
            mb_substr($error, 0, 255),
            $dead ? 1 : 0
        ));
    }

    /** Put rows the sidecar refused as malformed back in line (after a fix on either side). */
    public static function reviveDead(): int
    {
        global $wpdb;
        $table = self::table();
        return (int) $wpdb->query("UPDATE {$table} SET dead = 0 WHERE dead = 1");
    }

    /**
     * @return array{pending: int, dead: int, oldest_queued_at: int, oldest_age_s: int, last_error: string}
     */
    public static function stats(): array
    {
        global $wpdb;
        $table = self::table();
        $row = $wpdb->get_row(
            "SELECT SUM(dead = 0) AS pending, SUM(dead = 1) AS dead, MIN(CASE WHEN dead = 0 THEN queued_at END) AS oldest "
            . "FROM {$table}",
            ARRAY_A
        );
        $lastError = (string) $wpdb->get_var("SELECT last_error FROM {$table} WHERE last_error <> '' ORDER BY id DESC LIMIT 1");
        $oldest = (int) ($row['oldest'] ?? 0);
        return [
            'pending' => (int) ($row['pending'] ?? 0),
            'dead' => (int) ($row['dead'] ?? 0),
            'oldest_queued_at' => $oldest,
            'oldest_age_s' => $oldest > 0 ? max(0, time() - $oldest) : 0,
            'last_error' => $lastError,
        ];
    }

    /** At least the number of rows (ids only grow; two index lookups, no scan). */
    public static function spanUpperBound(): int
    {
        global $wpdb;
        $table = self::table();
        $row = $wpdb->get_row("SELECT MIN(id) AS lo, MAX(id) AS hi FROM {$table}", ARRAY_A);
        return empty($row['hi']) ? 0 : (int) $row['hi'] - (int) $row['lo'] + 1;
    }

    public static function count(): int
    {
        global $wpdb;
        $table = self::table();
        return (int) $wpdb->get_var("SELECT COUNT(*) FROM {$table}");
    }

    public static function hasPending(): bool
    {
        global $wpdb;
        $table = self::table();
        return (bool) $wpdb->get_var("SELECT 1 FROM {$table} WHERE dead = 0 LIMIT 1");
    }
}
