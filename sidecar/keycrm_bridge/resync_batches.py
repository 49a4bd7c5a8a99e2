"""The write-ahead batches of a resync's apply phase, and what each batch tells the ledger.

Writes are write-ahead: a batch is marked ``inflight`` (committed) before it is sent, and marked
``done`` with its per-item results after. A batch found ``inflight`` after a crash or a failed send
is first verified by reading the current values: items already at their target are done, items
still at the value the plan read are sent again, items that moved to anything else are left to the
live sync. So no item is written twice.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from typing import Any

from .budget import Priority, RateBudget
from .clock import Clock
from .config import Settings
from .keycrm_client import STOCKS_PUT_MAX_ROWS, KeyCRMClient
from .ledger import Ledger
from .resync_plan import ResyncJobs
from .store import Store, chunks, marks

log = logging.getLogger("keycrm_bridge.resync")

WOO_BATCH = 100
CHANGED = "changed during the resync; the live sync settles it"


class ResyncBatches:
    """The batch bookkeeping of ``ResyncRunner`` (which sets these attributes)."""

    settings: Settings
    clock: Clock
    store: Store
    ledger: Ledger
    skumap: Any
    jobs: ResyncJobs
    budget: RateBudget
    keycrm: KeyCRMClient
    woo: Any
    grace_s: float

    def _kc_wait(self) -> float:
        """Seconds until a KeyCRM request may start (checked first, so the worker never blocks on it)."""
        return self.budget.next_slot_in(Priority.READ)

    def _kc_slot(self) -> bool:
        return self._kc_wait() <= 0

    def _save_cursor(self, c: Any, job_id: str, cursor: dict[str, Any], **fields: Any) -> None:
        sets = "".join(f", {k} = ?" for k in fields)
        c.execute(f"UPDATE resync_jobs SET cursor = ?{sets} WHERE id = ? AND phase != 'cancelled'",
                  (json.dumps(cursor, separators=(",", ":")), *fields.values(), job_id))

    def _next_batch(self, job_id: str, side: str, cur: dict[str, Any]) -> dict[str, Any] | None:
        c = self.store.conn
        flag = f"assigned_{side}"
        if not cur.get(flag):
            with self.store.transaction() as t:
                _assign_batches(t, job_id, side)
                cur[flag] = True
                self._save_cursor(t, job_id, cur)
        row = c.execute("SELECT * FROM resync_batches WHERE job = ? AND side = ? AND status = 'pending'"
                        " ORDER BY batch LIMIT 1", (job_id, side)).fetchone()
        return dict(row) if row else None

    def _mark_inflight(self, job_id: str, batch: int) -> None:
        """Write-ahead: committed before the request leaves, so a restart knows to verify it."""
        self.store.conn.execute("UPDATE resync_batches SET status = 'inflight', sent_at = ?, attempts = attempts + 1"
                                " WHERE job = ? AND batch = ?", (self.clock.now(), job_id, batch))

    def _changed_since_plan(self, job: dict[str, Any], skus: list[str], side: str) -> set[str]:
        """SKUs whose side changed (or that turned dirty) after the plan read it: the live sync has
        newer facts than the plan, so the resync leaves them alone."""
        since = float(job["cursor"].get("read_started") or 0)
        rows = self.ledger.rows(skus)
        out: set[str] = set()
        dirty: set[str] = set()
        for part in chunks(skus):
            dirty.update(r[0] for r in self.store.conn.execute(
                f"SELECT sku FROM ledger WHERE dirty_since IS NOT NULL AND sku IN ({marks(part)})", part))
        for sku in skus:
            r = rows.get(sku)
            if r is None:
                continue
            at = r.woo_at if side == "woocommerce" else r.kc_at
            if sku in dirty or (at is not None and at > since):
                out.add(sku)
        return out

    def _skip_rows(self, job_id: str, ns: Iterable[int], side: str, error: str) -> int:
        col = "woo_status" if side == "woocommerce" else "kc_status"
        ns = list(ns)
        if ns:
            with self.store.transaction() as t:
                t.executemany(f"UPDATE resync_plan SET {col} = 'skipped', error = ? WHERE job = ? AND n = ?",
                              [(error, job_id, n) for n in ns])
                self.jobs.add_progress(t, job_id, done=len(ns))
        return len(ns)

    def _keycrm_written(self, job_id: str, b: int, rows: list[dict[str, Any]], close: bool = True) -> None:
        now = self.clock.now()
        wh = self.settings.write_warehouse_id
        with self.store.transaction() as t:
            t.executemany("UPDATE resync_plan SET kc_status = 'done' WHERE job = ? AND n = ?",
                          [(job_id, r["n"]) for r in rows])
            if close:
                t.execute("UPDATE resync_batches SET status = 'done' WHERE job = ? AND batch = ?", (job_id, b))
            self.jobs.add_progress(t, job_id, done=len(rows))
        self.store.save_keycrm_stock([(r["sku"], wh, r["kc_offer_id"], r["kc_new_q"], r["kc_r_write"] or 0.0)
                                      for r in rows], now)
        self._ledger_agree([(r["sku"], None, r["kc_target"], r["agreed"]) for r in rows], now)
        self.store.set_meta("last_keycrm_success_at", now)
        log.info("resync wrote KeyCRM stock", extra={"job": job_id, "batch": b, "rows": len(rows)})

    def _close_batch(self, job_id: str, b: int) -> None:
        self.store.conn.execute("UPDATE resync_batches SET status = 'done' WHERE job = ? AND batch = ?", (job_id, b))

    def _verify(self, job: dict[str, Any], batch: dict[str, Any]) -> None:
        """Read the current values of a batch whose answer we never got, then decide per item."""
        job_id, b, side = job["id"], batch["batch"], batch["side"]
        col = {"keycrm": "kc_batch", "woocommerce": "woo_batch", "create": "create_batch"}[side]
        status_col = "woo_status" if side == "woocommerce" else "kc_status"
        rows = [dict(r) for r in self.store.conn.execute(
            f"SELECT n, sku, woo_id, woo_parent, woo_stock, woo_target, kc_q_write, kc_new_q, kc_target, kc_r_write,"
            f" kc_offer_id, agreed FROM resync_plan WHERE job = ? AND {col} = ? AND {status_col} = 'planned'",
            (job_id, b))]
        landed: list[dict[str, Any]] = []
        resend: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        if side == "keycrm":
            by_sku = self._read_write_quantities([r["sku"] for r in rows])
            for r in rows:
                q = by_sku.get(r["sku"])
                (landed if _same(q, r["kc_new_q"]) else resend if _same(q, r["kc_q_write"]) else moved).append(r)
        elif side == "woocommerce":
            by_id = self._read_woo_stock(batch["parent"], [r["woo_id"] for r in rows])
            for r in rows:
                q = by_id.get(r["woo_id"])
                (landed if _same(q, r["woo_target"]) else resend if _same(q, r["woo_stock"]) else moved).append(r)
        else:
            found = {o.get("sku") for o in self.keycrm.iter_offers(skus=[r["sku"] for r in rows])}
            for r in rows:
                (landed if r["sku"] in found else resend).append(r)
        log.info("resync verified an unanswered batch", extra={
            "job": job_id, "batch": b, "side": side, "landed": len(landed), "resend": len(resend),
            "moved": len(moved)})
        with self.store.transaction() as t:
            t.execute("UPDATE resync_batches SET status = ? WHERE job = ? AND batch = ?",
                      ("pending" if resend else "done", job_id, b))
        if side == "keycrm" and landed:
            self._keycrm_written(job_id, b, landed, close=False)
        elif side == "woocommerce" and landed:
            with self.store.transaction() as t:
                t.executemany("UPDATE resync_plan SET woo_status = 'done' WHERE job = ? AND n = ?",
                              [(job_id, r["n"]) for r in landed])
                self.jobs.add_progress(t, job_id, done=len(landed))
            self._ledger_agree([(r["sku"], r["woo_target"], None, r["agreed"]) for r in landed], self.clock.now())
        elif side == "create" and landed:
            with self.store.transaction() as t:
                t.executemany("UPDATE resync_plan SET kc_status = 'created' WHERE job = ? AND n = ?",
                              [(job_id, r["n"]) for r in landed])
        self._skip_rows(job_id, [r["n"] for r in moved], side, CHANGED)

    def _read_write_quantities(self, skus: list[str]) -> dict[str, float]:
        wh = self.settings.write_warehouse_id
        out: dict[str, float] = {}
        for item in self.keycrm.iter_stocks(skus=skus, details=True):
            per = {int(w["id"]): float(w.get("quantity") or 0) for w in item.get("warehouse") or []}
            out[str(item.get("sku"))] = per.get(wh, 0.0)
        return out

    def _read_woo_stock(self, parent: int, ids: list[int]) -> dict[int, float | None]:
        assert self.woo is not None
        include = ",".join(str(i) for i in ids)
        items = (self.woo.iter_variations(parent, per_page=WOO_BATCH, include=include) if parent
                 else self.woo.iter_products(per_page=WOO_BATCH, include=include))
        return {int(p["id"]): (float(p["stock_quantity"]) if p.get("stock_quantity") is not None else None)
                for p in items if isinstance(p, dict)}

    def _ledger_agree(self, rows: list[tuple[str, float | None, float | None, float | None]], now: float,
                      note: bool = True) -> None:
        if not rows:
            return
        with self.store.transaction() as t:
            t.executemany("INSERT OR IGNORE INTO ledger (sku) VALUES (?)", [(r[0],) for r in rows])
        self.ledger.set_values(rows, now)
        if note:  # what `explain` shows: the resync wrote this value
            self.ledger.notes([(r[0], "resync", {"woo": r[1], "kc": r[2], "agreed": r[3]}) for r in rows], now)


def _assign_batches(t: Any, job_id: str, side: str) -> None:
    base = int(t.execute("SELECT coalesce(max(batch), 0) FROM resync_batches WHERE job = ?", (job_id,)).fetchone()[0])
    if side == "keycrm":
        t.execute(
            "WITH r AS (SELECT n, (row_number() OVER (ORDER BY n) - 1) / :size AS b FROM resync_plan"
            " WHERE job = :job AND kc_status = 'planned' AND kc_new_q IS NOT NULL AND kc_batch IS NULL)"
            " UPDATE resync_plan SET kc_batch = :base + 1 + r.b FROM r WHERE resync_plan.job = :job"
            " AND resync_plan.n = r.n", {"job": job_id, "size": STOCKS_PUT_MAX_ROWS, "base": base})
        col, parent = "kc_batch", "0"
    elif side == "woocommerce":
        # Per endpoint: simple products go to products/batch, variations to their parent's batch.
        t.execute(
            "WITH r AS (SELECT n, woo_parent, (row_number() OVER (PARTITION BY woo_parent ORDER BY woo_id) - 1)"
            " / :size AS chunk FROM resync_plan WHERE job = :job AND woo_status = 'planned' AND woo_batch IS NULL),"
            " d AS (SELECT n, dense_rank() OVER (ORDER BY woo_parent, chunk) AS b FROM r)"
            " UPDATE resync_plan SET woo_batch = :base + d.b FROM d WHERE resync_plan.job = :job"
            " AND resync_plan.n = d.n", {"job": job_id, "size": WOO_BATCH, "base": base})
        col, parent = "woo_batch", "coalesce(max(woo_parent), 0)"
    else:
        # One batch per new KeyCRM product: a simple product alone, variations with their parent.
        t.execute(
            "WITH d AS (SELECT n, dense_rank() OVER (ORDER BY CASE WHEN woo_parent > 0 THEN woo_parent"
            " ELSE -n END) AS b FROM resync_plan WHERE job = :job AND action = 'create_keycrm'"
            " AND create_batch IS NULL)"
            " UPDATE resync_plan SET create_batch = :base + d.b FROM d WHERE resync_plan.job = :job"
            " AND resync_plan.n = d.n", {"job": job_id, "base": base})
        col, parent = "create_batch", "coalesce(max(woo_parent), 0)"
    t.execute(f"INSERT INTO resync_batches (job, batch, side, parent, items) SELECT job, {col}, ?, {parent},"
              f" count(*) FROM resync_plan WHERE job = ? AND {col} > ? GROUP BY {col}", (side, job_id, base))


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, abs_tol=1e-3)


def _flat(counts: dict[str, Any]) -> dict[str, Any]:
    return {"skus": counts.get("skus"), "actions": counts.get("actions"), "problems": counts.get("problems")}
