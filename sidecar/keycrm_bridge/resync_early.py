"""WooCommerce writes while KeyCRM is still being read: the resync's wall time is the larger of the
KeyCRM-bound and the WooCommerce-bound time, not their sum.

KeyCRM allows 60 requests a minute, so a 10,000-SKU resync spends most of its three minutes waiting
for slots. Once the whole WooCommerce catalogue is read (it fills the first of those waits), every
SKU on a stock page already read that matches one WooCommerce item and, so far, one KeyCRM offer is
decided at once (``decide.decide``, as the plan would) and its WooCommerce write goes out in the
next wait, in the same write-ahead batches as the apply phase (``resync_batches.py``).

Such a row is provisional: the final plan (``resync_plan.build_plan``) keeps its decision and its
write, unless a later page shows KeyCRM listing the SKU twice. Then the SKU is reported as
duplicated like any other, and the value WooCommerce had is written back (conditional on the
value the resync wrote, so a sale in between is never overwritten).

Dry runs never write early: they write nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from . import exclusions
from .resync_apply import ResyncApply
from .resync_batches import WOO_BATCH, _assign_batches
from .resync_plan import EARLY_N

log = logging.getLogger("keycrm_bridge.resync")

FIRST_BATCH_GUESS_S = 5.0  # a 100-item batch on a slow shop, until one was timed

# The SKUs given (JSON list) that match one WooCommerce item and one KeyCRM offer so far, and have no
# plan row yet: one plan row each, numbered past EARLY_N by their KeyCRM row.
_EARLY_SQL = """
INSERT INTO resync_plan (job, n, sku, woo_ids, woo_id, woo_parent, woo_managed, woo_stock, woo_items, woo_parents,
                         woo_variations, kc_ids, kc_offer_id, kc_product_id, kc_sellable, kc_q_write, kc_r_write,
                         kc_offers)
WITH want AS (SELECT value AS sku FROM json_each(:skus)),
w AS (
    SELECT sku, group_concat(product_id) AS ids, max(product_id) AS pid, max(parent_id) AS parent,
           max(manage_stock) AS managed, max(stock) AS stock, count(*) AS items,
           sum(type = 'variation') AS variations
    FROM resync_woo WHERE job = :job AND sku IN (SELECT sku FROM want) GROUP BY sku),
k AS (
    SELECT sku, max(rowid) AS rid, group_concat(offer_id) AS ids, max(offer_id) AS oid, max(product_id) AS pid,
           max(sellable) AS sellable, max(q_write) AS q_write, max(r_write) AS r_write, count(*) AS n
    FROM resync_kc WHERE job = :job AND sku IN (SELECT sku FROM want) GROUP BY sku)
SELECT :job, :base + k.rid, k.sku, w.ids, w.pid, w.parent, w.managed, w.stock, 1, 0, w.variations,
       k.ids, k.oid, k.pid, k.sellable, k.q_write, k.r_write, 1
FROM k JOIN w ON w.sku = k.sku
WHERE k.n = 1 AND w.items = 1
  AND NOT EXISTS (SELECT 1 FROM resync_woo v WHERE v.job = :job AND v.sku = k.sku AND v.type = 'variable')
  AND NOT EXISTS (SELECT 1 FROM resync_plan p WHERE p.job = :job AND p.sku = k.sku)
