"""Full resync (DESIGN.md S9, S12): plan from both whole catalogues, then apply the plan in batches.

The HTTP layer and the CLI only create the job row (``ResyncJobs.create``); the worker advances it
one step per tick (``ResyncRunner.step``): one KeyCRM request, one WooCommerce request or one write
batch at a time, so pushes and pulls keep running between steps and a restart loses at most the step
in progress. Everything a step learns is committed with the job's cursor in one transaction.

Writes are write-ahead: a batch is marked ``inflight`` (committed) before it is sent, and marked
``done`` with its per-item results after. A batch found ``inflight`` after a crash or a failed send
is first verified by reading the current values: items already at their target are done, items
still at the value the plan read are sent again, items that moved to anything else are left to the
live sync. So no item is written twice, and a 429 storm or a SIGKILL only delays the job.

The job has its own clients with a single attempt per request: retries happen here, where the
write-ahead state is, not inside the client where a retried PUT could land twice.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, jsonify, request

from . import approval, door
from .budget import Priority, RateBudget
from .clock import Clock
from .config import Settings
from .decide import json_number
from .errors import PermanentError, RetryableError
from .keycrm_client import PAGE_LIMIT, STOCKS_PUT_MAX_ROWS, KeyCRMClient
from .ledger import Ledger
from .resync_plan import FINISHED, AlreadyRunning, ResyncJobs
from .status import budget_used
from .store import Store, chunks, marks

log = logging.getLogger("keycrm_bridge.resync")

WOO_BATCH = 100
ORDER_POLL_MARGIN_S = 12.0   # leave the write reserve free this long before the order poll is due
INLINE_WAIT_S = 1.0         # a KeyCRM slot this close is waited for in the step (see _plan_step)
SUBSTEPS = 20               # steps one worker tick may take while each finds work
MAX_FAILURES = 8             # unexpected errors in a row before the job is marked failed
CHANGED = "changed during the resync; the live sync settles it"


class ResyncBudget(RateBudget):
    """The shared KeyCRM budget, with the push reserve lent to the resync while nothing else reads.

    The worker runs pushes and the resync in one thread, so a push never waits behind a resync
    step for more than one request; the reserve (10 of 60 a minute) only has to stay free for the
    order poll, which the runner checks before each step (``greedy``).
    """

    greedy = False

    def acquire(self, priority: Priority = Priority.READ, endpoint: str = "") -> float:
        if self.greedy and priority is Priority.READ:
            priority = Priority.WRITE
        return super().acquire(priority, endpoint)


class ResyncRunner:
    def __init__(self, settings: Settings, clock: Clock, store: Store, ledger: Ledger, *, skumap: Any = None,
                 keycrm: KeyCRMClient | None = None, woo: Any = None, budget: ResyncBudget | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.ledger = ledger
        self.skumap = skumap
        self.jobs = ResyncJobs(store)
        self.budget = budget or ResyncBudget(settings.database_path, clock, per_minute=settings.rate_per_minute)
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

    def _kc_wait(self) -> float:
        """Seconds until a KeyCRM request may start (checked first, so the worker never blocks on it)."""
        now = self.clock.now()
        checked = float(self.store.get_meta("orders_checked_at", 0) or 0)
        requested = float(self.store.get_meta("orders_check_requested", 0) or 0)
        poll_in = checked + self.settings.order_poll_interval_s - now
        self.budget.greedy = requested <= checked and poll_in > ORDER_POLL_MARGIN_S
        priority = Priority.WRITE if self.budget.greedy else Priority.READ
        wait = self.budget.next_slot_in(priority)
        return wait

    def _kc_slot(self) -> bool:
        return self._kc_wait() <= 0

    def _save_cursor(self, c: Any, job_id: str, cursor: dict[str, Any], **fields: Any) -> None:
        sets = "".join(f", {k} = ?" for k in fields)
        c.execute(f"UPDATE resync_jobs SET cursor = ?{sets} WHERE id = ?",
                  (json.dumps(cursor, separators=(",", ":")), *fields.values(), job_id))

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
            self.jobs.add_progress(c, job["id"], total=writes)
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


# -- helpers -----------------------------------------------------------------------------------------------

def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, abs_tol=1e-3)


def _clock_factor(clock: Clock) -> float:
    return float(getattr(clock, "factor", 1.0))


def _price(text: Any) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _without_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _flat(counts: dict[str, Any]) -> dict[str, Any]:
    return {"skus": counts.get("skus"), "actions": counts.get("actions"), "problems": counts.get("problems")}


# -- status, ETA ---------------------------------------------------------------------------------------------

def status_of(job: dict[str, Any], settings: Settings, store: Store, now: float) -> dict[str, Any]:
    """What GET /v1/resync/{id}, the plugin's progress bar and the CLI's bar show."""
    out: dict[str, Any] = {
        "id": job["id"], "phase": job["phase"], "dry_run": job["dry_run"], "create_missing": job["create_missing"],
        "mode": job["mode"], "done": int(job["done"]), "total": max(int(job["total"]), int(job["done"])),
        "errors": int(job["errors"]), "eta_s": None if job["phase"] in FINISHED else eta_s(job, settings, store, now),
        "created_at": job["created_at"], "started_at": job["started_at"], "finished_at": job["finished_at"],
        "counts": job["counts"] or None, "last_error": job["last_error"],
        "retry_at": job["retry_at"] if job["retry_at"] > now else None,
    }
    if job["phase"] in FINISHED and job["counts"]:
        base = f"/v1/resync/{job['id']}/plan"
        out["report"] = {"json": base + ".json", "csv": base + ".csv"}
    return out


def eta_s(job: dict[str, Any], settings: Settings, store: Store, now: float) -> float:
    """Seconds left: the KeyCRM requests still to make at the budget's pace, plus WooCommerce time.

    The first ``per_minute - used_last_minute`` requests can start at once; every further one waits
    for a slot, which frees at ``per_minute`` a minute.
    """
    cur = job["cursor"] or {}
    kc_left, woo_left = _requests_left(job, store)
    per_minute = max(1, settings.rate_per_minute)
    free_now = max(0, per_minute - budget_used(store, now))
    kc_s = max(0, kc_left - free_now) * 60.0 / per_minute
    woo_each = (cur.get("woo_s", 0.0) / cur["woo_requests"]) if cur.get("woo_requests") else 0.2
    wait = max(0.0, float(job["retry_at"] or 0) - now)
    return round(kc_s + woo_left * woo_each + wait, 1)


def _requests_left(job: dict[str, Any], store: Store) -> tuple[int, int]:
    cur = job["cursor"] or {}
    c = store.conn
    if job["phase"] in ("planning_keycrm", "planning_woo", "planned"):
        kc_total = cur.get("kc_total_stocks")
        stock_pages = math.ceil(kc_total / PAGE_LIMIT) if isinstance(kc_total, int) else None
        if stock_pages is None:
            guess = int(c.execute("SELECT count(*) FROM keycrm_offers").fetchone()[0]) or 50
            stock_pages = math.ceil(guess / PAGE_LIMIT)
        kc = cur.get("kc", "stocks")
        page = int(cur.get("page", 1))
        offer_pages = stock_pages if job["create_missing"] else 1  # else only the first, to compare totals
        if kc == "stocks":
            kc_left = stock_pages + offer_pages - page + 1
        elif kc == "offers":
            offers_total = cur.get("kc_total_offers")
            if isinstance(offers_total, int) and page > 1:
                offer_pages = math.ceil(offers_total / PAGE_LIMIT)
            kc_left = offer_pages - page + 1
        else:
            kc_left = 0
        woo_left = 0
        if cur.get("woo") != "done":
            woo_pages = math.ceil(stock_pages / 2) - int(cur.get("woo_page", 1)) + 1
            woo_left = len(cur.get("var_queue") or []) + max(0, woo_pages)
        return max(0, kc_left), woo_left
    pending = {r[0]: r[1] for r in c.execute(
        "SELECT side, count(*) FROM resync_batches WHERE job = ? AND status IN ('pending', 'inflight') GROUP BY side",
        (job["id"],))}
    unassigned_kc = int(c.execute("SELECT count(*) FROM resync_plan WHERE job = ? AND kc_status IN ('planned',"
                                  " 'created') AND kc_batch IS NULL", (job["id"],)).fetchone()[0])
    unassigned_woo = int(c.execute("SELECT count(*) FROM resync_plan WHERE job = ? AND woo_status = 'planned'"
                                   " AND woo_batch IS NULL", (job["id"],)).fetchone()[0])
    kc_left = pending.get("keycrm", 0) + 2 * pending.get("create", 0) + math.ceil(unassigned_kc / STOCKS_PUT_MAX_ROWS)
    return kc_left, pending.get("woocommerce", 0) + math.ceil(unassigned_woo / WOO_BATCH)


# -- HTTP ----------------------------------------------------------------------------------------------------

def register_resync_routes(app: Flask, settings: Settings, clock: Clock, store: Callable[[], Store],
                           unsigned: Callable[[bytes], Any]) -> None:
    """POST /v1/resync, GET /v1/resync/<id>, GET /v1/resync/<id>/plan.json|.csv (all signed).

    Only job rows are written here; the worker does every KeyCRM and WooCommerce call.
    """

    def _err(status: int, error: str, detail: Any = None) -> tuple[Response, int]:
        body: dict[str, Any] = {"error": error}
        if detail is not None:
            body["detail"] = detail
        return jsonify(body), status

    def _job(job_id: str) -> dict[str, Any] | None:
        jobs = ResyncJobs(store())
        return jobs.latest() if job_id == "latest" else jobs.get(job_id)

    @app.post("/v1/resync")
    def resync_start() -> tuple[Response, int]:
        body = request.get_data(cache=True)
        denied = unsigned(body)
        if denied:
            return denied
        try:
            data = door.loads(body) if body.strip() else {}
        except door.Refused as exc:
            return _err(400, "body is not JSON", str(exc))
        if not isinstance(data, dict):
            return _err(400, "bad request", 'expected {"dry_run": true|false, "create_missing": true|false}')
        flags = {k: data.get(k, default) for k, default in (("dry_run", True), ("create_missing", False))}
        if any(not isinstance(v, bool) for v in flags.values()):
            return _err(422, "dry_run and create_missing must be true or false")
        try:
            job = ResyncJobs(store()).create(dry_run=flags["dry_run"], create_missing=flags["create_missing"],
                                             mode=settings.sync_mode, now=clock.now(), source="api")
        except AlreadyRunning as exc:
            return jsonify({"error": "a resync is already running", "id": exc.job_id}), 409
        log.info("resync requested", extra={"job": job["id"], **flags})
        return jsonify(status_of(job, settings, store(), clock.now())), 202

    @app.get("/v1/resync/<job_id>")
    def resync_status(job_id: str) -> tuple[Response, int]:
        denied = unsigned(b"")
        if denied:
            return denied
        job = _job(job_id)
        if job is None:
            return _err(404, "no such resync", job_id)
        return jsonify(status_of(job, settings, store(), clock.now())), 200

    @app.get("/v1/resync/<job_id>/plan.<fmt>")
    def resync_plan(job_id: str, fmt: str) -> Any:
        denied = unsigned(b"")
        if denied:
            return denied
        if fmt not in ("json", "csv"):
            return _err(404, "not found", "use plan.json or plan.csv")
        job = _job(job_id)
        if job is None:
            return _err(404, "no such resync", job_id)
        if not job["counts"]:
            return _err(409, "the plan is not ready yet", {"phase": job["phase"]})
        jobs = ResyncJobs(store())
        headers = {"Content-Disposition": f'attachment; filename="keycrm-resync-{job["id"]}.{fmt}"'}
        if fmt == "csv":
            return Response(jobs.report_csv(job), mimetype="text/csv", headers=headers)
        return Response(jobs.report_json(job, status_of(job, settings, store(), clock.now())),
                        mimetype="application/json", headers=headers)
