"""Applying a full resync's plan: write-ahead batches to KeyCRM and WooCommerce, verifying a batch
whose answer never came, creating what is missing, and the ledger at the end (``resync.py`` reads the
catalogues and builds the plan; ``ResyncRunner`` mixes this in).

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

from . import approval
from .budget import Priority, RateBudget
from .clock import Clock
from .config import Settings
from .decide import json_number
from .errors import PermanentError
from .keycrm_client import STOCKS_PUT_MAX_ROWS, KeyCRMClient
from .ledger import Ledger
from .resync_plan import ResyncJobs
from .store import Store, chunks, marks

log = logging.getLogger("keycrm_bridge.resync")

WOO_BATCH = 100
CHANGED = "changed during the resync; the live sync settles it"


class ResyncApply:
    """The apply phase of ``ResyncRunner`` (which sets these attributes)."""

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

    # -- applying -------------------------------------------------------------------------------------

    def _apply_step(self, job: dict[str, Any], now: float) -> bool:
        c = self.store.conn
        job_id = job["id"]
        inflight = c.execute("SELECT * FROM resync_batches WHERE job = ? AND status = 'inflight' ORDER BY batch"
                             " LIMIT 1", (job_id,)).fetchone()
        if inflight is not None:
            if now < (inflight["sent_at"] or 0) + self.grace_s:
                return False
            if inflight["side"] != "woocommerce" and not self._kc_slot():
                return False
            self._verify(job, dict(inflight))
            return True
        cur = dict(job["cursor"])
        stage = cur["stage"]
        if stage == "create":
            batch = self._next_batch(job_id, "create", cur)
            if batch is None:
                return self._next_stage(job_id, cur, "map")
            if not self._kc_slot():
                return False
            self._create(job, batch)
            return True
        if stage == "map":
            skus = [r[0] for r in c.execute("SELECT sku FROM resync_plan WHERE job = ? AND kc_status = 'created'"
                                            " ORDER BY n LIMIT 50", (job_id,))]
            if not skus:
                return self._next_stage(job_id, cur, "keycrm")
            if not self._kc_slot():
                return False
            self._map_created(job, skus)
            return True
        if stage == "keycrm":
            batch = self._next_batch(job_id, "keycrm", cur)
            if batch is None:
                return self._next_stage(job_id, cur, "woocommerce")
            if not self._kc_slot():
                return False
            self._send_keycrm(job, batch)
            return True
        if stage == "woocommerce":
            batch = self._next_batch(job_id, "woocommerce", cur)
            if batch is None:
                return self._next_stage(job_id, cur, "finish")
            self._send_woo(job, batch)
            return True
        return self._finish_step(job, cur, now)

    def _next_stage(self, job_id: str, cur: dict[str, Any], stage: str) -> bool:
        self.jobs.update(job_id, cursor={**cur, "stage": stage})
        return True

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

    # KeyCRM stock ------------------------------------------------------------------------------------

    def _send_keycrm(self, job: dict[str, Any], batch: dict[str, Any]) -> None:
        job_id, b = job["id"], batch["batch"]
        rows = [dict(r) for r in self.store.conn.execute(
            "SELECT n, sku, kc_new_q, kc_target, kc_r_write, kc_offer_id, agreed FROM resync_plan"
            " WHERE job = ? AND kc_batch = ? AND kc_status = 'planned' ORDER BY n", (job_id, b))]
        changed = self._changed_since_plan(job, [r["sku"] for r in rows], "keycrm")
        self._skip_rows(job_id, [r["n"] for r in rows if r["sku"] in changed], "keycrm", CHANGED)
        rows = [r for r in rows if r["sku"] not in changed]
        if not rows:
            self._close_batch(job_id, b)
            return
        self._mark_inflight(job_id, b)
        put = [{"sku": r["sku"], "quantity": json_number(r["kc_new_q"])} for r in rows]
        try:
            self.keycrm.put_stocks(self.settings.write_warehouse_id, put)
        except PermanentError as exc:
            if exc.status in (401, 403):
                raise
            self._split_rejected(job_id, b, rows, str(exc))
            return
        self._keycrm_written(job_id, b, rows)

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

    def _split_rejected(self, job_id: str, b: int, rows: list[dict[str, Any]], error: str) -> None:
        """KeyCRM refused the batch (422): halve it to find the bad rows; each half is its own batch."""
        with self.store.transaction() as t:
            if len(rows) == 1:
                t.execute("UPDATE resync_plan SET kc_status = 'failed', error = ? WHERE job = ? AND n = ?",
                          (f"KeyCRM refused the stock row: {error}"[:300], job_id, rows[0]["n"]))
                self.jobs.add_progress(t, job_id, done=1, errors=1)
                t.execute("UPDATE resync_batches SET status = 'done' WHERE job = ? AND batch = ?", (job_id, b))
                return
            top = int(t.execute("SELECT max(batch) FROM resync_batches WHERE job = ?", (job_id,)).fetchone()[0])
            mid = len(rows) // 2
            for k, half in enumerate((rows[:mid], rows[mid:]), start=1):
                t.executemany("UPDATE resync_plan SET kc_batch = ? WHERE job = ? AND n = ?",
                              [(top + k, job_id, r["n"]) for r in half])
                t.execute("INSERT INTO resync_batches (job, batch, side, items) VALUES (?, ?, 'keycrm', ?)",
                          (job_id, top + k, len(half)))
            t.execute("UPDATE resync_batches SET status = 'split' WHERE job = ? AND batch = ?", (job_id, b))

    def _close_batch(self, job_id: str, b: int) -> None:
        self.store.conn.execute("UPDATE resync_batches SET status = 'done' WHERE job = ? AND batch = ?", (job_id, b))

    # WooCommerce stock ------------------------------------------------------------------------------

    def _send_woo(self, job: dict[str, Any], batch: dict[str, Any]) -> None:
        from .woo_client import StockWrite

        job_id, b = job["id"], batch["batch"]
        rows = [dict(r) for r in self.store.conn.execute(
            "SELECT n, sku, woo_id, woo_parent, woo_stock, woo_target, agreed FROM resync_plan"
            " WHERE job = ? AND woo_batch = ? AND woo_status = 'planned' ORDER BY n", (job_id, b))]
        changed = self._changed_since_plan(job, [r["sku"] for r in rows], "woocommerce")
        self._skip_rows(job_id, [r["n"] for r in rows if r["sku"] in changed], "woocommerce", CHANGED)
        rows = [r for r in rows if r["sku"] not in changed]
        if not rows:
            self._close_batch(job_id, b)
            return
        self._mark_inflight(job_id, b)
        # Conditional on the value the plan read: a sale since then is never overwritten by the plan.
        writes = [StockWrite(product_id=r["woo_id"], parent_id=r["woo_parent"] or 0, quantity=r["woo_target"],
                             sku=r["sku"], expect=r["woo_stock"]) for r in rows]
        assert self.woo is not None
        results = {res.write.product_id: res for res in self.woo.set_stock(writes)}
        now = self.clock.now()
        ok, bad, moved = [], [], []
        for r in rows:
            res = results.get(r["woo_id"])
            if res is not None and res.ok:
                ok.append(r)
            elif res is not None and res.conflict:
                moved.append(r["n"])
            else:
                bad.append((r, str(res.error) if res is not None and res.error else "no answer for this item"))
        with self.store.transaction() as t:
            t.executemany("UPDATE resync_plan SET woo_status = 'done' WHERE job = ? AND n = ?",
                          [(job_id, r["n"]) for r in ok])
            t.executemany("UPDATE resync_plan SET woo_status = 'failed', error = ? WHERE job = ? AND n = ?",
                          [(f"WooCommerce refused the stock write: {e}"[:300], job_id, r["n"]) for r, e in bad])
            t.execute("UPDATE resync_batches SET status = 'done' WHERE job = ? AND batch = ?", (job_id, b))
            self.jobs.add_progress(t, job_id, done=len(rows) - len(moved), errors=len(bad))
        self._skip_rows(job_id, moved, "woocommerce", CHANGED)
        if self.skumap is not None:
            for r in ok:
                self.skumap.record_stock(r["woo_id"], r["woo_target"], now)
        self._ledger_agree([(r["sku"], r["woo_target"], None, r["agreed"]) for r in ok], now)
        for r, e in bad:
            self.store.note_unmatched(r["sku"], "keycrm", f"resync: WooCommerce refused the stock write: {e}"[:300],
                                      r["woo_id"], now)
        self.store.set_meta("last_pull_at", now)
        log.info("resync wrote WooCommerce stock", extra={"job": job_id, "batch": b, "ok": len(ok), "failed": len(bad)})

    # Verifying an in-flight batch --------------------------------------------------------------------

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

    # Creating what exists in WooCommerce only ---------------------------------------------------------

    def _create(self, job: dict[str, Any], batch: dict[str, Any]) -> None:
        job_id, b, parent = job["id"], batch["batch"], int(batch["parent"])
        c = self.store.conn
        rows = [dict(r) for r in c.execute(
            "SELECT p.n, p.sku, p.woo_id, w.name, w.price FROM resync_plan p JOIN resync_woo w"
            " ON w.job = p.job AND w.product_id = p.woo_id WHERE p.job = ? AND p.create_batch = ?"
            " AND p.kc_status = 'planned' ORDER BY p.n", (job_id, b))]
        if not rows:
            self._close_batch(job_id, b)
            return
        self._mark_inflight(job_id, b)
        if not parent:
            r = rows[0]
            self.keycrm.create_product(_without_none({"name": r["name"] or r["sku"], "sku": r["sku"],
                                                      "price": _price(r["price"])}))
        else:
            pname = c.execute("SELECT name FROM resync_woo WHERE job = ? AND product_id = ?",
                              (job_id, parent)).fetchone()
            name = (pname[0] if pname else "") or rows[0]["name"] or rows[0]["sku"]
            product_id = batch["kc_product_id"] or c.execute(
                "SELECT max(kc_product_id) FROM resync_plan WHERE job = ? AND woo_parent = ?",
                (job_id, parent)).fetchone()[0]
            if not product_id:
                created = self.keycrm.create_product({"name": name})
                product_id = int(created["id"])
                c.execute("UPDATE resync_batches SET kc_product_id = ? WHERE job = ? AND batch = ?",
                          (product_id, job_id, b))
            self.keycrm.create_offers(int(product_id), [_without_none({"sku": r["sku"], "price": _price(r["price"])})
                                                        for r in rows], product_name=name)
        with self.store.transaction() as t:
            t.executemany("UPDATE resync_plan SET kc_status = 'created' WHERE job = ? AND n = ?",
                          [(job_id, r["n"]) for r in rows])
            t.execute("UPDATE resync_batches SET status = 'done' WHERE job = ? AND batch = ?", (job_id, b))
        log.info("resync created KeyCRM offers", extra={"job": job_id, "skus": [r["sku"] for r in rows][:20]})

    def _map_created(self, job: dict[str, Any], skus: list[str]) -> None:
        """Read the created offers back by SKU: their ids and stock rows, then plan their stock write."""
        job_id = job["id"]
        found = {str(i.get("sku")): i for i in self.keycrm.iter_stocks(skus=skus, details=True)}
        wh = self.settings.write_warehouse_id
        with self.store.transaction() as t:
            for sku in skus:
                row = t.execute("SELECT n, woo_stock, woo_managed FROM resync_plan WHERE job = ? AND sku = ?"
                                " AND kc_status = 'created'", (job_id, sku)).fetchone()
                item = found.get(sku)
                if item is None:
                    t.execute("UPDATE resync_plan SET kc_status = 'failed', error = ? WHERE job = ? AND n = ?",
                              ("created in KeyCRM but not found when read back", job_id, row["n"]))
                    self.jobs.add_progress(t, job_id, done=1, errors=1)
                    continue
                per = {int(w["id"]): (float(w.get("quantity") or 0), float(w.get("reserve") or 0))
                       for w in item.get("warehouse") or []}
                q, r = per.get(wh, (0.0, 0.0))
                sellable = sum(qq - rr for w_id, (qq, rr) in per.items() if w_id in self.settings.read_warehouse_ids)
                target = row["woo_stock"] if row["woo_managed"] and row["woo_stock"] is not None else None
                new_q = max(0.0, q + (target - sellable)) if target is not None and target != sellable else None
                t.execute("UPDATE resync_plan SET kc_offer_id = ?, kc_ids = ?, kc_sellable = ?, kc_q_write = ?,"
                          " kc_r_write = ?, kc_target = ?, kc_new_q = ?, agreed = ?, kc_status = ?,"
                          " reason = 'created in KeyCRM from WooCommerce' WHERE job = ? AND n = ?",
                          (item.get("id"), str(item.get("id")), sellable, q, r,
                           target if new_q is not None else None, new_q, target,
                           "planned" if new_q is not None else "done", job_id, row["n"]))
                if new_q is None:
                    self.jobs.add_progress(t, job_id, done=1)
            # The new offers' stock rows go out with the other KeyCRM writes.
            cur = dict(job["cursor"])
            cur["assigned_keycrm"] = False
            self._save_cursor(t, job_id, cur)

    # -- the end ----------------------------------------------------------------------------------------

    def _finish_step(self, job: dict[str, Any], cur: dict[str, Any], now: float, chunk: int = 2000) -> bool:
        """Tell the ledger what both sides now hold, for SKUs the plan found in agreement, so the
        live sync starts from the resync's picture (the written ones were told batch by batch)."""
        job_id = job["id"]
        last = int(cur.get("finish_n", 0))
        rows = self.store.conn.execute(
            "SELECT n, sku, woo_stock, kc_sellable, agreed FROM resync_plan WHERE job = ? AND n > ?"
            " AND action = 'none' AND problems = '' ORDER BY n LIMIT ?", (job_id, last, chunk)).fetchall()
        if rows:
            since = float(cur.get("read_started") or 0)
            known = self.ledger.rows([r["sku"] for r in rows])
            fresh = [r for r in rows if r["sku"] not in known
                     or ((known[r["sku"]].woo_at or 0) <= since and (known[r["sku"]].kc_at or 0) <= since)]
            self._ledger_agree([(r["sku"], r["woo_stock"], r["kc_sellable"], r["agreed"]) for r in fresh], now,
                               note=False)
            self.jobs.update(job_id, cursor={**cur, "finish_n": rows[-1]["n"]})
            return True
        counts = self.jobs.counts(job_id)
        self.jobs.update(job_id, counts=counts)
        self.jobs.finish(job_id, "done", now)
        # Applying the reviewed comparison is the owner's approval of the first sync.
        if job["mode"] == self.settings.sync_mode and (self.jobs.get(job_id) or {}).get("phase") == "done":
            approval.approve(self.store, self.settings, now, f"resync ({job.get('source') or 'api'})", job_id)
        log.info("resync applied", extra={"job": job_id, **_flat(counts)})
        return True

    def _ledger_agree(self, rows: list[tuple[str, float | None, float | None, float | None]], now: float,
                      note: bool = True) -> None:
        if not rows:
            return
        with self.store.transaction() as t:
            t.executemany("INSERT OR IGNORE INTO ledger (sku) VALUES (?)", [(r[0],) for r in rows])
        self.ledger.set_values(rows, now)
        if note:  # what `explain` shows: the resync wrote this value
            self.ledger.notes([(r[0], "resync", {"woo": r[1], "kc": r[2], "agreed": r[3]}) for r in rows], now)


# -- batch assignment ------------------------------------------------------------------------------------

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


# -- helpers ------------------------------------------------------------------------------------------

def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, abs_tol=1e-3)


def _price(text: Any) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _without_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _flat(counts: dict[str, Any]) -> dict[str, Any]:
    return {"skus": counts.get("skus"), "actions": counts.get("actions"), "problems": counts.get("problems")}