"""


class ResyncEarly(ResyncApply):
    """The early writes of ``ResyncRunner`` (planning phase, apply mode only)."""

    def _early_open(self, job: dict[str, Any], cur: dict[str, Any]) -> bool:
        return not job["dry_run"] and cur.get("woo") == "done" and self.woo is not None

    def _early_step(self, job: dict[str, Any], cur: dict[str, Any], wait: float) -> bool:
        """One piece of early work that fits in ``wait`` seconds before the next KeyCRM slot: decide
        the rows read since the last call, or send one batch. False when there is none."""
        if not self._early_open(job, cur):
            return False
        if self._early_decide(job, cur):
            return True
        c = self.store.conn
        job_id = job["id"]
        inflight = c.execute("SELECT * FROM resync_batches WHERE job = ? AND status = 'inflight' LIMIT 1",
                             (job_id,)).fetchone()
        if inflight is not None:
            if self.clock.now() < (inflight["sent_at"] or 0) + self.grace_s:
                return False
            self._verify(job, dict(inflight))
            return True
        writes = int(cur.get("early_writes", 0))
        each = float(cur["early_s"]) / writes if writes else FIRST_BATCH_GUESS_S
        if wait < 1.5 * each:
            return False  # a batch now would start the next KeyCRM read late
        batch = c.execute("SELECT * FROM resync_batches WHERE job = ? AND side = 'woocommerce' AND status = 'pending'"
                          " ORDER BY batch LIMIT 1", (job_id,)).fetchone()
        if batch is None:
            pending = int(c.execute("SELECT count(*) FROM resync_plan WHERE job = ? AND n > ?"
                                    " AND woo_status = 'planned' AND woo_batch IS NULL",
                                    (job_id, EARLY_N)).fetchone()[0])
            # Full batches while many pages are still to come: a WooCommerce request costs the
            # shop as much for 5 items as for 100.
            if pending < WOO_BATCH and (pending == 0 or wait < 20.0):
                return False
            with self.store.transaction() as t:
                _assign_batches(t, job_id, "woocommerce")
            return True
        started = time.perf_counter()
        self._send_woo(job, dict(batch))
        spent = (time.perf_counter() - started) * float(getattr(self.clock, "factor", 1.0))
        with self.store.transaction() as t:
            self._save_cursor(t, job_id, {**cur, "early_writes": writes + 1,
                                          "early_s": round(float(cur.get("early_s", 0.0)) + spent, 4)})
        return True

    def _early_decide(self, job: dict[str, Any], cur: dict[str, Any]) -> bool:
        """Plan rows for the SKUs on the stock pages read since the last call; True when there were pages."""
        c = self.store.conn
        job_id = job["id"]
        since = int(cur.get("early_rowid", 0))
        top = int(c.execute("SELECT coalesce(max(rowid), 0) FROM resync_kc WHERE job = ?", (job_id,)).fetchone()[0])
        if top <= since:
            return False
        skus = [r[0] for r in c.execute("SELECT DISTINCT sku FROM resync_kc WHERE job = ? AND rowid > ? AND rowid <= ?"
                                        " AND trim(sku) != ''", (job_id, since, top))]
        with self.store.transaction() as t:
            t.execute(_EARLY_SQL, {"job": job_id, "skus": json.dumps(skus), "base": EARLY_N})
        rows = c.execute(
            "SELECT n, sku, woo_items, woo_parents, woo_variations, woo_managed, woo_stock, kc_offers, kc_sellable,"
            " kc_q_write FROM resync_plan WHERE job = ? AND n > ? AND n <= ?",
            (job_id, EARLY_N + since, EARLY_N + top)).fetchall()
        matched = [r["sku"] for r in rows]
        known, held = self.ledger.rows(matched), self.ledger.inflight(matched)
        off = exclusions.excluded_among(c, matched)  # left to the final plan, which writes them nowhere
        keep: list[tuple[tuple[Any, ...], int]] = []
        drop: list[tuple[tuple[Any, ...], int]] = []
        for r in rows:
            d = self.jobs._decide_row(r, job["mode"], self.settings, known.get(r["sku"]), held.get(r["sku"], 0.0))
            # (key, problems, action, woo_target, kc_target, kc_new_q, agreed, reason, woo_status, kc_status)
            (keep if not d[1] and d[3] is not None and r["sku"] not in off else drop).append((d, r["n"]))
        with self.store.transaction() as t:
            # Only rows with a WooCommerce write stay: everything else is decided by the final plan.
            t.executemany("DELETE FROM resync_plan WHERE job = ? AND n = ?", [(job_id, n) for _, n in drop])
            t.executemany(
                "UPDATE resync_plan SET key = ?, problems = ?, action = ?, woo_target = ?, kc_target = ?,"
                " kc_new_q = ?, agreed = ?, reason = ?, woo_status = ?, kc_status = ? WHERE job = ? AND n = ?",
                [(*d, job_id, n) for d, n in keep])
            self.jobs.add_progress(t, job_id, total=len(keep))
            self._save_cursor(t, job_id, {**cur, "early_rowid": top})
        if keep:
            log.info("resync decided rows early", extra={"job": job_id, "rows": len(keep)})
        return True


__all__ = ["EARLY_N", "ResyncEarly"]
