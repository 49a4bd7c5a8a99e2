"""The resync plan: what each SKU needs, from both catalogues as read (``resync_jobs.py``).

The plan is built by SQL grouping on the exact SKU plus one pass over it in chunks (``decide.decide``
per SKU), in SQLite, never in Python memory; the report streamed from it is ``resync_report.py``.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from . import exclusions, skuhealth
from .config import Settings
from .decide import decide
from .resync_jobs import ACTIONS, FINISHED, PHASES, AlreadyRunning, JobRows
from .resync_report import ReportRows
from .store import chunks, marks

EARLY_N = 1 << 40  # plan rows past this ``n`` were decided early (``resync_early.py``)


class ResyncJobs(JobRows, ReportRows):
    """The job rows, their plans and reports, on one Store connection."""

    # -- the plan --------------------------------------------------------------------------------

    def build_plan(self, job: dict[str, Any], settings: Settings, ledger_rows: Any, inflight: Any,
                   chunk: int = 2000) -> dict[str, Any]:
        """Group both catalogues by exact SKU, decide each SKU, find lookalikes; returns the counts.

        ``ledger_rows(skus)`` and ``inflight(skus)`` are the ledger's lookups (agreed values and site
        orders KeyCRM does not show yet), called per chunk.

        Rows decided early (``resync_early.py``, numbered past ``EARLY_N``) are set aside under
        negative numbers, so that a restart in the middle still finds them: a SKU the final grouping
        finds clean keeps that decision and its write; one it finds duplicated is written back.
        """
        job_id = job["id"]
        c = self.conn
        with self.store.transaction():
            c.execute("UPDATE resync_plan SET n = -n WHERE job = ? AND n > ?", (job_id, EARLY_N))
            c.execute("DELETE FROM resync_plan WHERE job = ? AND n > 0", (job_id,))
            c.execute(_GROUP_SQL, {"job": job_id})
            c.execute(_EMPTY_WOO_SQL, {"job": job_id})
            c.execute(_EMPTY_KC_SQL, {"job": job_id})
        last = 0
        mode = job["mode"]
        while True:
            rows = c.execute(
                "SELECT n, sku, woo_items, woo_parents, woo_variations, woo_managed, woo_stock, kc_offers,"
                " kc_sellable, kc_q_write FROM resync_plan WHERE job = ? AND n > ? ORDER BY n LIMIT ?",
                (job_id, last, chunk)).fetchall()
            if not rows:
                break
            last = rows[-1]["n"]
            matched = [r["sku"] for r in rows if r["woo_items"] == 1 and r["kc_offers"] == 1 and r["sku"].strip()]
            known = ledger_rows(matched)
            held = inflight(matched)
            early = self._early_rows(job_id, matched)
            updates = []
            for r in rows:
                updates.append((*self._decide_row(r, mode, settings, known.get(r["sku"]), held.get(r["sku"], 0.0),
                                                  early.get(r["sku"])), job_id, r["n"]))
            with self.store.transaction() as t:
                t.executemany(
                    "UPDATE resync_plan SET key = ?, problems = ?, action = ?, woo_target = ?, kc_target = ?,"
                    " kc_new_q = ?, agreed = ?, reason = ?, woo_status = ?, kc_status = ? WHERE job = ? AND n = ?",
                    updates)
        with self.store.transaction() as t:
            t.execute(_EARLY_KEPT_SQL, {"job": job_id})
            t.execute(_EARLY_UNDONE_SQL, {"job": job_id, "why": WRITTEN_BACK})
            t.execute("DELETE FROM resync_plan WHERE job = ? AND n < 0", (job_id,))
            t.execute(_LOOKALIKE_SQL, {"job": job_id})
            if job["create_missing"]:
                # Only a clean "exists in WooCommerce only": a lookalike is probably a typo of an
                # existing KeyCRM offer, and creating it would make the mess worse.
                t.execute("UPDATE resync_plan SET action = 'create_keycrm', kc_status = 'planned'"
                          " WHERE job = ? AND problems = ? AND woo_items = 1",
                          (job_id, skuhealth.ONLY_IN_WOOCOMMERCE))
            # Shown beside the rest, written on neither side (unless written before the switch came).
            t.execute("UPDATE resync_plan SET action = 'excluded', woo_target = NULL, kc_target = NULL,"
                      " kc_new_q = NULL, woo_status = NULL, kc_status = NULL, reason = ? WHERE job = ?"
                      " AND coalesce(woo_status, 'planned') = 'planned' AND coalesce(kc_status, 'planned') = 'planned'"
                      " AND sku IN (SELECT sku FROM sync_exclusions WHERE excluded = 1)",
                      (exclusions.REASON, job_id))
        return self.counts(job_id)

    def _early_rows(self, job_id: str, skus: list[str]) -> dict[str, sqlite3.Row]:
        out: dict[str, sqlite3.Row] = {}
        for part in chunks(skus):
            out.update((r["sku"], r) for r in self.conn.execute(
                f"SELECT * FROM resync_plan WHERE job = ? AND n < 0 AND sku IN ({marks(part)})", (job_id, *part)))
        return out

    @staticmethod
    def _decide_row(r: sqlite3.Row, mode: str, settings: Settings, known: Any,
                    held: float, early: sqlite3.Row | None = None) -> tuple[Any, ...]:
        sku = r["sku"]
        group = skuhealth.Group(sku=sku, woo_items=r["woo_items"], woo_parents=r["woo_parents"],
                                woo_variations=r["woo_variations"], woo_managed=bool(r["woo_managed"]),
                                kc_offers=r["kc_offers"])
        problems = skuhealth.problems_of(group)
        key = skuhealth.sku_key(sku) if sku.strip() else ""
        if early is not None and not problems:
            # Decided (and maybe written) while KeyCRM was still being read: that decision stands.
            return (key, "", early["action"], early["woo_target"], early["kc_target"], early["kc_new_q"],
                    early["agreed"], early["reason"], early["woo_status"], early["kc_status"])
        if not problems and held:
            problems = [skuhealth.ORDER_IN_FLIGHT]
        if problems:
            return key, ";".join(problems), "none", None, None, None, None, None, None, None
        woo, kc = r["woo_stock"], r["kc_sellable"]
        d = decide(mode, woo=woo, kc=kc, agreed=known.agreed if known else None,
                   buffer=settings.safety_buffer if mode in ("keycrm", "erp") else 0.0)
        woo_target = d.woo_target
        if woo_target is not None:
            woo_target = float(math.floor(woo_target))  # WooCommerce keeps whole units
            if woo is not None and woo_target == woo:
                woo_target = None
        kc_target = d.kc_target
        kc_new_q = None
        if kc_target is not None:
            kc_new_q = max(0.0, r["kc_q_write"] + (kc_target - kc))
        action = ("update_both" if woo_target is not None and kc_target is not None else
                  "update_woocommerce" if woo_target is not None else
                  "update_keycrm" if kc_target is not None else "none")
        return (key, "", action, woo_target, kc_target, kc_new_q, d.agreed, d.reason,
                "planned" if woo_target is not None else None, "planned" if kc_target is not None else None)

    def counts(self, job_id: str) -> dict[str, Any]:
        c = self.conn
        actions = {a: 0 for a in ACTIONS}
        actions.update({r[0]: r[1] for r in c.execute(
            "SELECT action, count(*) FROM resync_plan WHERE job = ? GROUP BY action", (job_id,))})
        sums = ", ".join(f"sum(instr(';' || problems || ';', ';{p};') > 0)" for p in skuhealth.PROBLEMS)
        row = c.execute(f"SELECT count(*), sum(problems = ''), sum(problems = '' AND action = 'none'), {sums}"
                        " FROM resync_plan WHERE job = ?", (job_id,)).fetchone()
        problems = {p: int(row[i + 3] or 0) for i, p in enumerate(skuhealth.PROBLEMS)}
        status: dict[str, int] = {}
        for side in ("woo", "kc"):
            for s, n in c.execute(f"SELECT {side}_status, count(*) FROM resync_plan WHERE job = ?"
                                  f" AND {side}_status IS NOT NULL GROUP BY {side}_status", (job_id,)):
                status[f"{'woocommerce' if side == 'woo' else 'keycrm'}_{s}"] = int(n)
        # clean: no problem (it may still be updated); same: no problem and nothing to change.
        return {"skus": int(row[0] or 0), "clean": int(row[1] or 0), "same": int(row[2] or 0),
                "actions": actions, "problems": problems,
                "writes": status}

    # -- report ------------------------------------------------------------------------------------

WRITTEN_BACK = "written back: KeyCRM lists this SKU again on a later page than the one the resync wrote it from"

# Early rows the final plan kept: their batch and result go with them.
_EARLY_KEPT_SQL = """
UPDATE resync_plan AS p SET woo_batch = e.woo_batch, error = e.error
FROM resync_plan AS e
WHERE p.job = :job AND p.n > 0 AND p.problems = '' AND e.job = :job AND e.n < 0 AND e.sku = p.sku
"""

# Early rows written before a later page showed the SKU twice in KeyCRM: write back what WooCommerce
# had, conditional on the value the resync wrote.
_EARLY_UNDONE_SQL = """
UPDATE resync_plan AS p SET woo_stock = e.woo_target, woo_target = e.woo_stock, woo_status = 'planned',
                            reason = :why
