"""How stale the shop's KeyCRM values are, for the pull lag of ``/metrics``.

``pull_staleness`` is the age of the stalest KeyCRM value the shop shows: for a SKU in agreement,
since KeyCRM last confirmed it; for one waiting to be written (or held, or waiting for the
first-sync review), since the change was seen.
"""

from __future__ import annotations

import sqlite3


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
