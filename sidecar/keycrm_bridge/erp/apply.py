"""The ERP's stock into KeyCRM: per-warehouse sums, only rows that differ, as few PUTs as allowed.

ERP on-hand per ERP warehouse sums into the mapped KeyCRM warehouse's ``quantity`` (KeyCRM keeps
its reserve). A row is written only when it differs from what KeyCRM has — the mirror the sweep
and reads keep, or, for an offer the mirror has not seen, what the bridge wrote last — so a second
identical package writes nothing. Rows go out as one ``PUT /offers/stocks`` per KeyCRM warehouse
and 10,000 rows (the client splits). Afterwards the ledger learns KeyCRM's new sellable, which is
what makes WooCommerce follow through the ordinary sync round, exactly as in ``keycrm`` mode.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from typing import Any

from .. import approval
from ..clock import Clock
from ..config import Settings
from ..decide import json_number
from ..ledger import Ledger
from ..push import known_offers
from ..store import Store, chunks, marks
from .aside import ErpAside
from .create import create_missing
from .settings import ErpSettings

log = logging.getLogger("keycrm_bridge.erp")

SLICE = 5000              # SKUs compared at a time
PUT_ROWS = 10_000         # rows of one PUT /offers/stocks (KeyCRM's maximum)
READS_PER_TICK = 500      # unknown SKUs looked up in KeyCRM per round (≤ 50 a request)
CREATES_PER_TICK = 10     # POST /products is one request per product
NAMES_PER_TICK = 10       # PUT /products/{id} is one request per product


class Applier:
    def __init__(self, store: Store, ledger: Ledger, keycrm: Any, sync: Any, settings: Settings, clock: Clock,
                 source: str) -> None:
        assert settings.erp is not None
        self.store, self.conn, self.ledger, self.keycrm, self.sync = store, store.conn, ledger, keycrm, sync
        self.settings, self.erp, self.clock, self.source = settings, settings.erp, clock, source
        self.aside = ErpAside(store, source, clock)

    # -- the ERP's truth ---------------------------------------------------------------------------

    def stock_from_stage(self, job_id: int, exchange_id: int, merge: bool = False) -> list[str]:
        """Take the package's stock as the ERP's; returns the SKUs it lists.

        An item a 1C package lists carries all its warehouses (one left out holds nothing), so its
        rows replace the SKU's. A MoySklad delta lists only the (item, store) pairs that changed:
        ``merge`` replaces just those.
        """
        now = self.clock.now()
        skus = [r[0] for r in self.conn.execute(
            "SELECT DISTINCT sku FROM erp_stage WHERE job_id = ? AND erp_warehouse IS NOT NULL", (job_id,))]
        with self.store.transaction() as c:
            if merge:
                c.execute("DELETE FROM erp_stock WHERE source = ? AND (sku, erp_warehouse) IN (SELECT sku,"
                          " erp_warehouse FROM erp_stage WHERE job_id = ?)", (self.source, job_id))
                c.execute("DELETE FROM erp_stock WHERE source = ? AND erp_warehouse = '*zeroed*' AND sku IN"
                          " (SELECT sku FROM erp_stage WHERE job_id = ?)", (self.source, job_id))
            for part in chunks(skus) if not merge else ():
                c.execute(f"DELETE FROM erp_stock WHERE source = ? AND sku IN ({marks(part)})", (self.source, *part))
            c.execute("INSERT INTO erp_stock (sku, erp_warehouse, quantity, source, job_id, exchange_id, at)"
                      " SELECT sku, erp_warehouse, sum(quantity), ?, ?, ?, ? FROM erp_stage"
                      " WHERE job_id = ? AND erp_warehouse IS NOT NULL GROUP BY sku, erp_warehouse",
                      (self.source, job_id, exchange_id, now, job_id))
        return skus

    def fields_from_stage(self, job_id: int) -> int:
        """Remember the product data the ERP wants in KeyCRM (sent by ``send_fields``)."""
        if not self.erp.product_fields:
            return 0
        now = self.clock.now()
        rows = []
        for sku, guid, name, price in self.conn.execute(
                "SELECT sku, min(guid), max(name), max(price) FROM erp_stage WHERE job_id = ? GROUP BY sku", (job_id,)):
            wanted = {}
            if "price" in self.erp.product_fields and price is not None:
                wanted["price"] = json_number(price)
            if "name" in self.erp.product_fields and name and "#" not in guid:
                wanted["name"] = name  # a variant's name belongs to its product
            if wanted:
                rows.append((sku, guid, fields_json(wanted), now))
        self.conn.executemany("INSERT INTO erp_fields (sku, guid, wanted, at) VALUES (?, ?, ?, ?)"
                              " ON CONFLICT (sku) DO UPDATE SET guid = excluded.guid, wanted = excluded.wanted,"
                              " at = excluded.at", rows)
        return len(rows)

    def missing_of_full(self, exchange_id: int) -> list[str]:
        """SKUs the ERP had before that a full package (every file of it) did not list."""
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT sku FROM erp_stock WHERE source = ? AND (exchange_id IS NULL OR exchange_id != ?)"
            " AND sku NOT IN (SELECT sku FROM erp_stock WHERE source = ? AND exchange_id = ?) ORDER BY sku",
            (self.source, exchange_id, self.source, exchange_id))]

    def zero(self, skus: list[str], exchange_id: int) -> None:
        now = self.clock.now()
        with self.store.transaction() as c:
            for part in chunks(skus):
                c.execute(f"DELETE FROM erp_stock WHERE source = ? AND sku IN ({marks(part)})", (self.source, *part))
            c.executemany("INSERT INTO erp_stock (sku, erp_warehouse, quantity, source, exchange_id, at)"
                          " VALUES (?, '*zeroed*', 0, ?, ?, ?)", [(s, self.source, exchange_id, now) for s in skus])

    # -- into KeyCRM -----------------------------------------------------------------------------

    def targets(self, skus: list[str]) -> tuple[dict[str, dict[int, float]], Counter[str]]:
        """sku -> KeyCRM warehouse -> quantity the ERP says; and rows of unmapped ERP warehouses."""
        default = self.settings.write_warehouse_id
        kc_whs = self.erp.keycrm_warehouses(default)
        out: dict[str, dict[int, float]] = {s: dict.fromkeys(kc_whs, 0.0) for s in skus}
        unmapped: Counter[str] = Counter()
        for part in chunks(skus):
            for sku, wh, qty in self.conn.execute(
                    f"SELECT sku, erp_warehouse, quantity FROM erp_stock WHERE source = ? AND sku IN ({marks(part)})",
                    (self.source, *part)):
                if wh == "*zeroed*":
                    continue
                kc = self.erp.keycrm_warehouse(wh, default)
                if kc is None:
                    unmapped[wh] += 1
                    continue
                out[sku][kc] += float(qty)
        for per in out.values():
            for kc, q in per.items():
                per[kc] = max(0.0, q)  # an ERP may run negative; KeyCRM's on-hand cannot
        return out, unmapped

    def apply(self, skus: list[str]) -> dict[str, Any]:
        """Write what differs; returns the report (rows written, unchanged, PUTs, unmapped warehouses).

        SKUs are compared a slice at a time and rows leave in PUTs of 10,000 per warehouse, so a
        100,000-offer package needs no more memory than a 10,000-offer one."""
        out: dict[str, Any] = {"rows_written": 0, "rows_unchanged": 0, "puts": 0, "skus_written": 0}
        if not self.writing():
            # Nothing is written before the owner reviewed the first comparison (approval.py): the
            # ERP's figures are kept and go out, all of them, once the review is applied.
            waiting = sum(len(rows) for start in range(0, len(skus), SLICE)
                          for rows in self.diff(skus[start:start + SLICE])[0].values())
            self.store.set_meta("erp_review_pending", True)
            return {**out, "rows_waiting_for_review": waiting}
        unmapped: Counter[str] = Counter()
        buffers: dict[int, list[tuple[str, float, float | None]]] = defaultdict(list)
        for start in range(0, len(skus), SLICE):
            part = skus[start:start + SLICE]
            rows, unchanged, unmapped_part = self.diff(part)
            out["rows_unchanged"] += unchanged
            unmapped.update(unmapped_part)
            for kc, items in rows.items():
                buffers[kc] += items
                while len(buffers[kc]) >= PUT_ROWS:  # full PUTs only; the rest waits for the next slice
                    self._put(kc, buffers[kc][:PUT_ROWS], out)
                    buffers[kc] = buffers[kc][PUT_ROWS:]
        for kc in sorted(buffers):
            self._put(kc, buffers[kc], out)
        if out["rows_written"]:
            self.store.set_meta("last_keycrm_success_at", self.clock.now())
        out["unmapped_warehouses"] = dict(unmapped)
        return out

    def writing(self) -> bool:
        return approval.approved(self.store, self.settings)

    def after_review(self) -> int:
        """The first comparison was applied: write everything the ERP said while we waited."""
        if not self.store.get_meta("erp_review_pending") or not self.writing():
            return 0
        skus = [r[0] for r in self.conn.execute("SELECT DISTINCT sku FROM erp_stock WHERE source = ?", (self.source,))]
        self.store.set_meta("erp_review_pending", False)
        return int(self.apply(skus)["rows_written"])

    def diff(self, skus: list[str]) -> tuple[dict[int, list[tuple[str, float, float | None]]], int, Counter[str]]:
        """Rows that differ, per KeyCRM warehouse: (sku, quantity, reserve in the mirror or None: unknown)."""
        targets, unmapped = self.targets(skus)
        mirror = self.store.keycrm_stock(skus)
        applied: dict[tuple[str, int], tuple[float, float]] = {}
        for part in chunks(skus):
            for sku, wh, q, at in self.conn.execute(
                    f"SELECT sku, warehouse_id, quantity, at FROM erp_applied WHERE sku IN ({marks(part)})", part):
                applied[(sku, wh)] = (q, at)
        rows: dict[int, list[tuple[str, float, float | None]]] = defaultdict(list)
        unchanged = 0
        for sku, per in targets.items():
            known = mirror.get(sku)
            for kc, target in per.items():
                m = (known or {}).get(kc)
                a = applied.get((sku, kc))
                if m is not None and (a is None or m["fetched_at"] >= a[1]):
                    have: float | None = m["quantity"]
                else:
                    have = a[0] if a is not None else None
                if (have is not None and float(have) == target) or (have is None and target == 0 and not known):
                    unchanged += 1  # equal, or nothing known and nothing on hand (writing 0 is only noise)
                    continue
                rows[kc].append((sku, target, float((m or {}).get("reserve", 0.0)) if known else None))
        return rows, unchanged, unmapped

    def _put(self, kc: int, items: list[tuple[str, float, float | None]], out: dict[str, Any]) -> None:
        if not items:
            return
        for start in range(0, len(items), PUT_ROWS):
            batch = items[start:start + PUT_ROWS]
            self.keycrm.put_stocks(kc, [{"sku": s, "quantity": json_number(q)} for s, q, _ in batch])
            out["puts"] += 1
            self._after_put(kc, batch)
            out["rows_written"] += len(batch)
            out["skus_written"] += len(batch)
        log.info("ERP stock written to KeyCRM", extra={"rows": len(items), "warehouse_id": kc,
                                                       "skus": [s for s, _, _ in items[:20]], "source": self.source})

    def _after_put(self, kc: int, batch: list[tuple[str, float, float | None]]) -> None:
        now = self.clock.now()
        with self.store.transaction() as c:  # one commit, not one per row
            c.executemany(
                "INSERT INTO erp_applied (sku, warehouse_id, quantity, at) VALUES (?, ?, ?, ?) ON CONFLICT"
                " (sku, warehouse_id) DO UPDATE SET quantity = excluded.quantity, at = excluded.at",
                [(s, kc, q, now) for s, q, _ in batch])
            c.executemany("INSERT OR IGNORE INTO erp_to_read (sku, at) VALUES (?, ?)",
                          [(s, now) for s, _, r in batch if r is None])
        known = [(s, kc, None, q, r) for s, q, r in batch if r is not None]
        self.store.save_keycrm_stock(known, now)
        if known:
            skus = [k[0] for k in known]
            fresh = self.store.keycrm_stock(skus)
            # KeyCRM's new sellable is what makes WooCommerce follow (the keycrm-mode sync round).
            self.ledger.observe_keycrm({s: self.sync.sellable_of(fresh[s]) for s in skus}, now, f"erp:{self.source}")

    def restore_drift(self, source: str) -> int:
        """KeyCRM's on-hand changed after our write (an edit there, seen by the sweep): the ERP's
        figure is the truth, so it is written again. Only SKUs the ERP still has."""
        skus = [r[0] for r in self.conn.execute(
            "SELECT DISTINCT a.sku FROM erp_applied a JOIN keycrm_stock k ON k.sku = a.sku AND"
            " k.warehouse_id = a.warehouse_id WHERE k.fetched_at > a.at AND k.quantity != a.quantity"
            " AND a.sku IN (SELECT sku FROM erp_stock WHERE source = ?) LIMIT 10000", (source,))]
        if not skus:
            return 0
        log.info("KeyCRM on-hand differs from the ERP's; writing it again", extra={"skus": skus[:20]})
        return int(self.apply(skus)["rows_written"])

    # -- follow-ups, a little each round ---------------------------------------------------------

    def read_unknown(self) -> int:
        """Look up SKUs KeyCRM's mirror did not know; those KeyCRM lacks are listed (and created)."""
        skus = [r[0] for r in self.conn.execute("SELECT sku FROM erp_to_read ORDER BY at LIMIT ?", (READS_PER_TICK,))]
        if not skus:
            return 0
        found = self.sync.read_stock(skus, source=f"erp:{self.source}")
        lacking = [s for s in skus if s not in found]
        now = self.clock.now()
        if lacking:
            reason = "KeyCRM has no offer with this SKU" + ("" if self.erp.create_missing else
                                                            " (ERP_CREATE_MISSING=true creates it)")
            self.aside.add([(f"keycrm:{s}", s, reason, None) for s in lacking], None)
            for s in lacking:
                self.store.note_unmatched(s, "erp", "in the ERP, not in KeyCRM", None, now)
        for part in chunks(skus):
            self.conn.execute(f"DELETE FROM erp_to_read WHERE sku IN ({marks(part)})", part)
        self.aside.clear([f"{kind}:{s}" for s in sorted(found) for kind in ("keycrm", "created")])
        if found:
            self.store.clear_unmatched(found)
            # Read after our write: what KeyCRM holds may still differ (it was not known before).
            self.apply(sorted(found))
        if lacking and self.erp.create_missing and self.writing():
            self.create_missing(lacking[:CREATES_PER_TICK])
        return len(skus)

    def create_missing(self, skus: list[str]) -> int:
        return create_missing(self, skus)

    def send_fields(self) -> int:
        """Product data that differs from what was sent: prices in one ``PUT /offers``, names per product."""
        rows = self.conn.execute("SELECT sku, wanted, sent FROM erp_fields WHERE wanted != sent LIMIT 10000").fetchall()
        if not rows or not self.writing():
            return 0
        prices = []
        names: list[tuple[str, str]] = []
        for sku, wanted, sent in rows:
            w, s = json.loads(wanted), json.loads(sent)
            if "price" in w and w["price"] != s.get("price"):
                prices.append({"sku": sku, "price": w["price"]})
            if "name" in w and w["name"] != s.get("name"):
                names.append((sku, w["name"]))
        now = self.clock.now()
        if prices:
            self.keycrm.put_offers(prices)
            self._mark_sent([(p["sku"], "price", p["price"]) for p in prices], now)
        # Product ids from KeyCRM (the mirror, else one read): an ERP shop's mirror has no product data.
        offers = known_offers(self.store, self.keycrm, now, [s for s, _ in names[:NAMES_PER_TICK]])
        for sku, name in names[:NAMES_PER_TICK]:
            product_id = (offers.get(sku) or {}).get("product_id")
            if product_id:
                self.keycrm.update_product(int(product_id), {"name": name})
            self._mark_sent([(sku, "name", name)], now)  # unknown product: nothing to rename, not retried
        return len(prices) + min(len(names), NAMES_PER_TICK)

    def _mark_sent(self, items: list[tuple[str, str, Any]], now: float) -> None:
        for sku, key, value in items:
            row = self.conn.execute("SELECT sent FROM erp_fields WHERE sku = ?", (sku,)).fetchone()
            sent = {**json.loads(row[0] if row else "{}"), key: value}
            self.conn.execute("UPDATE erp_fields SET sent = ? WHERE sku = ?", (fields_json(sent), sku))


def fields_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, sort_keys=True)


__all__ = ["Applier", "ErpSettings"]
