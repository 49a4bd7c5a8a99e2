"""Products the owner switched off in WooCommerce ("don't sync this product"), per SKU.

The plugin sends a ``product.exclude`` event when the switch changes; the newest one per SKU wins,
recorded in the intake's transaction. An excluded SKU is still read on both sides (its ledger,
mirror and timeline stay current) but nothing is written for it, by the live sync, the sweep's
decisions, product-field pushes or a full resync. Switched back on, it is decided again at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from .store import chunks, marks

EVENT_TYPE = "product.exclude"
# What the resync plan, the round log and the timeline say about such a SKU.
REASON = "excluded from sync in WooCommerce (the product's \"Don't sync this product\" switch)"


def apply_events(c: sqlite3.Connection, events: Iterable[dict[str, Any]], now: float) -> None:
    """Record the switch of each ``product.exclude`` event (inside the caller's transaction)."""
    from .ledger import Ledger

    events = list(events)
    for ev in events:
        old = ev.get("old_sku") if ev["type"] == "product.upsert" else None
        if old and old != ev["sku"]:
            # A renamed product keeps its switch: it follows the new SKU (unless that one has its own).
            c.execute("UPDATE OR IGNORE sync_exclusions SET sku = ? WHERE sku = ? AND product_id = ?",
                      (ev["sku"], old, ev["product_id"]))
    for ev in sorted((e for e in events if e["type"] == EVENT_TYPE), key=lambda e: (e["occurred_at"], e["id"])):
        sku, excluded = ev["sku"], bool(ev["excluded"])
        if not sku.strip():
            continue
        prev = c.execute("SELECT excluded, occurred_at FROM sync_exclusions WHERE sku = ?", (sku,)).fetchone()
        if prev is not None and prev["occurred_at"] > ev["occurred_at"]:
            continue  # a late resend of an older switch
        c.execute("INSERT INTO sync_exclusions (sku, product_id, excluded, occurred_at, changed_at)"
                  " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE SET product_id = excluded.product_id,"
                  " excluded = excluded.excluded, occurred_at = excluded.occurred_at,"
                  " changed_at = CASE WHEN sync_exclusions.excluded = excluded.excluded"
                  " THEN sync_exclusions.changed_at ELSE excluded.changed_at END",
                  (sku, ev["product_id"], int(excluded), ev["occurred_at"], now))
        if prev is not None and bool(prev["excluded"]) == excluded:
            continue
        Ledger.note_in(c, sku, now, "excluded", {"excluded": excluded})
        if not excluded:
            # Switched back on: decide it now with what both sides show, as after any change.
            Ledger.dirty_in(c, [sku], now)


def excluded_among(conn: sqlite3.Connection, skus: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for part in chunks(list(skus)):
        out.update(r[0] for r in conn.execute(
            f"SELECT sku FROM sync_exclusions WHERE excluded = 1 AND sku IN ({marks(part)})", part))
    return out


def listing(conn: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The excluded SKUs, newest switch first: ``sku``, ``product_id``, ``since``."""
    return [{"sku": r[0], "product_id": r[1], "since": r[2]} for r in conn.execute(
        "SELECT sku, product_id, changed_at FROM sync_exclusions WHERE excluded = 1"
        " ORDER BY changed_at DESC, sku LIMIT ?", (limit,))]


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM sync_exclusions WHERE excluded = 1").fetchone()[0])
