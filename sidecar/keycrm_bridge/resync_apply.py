"""Applying a full resync's plan: the stages (create what is missing, KeyCRM stock, WooCommerce
stock) and the ledger at the end. ``resync.py`` reads the catalogues and builds the plan;
``ResyncRunner`` mixes this in. The write-ahead bookkeeping every stage shares (a batch marked
``inflight`` before it is sent, verified if its answer never came) is ``resync_batches.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from . import approval
from .decide import json_number
from .errors import PermanentError
from .resync_batches import CHANGED, ResyncBatches, _flat
from .resync_plan import WRITTEN_BACK

log = logging.getLogger("keycrm_bridge.resync")


class ResyncApply(ResyncBatches):
    """The apply phase of ``ResyncRunner``."""

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


    # WooCommerce stock ------------------------------------------------------------------------------

    def _send_woo(self, job: dict[str, Any], batch: dict[str, Any]) -> None:
        from .woo_client import StockWrite

        job_id, b = job["id"], batch["batch"]
        rows = [dict(r) for r in self.store.conn.execute(
            "SELECT n, sku, woo_id, woo_parent, woo_stock, woo_target, agreed, reason FROM resync_plan"
            " WHERE job = ? AND woo_batch = ? AND woo_status = 'planned' ORDER BY n", (job_id, b))]
        # A write-back follows the resync's own early write (which the ledger shows as a change): it is
        # conditional on the value that write left, so a sale since then still wins.
        changed = self._changed_since_plan(job, [r["sku"] for r in rows if r["reason"] != WRITTEN_BACK],
                                           "woocommerce")
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


# -- batch assignment ------------------------------------------------------------------------------------


# -- helpers ------------------------------------------------------------------------------------------


def _price(text: Any) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _without_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
