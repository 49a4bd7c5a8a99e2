"""How long a change takes to reach the other side, and how stale the shop's KeyCRM values are.

``record`` adds the delays of the writes a sync round made to a histogram kept in the SQLite file
(table ``sync_latency``, one row per direction and bucket; migration 0006), so every web process
exports the same ``/metrics``: ``push`` from the shop's change (the plugin event's time) to KeyCRM's
2xx, ``pull`` from KeyCRM's change being seen (webhook, order read or sweep) to WooCommerce's answer
that the write was applied. It runs inside the transaction that records the round's values, so it
adds no commit to a round. ``pull_staleness`` is the age of the stalest KeyCRM value the shop shows:
for a SKU in agreement, since KeyCRM last confirmed it; for one waiting to be written (or held, or
waiting for the first-sync review), since the change was seen.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable

DIRECTIONS = ("push", "pull")
BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, math.inf)
_INF = 1e308  # +Inf as SQLite stores it in the ``le`` column


def record(conn: sqlite3.Connection, direction: str, delays: Iterable[float]) -> None:
    """Count delays (seconds; a negative one, from clocks apart, counts as 0) in the caller's transaction."""
    per_bucket: dict[float, int] = {}
    total, n = 0.0, 0
    for d in delays:
        v = max(0.0, float(d))
        le = next(b for b in BUCKETS if v <= b)
        per_bucket[le] = per_bucket.get(le, 0) + 1
        total, n = total + v, n + 1
    if not n:
        return
    per_bucket.setdefault(math.inf, 0)  # the row that holds the sum
    conn.executemany(
        "INSERT INTO sync_latency (direction, le, count, total) VALUES (?, ?, ?, 0) ON CONFLICT (direction, le)"
        " DO UPDATE SET count = count + excluded.count",
        [(direction, le if math.isfinite(le) else _INF, k) for le, k in per_bucket.items()])
    # The sum rides on the +Inf row, which every delay reaches.
    conn.execute("UPDATE sync_latency SET total = total + ? WHERE direction = ? AND le = ?", (total, direction, _INF))


def record_both(conn: sqlite3.Connection, push: Iterable[float], pull: Iterable[float]) -> None:
    record(conn, "push", push)
    record(conn, "pull", pull)


def histogram(conn: sqlite3.Connection, direction: str) -> tuple[list[tuple[str, float]], float]:
    """Cumulative ``[(le, count)]`` over every bucket, and the sum of the delays."""
    counts: dict[float, int] = {}
    total = 0.0
    for le, k, t in conn.execute("SELECT le, count, total FROM sync_latency WHERE direction = ?", (direction,)):
        counts[float(le)] = int(k)
        if float(le) >= _INF:
            total = float(t)
    out, running = [], 0
    for le in BUCKETS:
        running += counts.get(le if math.isfinite(le) else _INF, 0)
        out.append(("+Inf" if math.isinf(le) else f"{le:g}", float(running)))
    return out, total


def pull_staleness(conn: sqlite3.Connection, now: float) -> float | None:
    """Seconds; None when the ledger holds no KeyCRM value yet."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").fetchone():
        return None
    # KeyCRM confirms a value each time the mirror reads it (fetched_at), even when it did not change.
    row = conn.execute(
        "SELECT max(CASE WHEN l.dirty_since IS NOT NULL OR l.hold IS NOT NULL THEN ? - coalesce(l.dirty_since, l.kc_at)"
        " ELSE ? - coalesce(nullif(k.seen, 0), l.kc_at) END) FROM ledger l"
        " LEFT JOIN (SELECT sku, max(fetched_at) AS seen FROM keycrm_stock GROUP BY sku) k ON k.sku = l.sku"
        " WHERE l.kc_sellable IS NOT NULL AND l.kc_at IS NOT NULL", (now, now)).fetchone()
    return None if row is None or row[0] is None else max(0.0, float(row[0]))
