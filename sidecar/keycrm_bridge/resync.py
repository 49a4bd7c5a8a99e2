"""Full resync (DESIGN.md S9, S12): plan from both whole catalogues, then apply the plan in batches.

The HTTP layer and the CLI only create the job row (``ResyncJobs.create``); the worker advances it
one step per tick (``ResyncRunner.step``): one KeyCRM request, one WooCommerce request or one write
batch at a time, so pushes and pulls keep running between steps and a restart loses at most the step
in progress. Everything a step learns is committed with the job's cursor in one transaction.

This module reads the catalogues and drives the job; the tables and staging rows are
``resync_jobs.py``, the plan ``resync_plan.py``, its report ``resync_report.py``; applying it is
``resync_apply.py`` over the write-ahead batches of ``resync_batches.py`` (no item is written twice,
and a 429 storm or a SIGKILL only delays the job); status, ETA and the HTTP routes are ``resync_api.py``.

The job has its own clients with a single attempt per request: retries happen here, where the
write-ahead state is, not inside the client where a retried PUT could land twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from .budget import Priority, RateBudget
from .clock import Clock
from .config import Settings
from .errors import PermanentError, RetryableError
from .keycrm_client import KeyCRMClient
from .ledger import Ledger
from .resync_api import eta_s, register_resync_routes, status_of
from .resync_batches import WOO_BATCH, _flat
from .resync_early import ResyncEarly
from .resync_plan import EARLY_N, FINISHED, ResyncJobs
from .store import Store

log = logging.getLogger("keycrm_bridge.resync")

INLINE_WAIT_S = 1.0         # a KeyCRM slot this close is waited for in the step (see _plan_step)
SUBSTEPS = 20               # steps one worker tick may take while each finds work
MAX_FAILURES = 8             # unexpected errors in a row before the job is marked failed


class ResyncBudget(RateBudget):
    """The shared KeyCRM budget as the resync reads it: the whole window but one slot.

    The order poll counts as a write (``keycrm_client``) and needs one call every
    ``ORDER_POLL_INTERVAL_S``; the resync's reads may take everything else, the write reserve
    included, so one slot is always free for the poll (or a push) the moment it comes. A waiting
    write is served before any waiting read, and the resync's calls leave the window one by one.
    """

    reads_limit: int | None = None

    def limit_for(self, priority: Priority) -> int:
        if priority is Priority.READ and self.reads_limit is not None:
            return self.reads_limit
        return super().limit_for(priority)


class ResyncRunner(ResyncEarly):
    def __init__(self, settings: Settings, clock: Clock, store: Store, ledger: Ledger, *, skumap: Any = None,
                 keycrm: KeyCRMClient | None = None, woo: Any = None, budget: ResyncBudget | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.ledger = ledger
        self.skumap = skumap
        self.jobs = ResyncJobs(store)
        self.budget = budget or ResyncBudget(settings.database_path, clock, per_minute=settings.rate_per_minute)
        if isinstance(self.budget, ResyncBudget):
            # One slot always free, for the order poll (or a push) to take the moment it comes.
            self.budget.reads_limit = max(settings.rate_per_minute - 1, 1)
        timeout = min(30.0, settings.keycrm_timeout_s)
        self.keycrm = keycrm or KeyCRMClient(settings.keycrm_base_url, settings.keycrm_api_key, self.budget, clock,
                                             timeout=(3.05, timeout), max_attempts=1)
        if woo is None and settings.has_woocommerce:
            from .woo_client import WooClient

            woo = WooClient(settings.woo_url, settings.woo_consumer_key, settings.woo_consumer_secret,
                            settings.shared_secret, clock, timeout=timeout, max_attempts=1)
        self.woo = woo
        # A request still on the wire when the worker died lands within its timeout: verify after it.
        self.grace_s = timeout + 2.0

    # -- one step --------------------------------------------------------------------------------

    def step(self) -> bool:
        """Advance the active job by one request or batch; False when there is nothing to do now."""
        job = self.jobs.active()
        if job is None:
            return False
        now = self.clock.now()
        if job["retry_at"] > now:
            return False
        # The sweep reads what the resync is reading anyway; pausing it leaves the budget to us.
        self.store.set_meta("sweep_page_at", now)
        try:
            first = worked = self._advance(job, now)
            # A few more cheap steps in the same tick (WooCommerce pages, free KeyCRM slots): a tick
            # costs the worker several SQLite round trips of its own.
            for _ in range(SUBSTEPS):
                if not worked:
                    break
                nxt = self.jobs.active()
                if nxt is None or nxt["id"] != job["id"]:
                    break
                job = nxt
                worked = self._advance(job, self.clock.now())
            worked = first
        except RetryableError as exc:
            wait = exc.retry_after if exc.retry_after else min(60.0, 2.0 ** min(job["failures"] + 1, 6))
            self.jobs.update(job["id"], retry_at=now + wait, failures=job["failures"] + 1, last_error=str(exc)[:500])
            log.warning("resync step will be retried", extra={"job": job["id"], "retry_in_s": round(wait, 2),
                                                               "error": str(exc)[:300]})
            return False
        except PermanentError as exc:
            if exc.status in (401, 403):
                # A refused key is fixed in settings, not by failing the job: keep it and wait.
                self.jobs.update(job["id"], retry_at=now + 60.0, failures=job["failures"] + 1,
                                 last_error=str(exc)[:500])
            else:
                log.error("resync failed", extra={"job": job["id"], "error": str(exc)[:300]})
                self.jobs.finish(job["id"], "failed", now, error=str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a bug in one step must not stop the worker
            log.exception("resync step failed", extra={"job": job["id"]})
            failures = job["failures"] + 1
            if failures >= MAX_FAILURES:
                self.jobs.finish(job["id"], "failed", now, error=f"{type(exc).__name__}: {exc}")
            else:
                self.jobs.update(job["id"], retry_at=now + 2.0 ** failures, failures=failures,
                                 last_error=f"{type(exc).__name__}: {exc}"[:500])
            return False
        if job["failures"]:
            self.jobs.update(job["id"], failures=0)
        return worked

    def run_until_done(self, on_progress: Callable[[dict[str, Any]], None] | None = None,
                       job_id: str | None = None) -> dict[str, Any]:
        """Run the active job in this process (the CLI without a worker)."""
        while True:
            job = self.jobs.get(job_id) if job_id else self.jobs.active()
            if job is None or job["phase"] in FINISHED:
                return job or {}
            if on_progress:
                on_progress(status_of(job, self.settings, self.store, self.clock.now()))
            if not self.step():
                self.clock.sleep(0.05)

    def _advance(self, job: dict[str, Any], now: float) -> bool:
        if job["phase"] in ("planning_keycrm", "planning_woo"):
            return self._plan_step(job, now)
        if job["phase"] == "planned":
            return self._build(job, now)
        if job["phase"] == "applying":
            return self._apply_step(job, now)
        return False

    # -- planning: read both catalogues ---------------------------------------------------------

    def _plan_step(self, job: dict[str, Any], now: float) -> bool:
        cur = job["cursor"]
        if not cur:
            if self.woo is None:
                self.jobs.finish(job["id"], "failed", now,
                                 error="WooCommerce is not configured (WOO_URL, WOO_CONSUMER_KEY, WOO_CONSUMER_SECRET)")
                return False
            self.jobs.prune(job["id"])
            cur = {"kc": "stocks", "page": 1, "woo": "products", "woo_page": 1, "var_queue": [], "var_page": 1,
                   "read_started": now, "kc_requests": 0, "woo_requests": 0, "woo_s": 0.0}
            self.jobs.update(job["id"], cursor=cur, started_at=now)
            log.info("resync started", extra={"job": job["id"], "dry_run": job["dry_run"], "mode": job["mode"]})
            return True
        kc_left = cur["kc"] != "done"
        woo_left = cur["woo"] != "done"
        wait = self._kc_wait() if kc_left else 0.0
        # WooCommerce reads cost no KeyCRM budget: they fill the waits between KeyCRM slots, but only
        # a wait they fit in. A KeyCRM call started late frees its slot late, a minute later too.
        each = cur["woo_s"] / cur["woo_requests"] if cur["woo_requests"] else 0.0
        woo_fits = woo_left and (not kc_left or wait >= 1.5 * each)
        if kc_left and (wait <= 0 or (wait <= INLINE_WAIT_S and not woo_fits)):
            # A short wait is slept here, to the slot: going round the worker loop instead would
            # start every call a little late, and the lateness adds up call by call.
            if wait > 0:
                self.clock.sleep(wait)
            self._kc_read(job, cur)
            return True
        if woo_fits:
            self._woo_read(job, cur)
            return True
        if kc_left and self._early_step(job, cur, wait):
            return True
        if kc_left:
            if job["phase"] != "planning_keycrm":
                self.jobs.update(job["id"], phase="planning_keycrm")
            return False
        self.jobs.update(job["id"], phase="planned")
        return True

    def _kc_read(self, job: dict[str, Any], cur: dict[str, Any]) -> None:
        """One KeyCRM page. The stock pages carry id, SKU and every warehouse's quantity and reserve,
        which is all a stock resync needs: ⌈N/50⌉ requests. ``/offers`` (the product of each offer)
        is paged only to create missing products, or when its first page shows offers that the stock
        pages did not list (KeyCRM leaving offers without stock rows out)."""
        page = int(cur["page"])
        stocks = cur["kc"] == "stocks"
        # One page per step (the client's iterators would read every page in one go).
        got = self.keycrm.stocks_page(page, details=True) if stocks else self.keycrm.offers_page(page)
        rows = got.rows
        cur = {**cur, "kc_requests": cur["kc_requests"] + 1}
        total_add = 0
        if page == 1 and got.total is not None:
            name = "stocks" if stocks else "offers"
            cur["kc_total_" + name] = got.total
            needed = stocks or job["create_missing"] or not isinstance(cur.get("kc_total_stocks"), int) \
                or got.total > cur["kc_total_stocks"]
            total_add = got.total if needed else 0
            if not stocks and not needed:
                cur["kc"] = "done"
        if cur["kc"] == "done":
            pass
        elif got.is_last:
            cur.update(kc="offers", page=1) if stocks else cur.update(kc="done")
        else:
            cur["page"] = page + 1
        phase = "planning_keycrm" if cur["kc"] != "done" or cur["woo"] == "done" else "planning_woo"
        with self.store.transaction() as c:
            n = (self.jobs.save_kc_stock(c, job["id"], rows, self.settings) if stocks
                 else self.jobs.save_kc_offers(c, job["id"], rows))
            self.jobs.add_progress(c, job["id"], done=n if stocks or total_add else 0, total=total_add)
            self._save_cursor(c, job["id"], cur, phase=phase)

    def _woo_read(self, job: dict[str, Any], cur: dict[str, Any]) -> None:
        assert self.woo is not None
        started = time.perf_counter()  # Woo request time, for the ETA only
        queue = list(cur["var_queue"])
        # One page per step; a page that is not a list raises RetryableError before anything is saved.
        if queue:
            parent = int(queue[0])
            page = int(cur["var_page"])
            got = self.woo.variations_page(parent, page, per_page=WOO_BATCH)
            items = [p for p in got.items if isinstance(p, dict)]
            cur = {**cur, "var_page": page + 1} if got.more else {**cur, "var_queue": queue[1:], "var_page": 1}
            total_add = 0
        else:
            page = int(cur["woo_page"])
            got = self.woo.products_page(page, per_page=WOO_BATCH)
            items = [p for p in got.items if isinstance(p, dict)]
            parent = 0
            variable = [int(p["id"]) for p in items if p.get("type") == "variable"]
            total_add = sum(len(p.get("variations") or []) for p in items)
            if page == 1:
                total_add += got.total if got.total is not None else len(got.items)
            cur = {**cur, "var_queue": variable, "var_page": 1, "woo_page": page + 1}
            if not got.more:
                cur["woo"] = "last_page"
        if cur["woo"] == "last_page" and not cur["var_queue"]:
            cur["woo"] = "done"
        cur["woo_requests"] = cur["woo_requests"] + 1
        cur["woo_s"] = round(cur["woo_s"] + (time.perf_counter() - started) * _clock_factor(self.clock), 4)
        phase = "planning_keycrm" if cur["kc"] != "done" else "planning_woo"
        with self.store.transaction() as c:
            n = self.jobs.save_woo(c, job["id"], items, parent_id=parent)
            self.jobs.add_progress(c, job["id"], done=n, total=total_add)
            self._save_cursor(c, job["id"], cur, phase=phase)

    # -- the plan -----------------------------------------------------------------------------------

    def _build(self, job: dict[str, Any], now: float) -> bool:
        # Early rows still to write were counted in the total when they were decided.
        counted = int(self.store.conn.execute(
            "SELECT count(*) FROM resync_plan WHERE job = ? AND (n > ? OR n < 0) AND woo_status = 'planned'",
            (job["id"], EARLY_N)).fetchone()[0])
        counts = self.jobs.build_plan(job, self.settings, self.ledger.rows, self.ledger.inflight)
        self._note_unmatched(job["id"], now)
        cur = dict(job["cursor"])
        if job["dry_run"]:
            self.jobs.update(job["id"], counts=counts)
            self.jobs.finish(job["id"], "done", self.clock.now())
            log.info("resync dry run done", extra={"job": job["id"], **_flat(counts)})
            return True
        writes = int(self.store.conn.execute(
            "SELECT count(*) FROM resync_plan WHERE job = ? AND (woo_status = 'planned' OR kc_status = 'planned')",
            (job["id"],)).fetchone()[0])
        cur["stage"] = "create" if job["create_missing"] else "keycrm"
        cur["apply_started"] = now
        with self.store.transaction() as c:
            self.jobs.add_progress(c, job["id"], total=max(0, writes - counted))
            self._save_cursor(c, job["id"], cur, phase="applying", counts=json.dumps(counts))
        log.info("resync plan built; applying", extra={"job": job["id"], **_flat(counts)})
        return True

    def _note_unmatched(self, job_id: str, now: float) -> None:
        """S9: what the plan found is listed in status too (``unmatched``), capped so status stays small."""
        rows = self.store.conn.execute(
            "SELECT sku, problems, probable_match, woo_id, woo_items, kc_offers FROM resync_plan"
            " WHERE job = ? AND problems != '' AND trim(sku) != '' ORDER BY n LIMIT 5000", (job_id,)).fetchall()
        from .skuhealth import DESCRIPTIONS

        with self.store.transaction():
            for r in rows:
                codes = r["problems"].split(";")
                words = "; ".join(DESCRIPTIONS.get(p, p) for p in codes)
                if r["probable_match"]:
                    words += f" (probably the same as {r['probable_match']})"
                side = "woocommerce" if r["woo_items"] and not r["kc_offers"] else \
                    "keycrm" if r["kc_offers"] and not r["woo_items"] else "both"
                self.store.note_unmatched(r["sku"], side, f"resync: {words}"[:300], r["woo_id"], now)


# -- helpers ------------------------------------------------------------------------------------------

def _clock_factor(clock: Clock) -> float:
    return float(getattr(clock, "factor", 1.0))


__all__ = ["ResyncBudget", "ResyncRunner", "eta_s", "register_resync_routes", "status_of"]
