"""How long a change takes to reach the other side, and how stale the shop's KeyCRM values are.

``record`` adds the delays of the writes a sync round made to a histogram kept in the SQLite file
(one row per direction and bucket), so every web process exports the same ``/metrics``:
``push`` from the shop's change reaching the bridge to KeyCRM's answer, ``pull`` from KeyCRM's value
being seen to WooCommerce's answer. ``pull_staleness`` is the age of the stalest KeyCRM value the
shop shows: for a SKU in agreement, since KeyCRM last confirmed it; for one waiting to be written
(or held, or waiting for the first-sync review), since the change was seen.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable

BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, math.inf)
SCHEMA = ("CREATE TABLE IF NOT EXISTS sync_latency (direction TEXT NOT NULL, le REAL NOT NULL,"
          " count INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (direction, le))")
SUM_SCHEMA = ("CREATE TABLE IF NOT EXISTS sync_latency_sum (direction TEXT PRIMARY KEY,"
              " total REAL NOT NULL DEFAULT 0, count INTEGER NOT NULL DEFAULT 0)")


def record(conn: sqlite3.Connection, direction: str, delays: Iterable[float]) -> None:
    values = [max(0.0, float(d)) for d in delays]
    if not values:
        return
    conn.execute(SCHEMA)
    conn.execute(SUM_SCHEMA)
    per_bucket: dict[float, int] = {}
    for v in values:
        le = next(b for b in BUCKETS if v <= b)
        per_bucket[le] = per_bucket.get(le, 0) + 1
    conn.executemany("INSERT INTO sync_latency (direction, le, count) VALUES (?, ?, ?) ON CONFLICT (direction, le)"
                     " DO UPDATE SET count = count + excluded.count",
                     [(direction, le if math.isfinite(le) else 1e308, n) for le, n in per_bucket.items()])
    conn.execute("INSERT INTO sync_latency_sum (direction, total, count) VALUES (?, ?, ?) ON CONFLICT (direction)"
                 " DO UPDATE SET total = total + excluded.total, count = count + excluded.count",
                 (direction, sum(values), len(values)))


def histogram(conn: sqlite3.Connection, direction: str) -> tuple[list[tuple[str, float]], float]:
    """Cumulative ``[(le, count)]`` over every bucket, and the sum of the delays."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_latency'").fetchone()
    counts: dict[float, int] = {}
    total = 0.0
    if exists:
        counts = {float(le): int(n) for le, n in conn.execute(
            "SELECT le, count FROM sync_latency WHERE direction = ?", (direction,))}
        row = conn.execute("SELECT total FROM sync_latency_sum WHERE direction = ?", (direction,)).fetchone()
        total = float(row[0]) if row else 0.0
    out, running = [], 0
    for le in BUCKETS:
        running += counts.get(le if math.isfinite(le) else 1e308, 0)
        out.append(("+Inf" if math.isinf(le) else f"{le:g}", float(running)))
    return out, total


def pull_staleness(conn: sqlite3.Connection, now: float) -> float | None:
    """Seconds; None when the ledger holds no KeyCRM value yet."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").fetchone():
        return None
    row = conn.execute(
        "SELECT max(CASE WHEN dirty_since IS NOT NULL OR hold IS NOT NULL THEN ? - coalesce(dirty_since, kc_at)"
        " ELSE ? - kc_at END) FROM ledger WHERE kc_sellable IS NOT NULL AND kc_at IS NOT NULL", (now, now)).fetchone()
    return None if row is None or row[0] is None else max(0.0, float(row[0]))