FROM resync_plan AS e
WHERE p.job = :job AND p.n > 0 AND p.problems != '' AND e.job = :job AND e.n < 0 AND e.sku = p.sku
  AND e.woo_status = 'done' AND p.woo_id = e.woo_id
"""

# One row per distinct non-empty SKU from either side: emulates a full outer join on the SKU.
_GROUP_SQL = """
INSERT INTO resync_plan (job, n, sku, woo_ids, woo_id, woo_parent, woo_managed, woo_stock, woo_items, woo_parents,
                         woo_variations, kc_ids, kc_offer_id, kc_product_id, kc_sellable, kc_q_write, kc_r_write,
                         kc_offers)
WITH w AS (
    SELECT sku, group_concat(product_id) AS ids,
           max(CASE WHEN type != 'variable' THEN product_id END) AS pid,
           max(CASE WHEN type != 'variable' THEN parent_id END) AS parent,
           max(CASE WHEN type != 'variable' THEN manage_stock END) AS managed,
           max(CASE WHEN type != 'variable' THEN stock END) AS stock,
           sum(type != 'variable') AS items, sum(type = 'variable') AS parents, sum(type = 'variation') AS variations
    FROM resync_woo WHERE job = :job AND trim(sku) != '' GROUP BY sku),
k AS (
    SELECT sku, group_concat(offer_id) AS ids, max(offer_id) AS oid, max(product_id) AS pid,
           max(sellable) AS sellable, max(q_write) AS q_write, max(r_write) AS r_write, count(*) AS n
    FROM resync_kc WHERE job = :job AND trim(sku) != '' GROUP BY sku),
