"""The worker loop: claims due changes and pushes them; survives every exception (huey's lesson).

Exactly one worker runs per database: it holds an exclusive ``flock`` on ``<db>.worker.lock``,
which the kernel drops when the process dies, even by SIGKILL. Holding it proves no other worker
is alive, so on start the worker hands back claims its killed predecessor left, at once, instead
of waiting for their lease to run out.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import IO, Any

from . import approval
from .clock import Clock
from .config import Settings
from .erp.lane import start_erp_lane
from .errors import PermanentError, RetryableError
from .events import changes_for
from .wiring import Engines

log = logging.getLogger("keycrm_bridge.worker")


class WorkerLock:
    def __init__(self, db_path: str) -> None:
        self.path = f"{db_path}.worker.lock"
        self._fh: IO[str] | None = None

    def acquire(self, clock: Clock, wait: bool = True) -> bool:
        self._fh = open(self.path, "a+")  # noqa: SIM115 - held for the life of the worker
        while True:
            try:
                fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not wait:
                    return False
                log.info("another worker holds the lock; waiting", extra={"lock": self.path})
                clock.sleep(2.0)

    def release(self) -> None:
        if self._fh:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class Worker:
    """Each round: expand the inbox, push claimed changes, absorb KeyCRM sources, run a sync round."""

    def __init__(self, settings: Settings, engines: Engines, clock: Clock, poll_s: float = 0.1) -> None:
        self.settings = settings
        self.engines = engines
        self.store = engines.store
        self.push = engines.push
        self.clock = clock
        self.poll_s = poll_s
        self.stop_event = threading.Event()
        self._skumap_at = -1e18
        self._pruned_at = -1e18
        self._waiting_logged = False
        self._keycrm_ok_saved = -1e18

    def push_due(self) -> bool:
        """Debounce: wait for a quiet moment (or the max wait) so a burst goes out as one request."""
        now = self.clock.now()
        count, oldest, newest = self.store.due_window(now)
        if not count or oldest is None or newest is None:
            return False
        return (now - newest >= self.settings.push_debounce_s) or (now - oldest >= self.settings.push_max_wait_s)

    def tick(self) -> bool:
        """One round; returns True when it did work (the loop then goes again without waiting)."""
        worked = fresh_stock = False
        new, dup = self.store.expand_inbox(lambda ev: changes_for(ev, self.settings))
        if new or dup:
            log.debug("inbox expanded", extra={"new": new, "duplicates": dup})
        # Until the owner approved the first comparison, both sides are only read (approval.py):
        # plugin events wait in the queue, KeyCRM's readings fill the ledger, nothing is written.
        writing = self._approved()
        if writing and self.push_due():
            result = self.push.run_once()
            worked = result.claimed > 0
            # The queue already waited for the burst to end: decide these SKUs now, not a second
            # debounce later.
            fresh_stock = result.pushed_stock > 0
            if result.claimed:
                log.info("push round", extra={k: v for k, v in vars(result).items() if k != "errors"})
        worked = self._guarded("pull", self.engines.pull.tick) or worked
        if writing and (fresh_stock or self.engines.sync.due()):
            r = self.engines.sync.run_round()
            worked = worked or r.progressed
            if r.progressed or r.errors:
                log.info("sync round", extra={k: v for k, v in vars(r).items() if k != "errors"})
        if self.engines.resync is not None:  # full resync: one request or batch per tick
            worked = self._guarded("resync", self.engines.resync.step) or worked
        self._refresh_skumap()
        self._prune()
        self._note_keycrm_answered()
        return worked

    def _note_keycrm_answered(self) -> None:
        # Every answered call counts, reads too; one write per 10 s is enough for a status in seconds.
        ok_at = getattr(self.engines.keycrm, "last_ok_at", None)
        if ok_at is not None and ok_at - self._keycrm_ok_saved >= 10.0:
            self._keycrm_ok_saved = ok_at
            if ok_at > float(self.store.get_meta("last_keycrm_success_at", 0) or 0):
                self.store.set_meta("last_keycrm_success_at", ok_at)

    def _approved(self) -> bool:
        ok = approval.approved(self.store, self.settings)
        if not ok and not self._waiting_logged:
            log.warning("waiting for the first-sync review: nothing is written until a full resync is applied",
                        extra={"reason": approval.state(self.store, self.settings)["waiting_reason"]})
        self._waiting_logged = not ok
        return ok

    def _prune(self) -> None:
        # Hourly: the SQLite file keeps `explain`'s history for RETENTION_DAYS, not forever.
        now = self.clock.now()
        if now - self._pruned_at < 3600:
            return
        self._pruned_at = now
        removed = self.store.prune(now - self.settings.retention_days * 86400)
        if any(removed.values()):
            log.info("old history pruned", extra=removed)

    def _guarded(self, name: str, fn: Callable[[], Any]) -> bool:
        """One source failing (KeyCRM down for the sweep) must not stop the others (webhooks, push)."""
        try:
            return bool(fn())
        except RetryableError as exc:
            log.warning("%s will be retried", name, extra={"error": str(exc)[:300]})
        except PermanentError as exc:
            log.error("%s failed", name, extra={"error": str(exc)[:300]})
            self.store.set_meta("last_error", {"at": self.clock.now(), "error": f"{name}: {exc}"[:500]})
        return False

    def _refresh_skumap(self) -> None:
        e = self.engines
        if e.skumap is None or e.woo is None or self.settings.skumap_refresh_s <= 0:
            return
        if self.clock.now() - self._skumap_at < self.settings.skumap_refresh_s:
            return
        self._skumap_at = self.clock.now()
        self._guarded("skumap", lambda: e.skumap.refresh(e.woo) if e.skumap and e.woo else None)

    def run(self) -> None:
        lock = WorkerLock(self.settings.database_path)
        lock.acquire(self.clock)
        released = self.store.release_all_claims()
        if self.store.get_meta(approval.META_KEY) is None and self.engines.ledger.agreed_count():
            # A database of a release before the review existed, already in sync: nothing to review.
            approval.approve(self.store, self.settings, self.clock.now(), "upgrade")
        start_erp_lane(self.settings, self.clock, self.stop_event)  # SYNC_MODE=erp: its own thread
        log.info("worker started", extra={"pid": os.getpid(), "reclaimed": released,
                                          "mode": self.settings.sync_mode})
        try:
            while not self.stop_event.is_set():
                try:
                    worked = self.tick()
                except Exception:  # noqa: BLE001 - the loop must outlive any bug or outage
                    log.exception("worker round failed; going on")
                    worked = False
                    self.clock.sleep(1.0)
                if not worked:
                    self.clock.sleep(self.poll_s)
        finally:
            lock.release()
            log.info("worker stopped")

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, _frame: Any) -> None:
            log.info("stopping on signal", extra={"signal": signum})
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
