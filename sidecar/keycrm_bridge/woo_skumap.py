"""WooCommerce SKU <-> product/variation id, kept in SQLite and refreshed incrementally.

Rows are keyed by product id, so a renamed SKU simply moves with its product (S16) and the old
SKU disappears from the map. Two sources keep it fresh:

* ``refresh(client)``: REST listing with ``modified_after``. The watermark is the newest
  ``date_modified`` the shop had *before* the scan started (read first, with one cheap request),
  minus an overlap: WordPress compares whole seconds and ``modified_after`` is exclusive, and a
  product saved while the scan pages past it must still be caught next time. Every save of a
  variation also saves its parent, so a changed variable product brings all its variations.
* ``apply_events(events)``: plugin events (product.upsert / stock.set / product.deleted), applied only
  when newer than what the row already reflects.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from .skumap_rows import (
    COLUMNS,
    SELECT_ROWS,
    UPSERT_EVENT_ROW,
    UPSERT_REST_ROW,
    event_row,
    last_stock_sets,
    row_from_rest,
)
from .store import enable_wal

TABLE = "woo_skus"
STATE_TABLE = "woo_skumap_state"
WATERMARK_KEY = "newest_modified_gmt"
class WooReader(Protocol):
    """The part of WooClient the map needs (tests may pass a fake)."""

    def newest_modified(self) -> float | None: ...

    def iter_products(self, modified_after: Any = None, per_page: int = 100) -> Iterator[dict[str, Any]]: ...

    def iter_variations(
        self, parent_id: int, modified_after: Any = None, per_page: int = 100
    ) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class SkuEntry:
    product_id: int
    parent_id: int
    sku: str
    type: str
    manage_stock: bool
    stock_quantity: float | None
    date_modified: str | None
    name: str
    status: str
    updated_at: float


@dataclass(frozen=True)
class RefreshReport:
    full: bool
    products: int
    variations: int
    removed: int
    watermark: float | None


def _entry(row: dict[str, Any]) -> SkuEntry:
    return SkuEntry(
        product_id=int(row["product_id"]),
        parent_id=int(row["parent_id"] or 0),
        sku=row["sku"] or "",
        type=row["type"] or "simple",
        manage_stock=bool(row["manage_stock"]),
        stock_quantity=row["stock_quantity"],
        date_modified=row["date_modified"],
        name=row["name"] or "",
        status=row["status"] or "",
        updated_at=float(row["updated_at"] or 0.0),
    )


class SkuMap:
    def __init__(self, db_path: str | Path, *, overlap_s: float = 2.0) -> None:
        self.overlap_s = overlap_s
        self._lock = threading.RLock()
        conn = sqlite3.connect(str(db_path), check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        enable_wal(conn)
        self.db.table(TABLE).create(
            {
                "product_id": int,
                "parent_id": int,
                "sku": str,
                "type": str,
                "manage_stock": int,
                "stock_quantity": float,
                "date_modified": str,
                "date_modified_ts": float,
                "name": str,
                "status": str,
                "updated_at": float,
            },
            pk="product_id",
            if_not_exists=True,
        )
        self.db.table(TABLE).create_index(["sku"], if_not_exists=True)
        self.db.table(TABLE).create_index(["parent_id"], if_not_exists=True)
        self.db.table(STATE_TABLE).create({"key": str, "value": str}, pk="key", if_not_exists=True)

    def close(self) -> None:
        self.db.conn.close()

    # -- state -------------------------------------------------------------------------------
    @property
    def watermark(self) -> float | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM woo_skumap_state WHERE key = ?", [WATERMARK_KEY]).fetchone()
            return float(row[0]) if row else None

    def _set_watermark(self, value: float | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM woo_skumap_state WHERE key = ?", [WATERMARK_KEY])
        else:
            self.db.execute(
                "INSERT INTO woo_skumap_state(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [WATERMARK_KEY, repr(value)],
            )

    # -- refresh from REST -------------------------------------------------------------------
    def refresh(self, client: WooReader, *, full: bool = False, flush_every: int = 500) -> RefreshReport:
        """Bring the map up to date; the first call (or ``full=True``) lists everything."""
        previous = self.watermark
        full = full or previous is None
        newest_before_scan = client.newest_modified()
        after = None if full or previous is None else previous - self.overlap_s
        seen: set[int] = set()
        pending: list[dict[str, Any]] = []
        replaced_children: dict[int, set[int]] = {}
        products = variations = 0
        for product in client.iter_products(modified_after=after):
            row = row_from_rest(product)
            pending.append(row)
            seen.add(row["product_id"])
            products += 1
            children: set[int] = set()
            if row["type"] == "variable":
                for variation in client.iter_variations(row["product_id"]):
                    vrow = row_from_rest(variation, parent_id=row["product_id"])
                    vrow["parent_id"] = row["product_id"]
                    vrow["type"] = "variation"
                    pending.append(vrow)
                    children.add(vrow["product_id"])
                    seen.add(vrow["product_id"])
                    variations += 1
            replaced_children[row["product_id"]] = children
            if len(pending) >= flush_every:
                self._write_rest_rows(pending, replaced_children)
                pending, replaced_children = [], {}
        self._write_rest_rows(pending, replaced_children)
        removed = 0
        with self._lock, self.db.conn:
            if full:
                existing = {r[0] for r in self.db.execute("SELECT product_id FROM woo_skus").fetchall()}
                gone = sorted(existing - seen)
                self.db.conn.executemany("DELETE FROM woo_skus WHERE product_id = ?", [[pid] for pid in gone])
                removed = len(gone)
            watermark = newest_before_scan if newest_before_scan is not None else previous
            self._set_watermark(watermark)
        return RefreshReport(full=full, products=products, variations=variations, removed=removed, watermark=watermark)

    def learn(self, client: Any, skus: list[str]) -> int:
        """Look ``skus`` up with the REST ``sku`` filter (a request per 50) and keep what is found: while
        the first full listing of a large shop runs in its own lane, a change to a few SKUs neither
        waits for it nor starts another one."""
        rows = [row_from_rest(p) for found in client.find_by_skus(skus).values() for p in found]
        self._write_rest_rows(rows, {})
        return len(rows)

    def _write_rest_rows(self, rows: list[dict[str, Any]], replaced_children: dict[int, set[int]]) -> None:
        if not rows and not replaced_children:
            return
        with self._lock, self.db.conn:
            self.db.conn.executemany(UPSERT_REST_ROW, [[row[c] for c in COLUMNS] for row in rows])
            for parent_id, children in replaced_children.items():
                # Variations that are no longer under this parent (deleted, or no longer variable).
                known = [
                    r[0]
                    for r in self.db.execute(
                        "SELECT product_id FROM woo_skus WHERE parent_id = ?", [parent_id]
                    ).fetchall()
                ]
                stale = [[pid] for pid in known if pid not in children]
                if stale:
                    self.db.conn.executemany("DELETE FROM woo_skus WHERE product_id = ?", stale)

    # -- plugin events -----------------------------------------------------------------------
    def apply_event(self, event: dict[str, Any]) -> bool:
        """Apply one plugin event; False when it is older than what the map holds."""
        return self.apply_events([event]) == 1

    def apply_events(self, events: Iterable[dict[str, Any]], conn: sqlite3.Connection | None = None) -> int:
        """Apply plugin events in order, in one transaction; returns how many changed the map.

        One commit (one fsync) for the whole claimed batch: a commit per event was most of the
        worker's time on a shop sending thousands of events a second. With ``conn`` (the store's, in
        a transaction of its caller: the intake's), no commit of its own: one commit for the events
        and the map."""
        events = last_stock_sets([e for e in events if e.get("product_id") is not None])
        if not events:
            return 0
        pids = sorted({int(e["product_id"]) for e in events})
        with self._lock:
            if conn is not None:
                return self._apply(events, pids, conn)
            with self.db.conn:
                return self._apply(events, pids, self.db.conn)

    def _apply(self, events: list[dict[str, Any]], pids: list[int], conn: sqlite3.Connection) -> int:
        applied = 0
        current: dict[int, dict[str, Any] | None] = {}
        for k in range(0, len(pids), 500):
            part = pids[k:k + 500]
            cur = conn.execute(SELECT_ROWS + f"product_id IN ({','.join('?' * len(part))})", part)
            current.update({int(r[0]): dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()})
        changed: dict[int, dict[str, Any]] = {}
        deleted: set[int] = set()
        for event in events:
            pid = int(event["product_id"])
            row = event_row(event, current.get(pid))
            if row is None:
                continue
            applied += 1
            if row.get("deleted"):
                # A deleted variable product takes its variations with it.
                gone = [pid] + [k for k, r in changed.items() if r["parent_id"] == pid]
                for k in gone:
                    current[k] = None
                    changed.pop(k, None)
                deleted.add(pid)
            else:
                current[pid] = changed[pid] = row
                deleted.discard(pid)
        if deleted:
            conn.executemany("DELETE FROM woo_skus WHERE product_id = ? OR parent_id = ?",
                             [(pid, pid) for pid in sorted(deleted)])
        conn.executemany(UPSERT_EVENT_ROW, [[row[c] for c in COLUMNS] for row in changed.values()])
        return applied

    def record_stock(self, product_id: int, quantity: float | None, at: float | None = None) -> None:
        """Remember a stock value the sidecar itself wrote.

        ``at`` orders it against plugin events and REST reads, so it must be on WooCommerce's clock:
        pass ``StockResult.date_modified``, not the sidecar's time (a sidecar clock ahead of the
        shop's would make the next real events look stale). Without ``at`` ordering is untouched.
        """
        with self._lock, self.db.conn:
            if at is None:
                self.db.execute("UPDATE woo_skus SET stock_quantity = ? WHERE product_id = ?", [quantity, product_id])
            else:
                self.db.execute(
                    "UPDATE woo_skus SET stock_quantity = ?, updated_at = max(updated_at, ?) WHERE product_id = ?",
                    [quantity, at, product_id],
                )

    # -- lookups -----------------------------------------------------------------------------
    def _select(self, where: str, params: Iterable[Any]) -> list[SkuEntry]:
        with self._lock:
            cursor = self.db.execute(SELECT_ROWS + where + " ORDER BY product_id", list(params))
            return [_entry(dict(zip(COLUMNS, r, strict=True))) for r in cursor.fetchall()]

    def by_sku(self, sku: str) -> list[SkuEntry]:
        """Every product with this exact SKU (more than one means a duplicate)."""
        return self._select("sku = ?", [sku])

    def get(self, sku: str) -> SkuEntry | None:
        """The one product with this SKU; None when unknown or duplicated."""
        found = self.by_sku(sku)
        return found[0] if len(found) == 1 else None

    def by_product_id(self, product_id: int) -> SkuEntry | None:
        found = self._select("product_id = ?", [product_id])
        return found[0] if found else None

    def variations_of(self, parent_id: int) -> list[SkuEntry]:
        return self._select("parent_id = ?", [parent_id])

    def entries(self) -> list[SkuEntry]:
        return self._select("1 = 1", [])

    def count(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT count(*) FROM woo_skus").fetchone()[0])

    def problems(self) -> list[dict[str, Any]]:
        """SKUs the bridge cannot match: duplicated, empty (on sellable items), or padded with spaces."""
        out: list[dict[str, Any]] = []
        with self._lock:
            for sku, ids in self.db.execute(
                "SELECT sku, group_concat(product_id) FROM woo_skus WHERE sku != '' "
                "GROUP BY sku HAVING count(*) > 1 ORDER BY sku"
            ).fetchall():
                out.append(
                    {
                        "kind": "duplicate_sku",
                        "sku": sku,
                        "product_ids": sorted(int(i) for i in str(ids).split(",")),
                    }
                )
            # A variable parent often has no SKU of its own; its variations carry the stock.
            for pid, ptype, name in self.db.execute(
                "SELECT product_id, type, name FROM woo_skus WHERE (sku IS NULL OR sku = '') "
                "AND type != 'variable' ORDER BY product_id"
            ).fetchall():
                out.append({"kind": "empty_sku", "product_id": pid, "type": ptype, "name": name})
            for pid, sku in self.db.execute(
                "SELECT product_id, sku FROM woo_skus WHERE sku != '' AND sku != trim(sku) ORDER BY product_id"
            ).fetchall():
                out.append({"kind": "sku_whitespace", "product_id": pid, "sku": sku})
        return out