s AS (SELECT sku FROM w UNION SELECT sku FROM k)
SELECT :job, row_number() OVER (ORDER BY s.sku), s.sku, w.ids, w.pid, w.parent, w.managed, w.stock,
       coalesce(w.items, 0), coalesce(w.parents, 0), coalesce(w.variations, 0),
       k.ids, k.oid, k.pid, k.sellable, k.q_write, k.r_write, coalesce(k.n, 0)
FROM s LEFT JOIN w ON w.sku = s.sku LEFT JOIN k ON k.sku = s.sku
"""

# Items without a SKU cannot be grouped: one row each (a variable parent without one is normal).
_EMPTY_WOO_SQL = """
INSERT INTO resync_plan (job, n, sku, woo_ids, woo_id, woo_parent, woo_managed, woo_stock, woo_items,
                         woo_variations)
SELECT :job, (SELECT coalesce(max(n), 0) FROM resync_plan WHERE job = :job) + row_number() OVER (ORDER BY product_id),
       sku, product_id, product_id, parent_id, manage_stock, stock, 1, type = 'variation'
FROM resync_woo WHERE job = :job AND trim(sku) = '' AND type != 'variable'
"""

_EMPTY_KC_SQL = """
INSERT INTO resync_plan (job, n, sku, kc_ids, kc_offer_id, kc_product_id, kc_sellable, kc_q_write, kc_r_write,
                         kc_offers)
SELECT :job, (SELECT coalesce(max(n), 0) FROM resync_plan WHERE job = :job) + row_number() OVER (ORDER BY offer_id),
       sku, offer_id, offer_id, product_id, sellable, q_write, r_write, 1
FROM resync_kc WHERE job = :job AND trim(sku) = ''
"""

_LOOKALIKE_SQL = """
UPDATE resync_plan SET
    probable_match = (SELECT group_concat(p2.sku, ' | ') FROM resync_plan p2
                      WHERE p2.job = resync_plan.job AND p2.key = resync_plan.key AND p2.n != resync_plan.n),
    problems = CASE WHEN problems = '' THEN 'lookalike' ELSE problems || ';lookalike' END
WHERE job = :job AND key != '' AND key IN (
    SELECT key FROM resync_plan WHERE job = :job AND key != '' GROUP BY key HAVING count(*) > 1)
"""


__all__ = ["ACTIONS", "FINISHED", "PHASES", "AlreadyRunning", "ResyncJobs"]
