"""The worker: lanes of work over the one store, each surviving every exception (huey's lesson).

Exactly one worker runs per database: it holds an exclusive ``flock`` on ``<db>.worker.lock``,
which the kernel drops when the process dies, even by SIGKILL. Holding it proves no other worker
is alive, so on start the worker hands back claims its killed predecessor left, at once, instead
of waiting for their lease to run out.

The lanes (``LANES``, the one place a new stage is registered) are threads: plugin intake, the
WooCommerce catalogue, push to KeyCRM, the stock sync (writes to both sides), KeyCRM reads, the
full resync and, with ``SYNC_MODE=erp``, the ERP intake. The main thread writes the worker's
heartbeat (``/readyz`` reads it) and restarts a lane that died.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from typing import IO, Any

from . import approval
from .clock import Clock
from .config import Settings
from .erp.lane import erp_wanted
from .errors import describe
from .health import CORRUPT_HINT, disk_problem, integrity
from .lane_steps import (
    Shared,
    catalogue_steps,
    erp_lane_steps,
    intake_steps,
    keycrm_answered_step,
    push_steps,
    reads_steps,
    resync_steps,
    sync_steps,
)
from .lanes import Lane, LaneThread, Step
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


# The one place a lane is registered: (name, steps builder, idle poll in seconds). An idle lane's poll
# is a few SQLite reads; at 0.05 s across the lanes an idle worker used over 2 % of a core. A lane
# that hands another work wakes it (``Shared.wake``) and a debounce ends the wait when it runs out
# (``Shared.due``), so the 0.2 s polls add nothing to the shop-to-KeyCRM path.
LANES: list[tuple[str, Callable[[Engines, Shared], list[Step]], float]] = [
    ("intake", intake_steps, 0.05),  # its idle round is one read; the web's batches wait no longer
    ("catalogue", catalogue_steps, 1.0),
    ("push", push_steps, 0.2),
    ("sync", sync_steps, 0.2),
    ("reads", reads_steps, 0.25),
    ("resync", resync_steps, 0.5),
    ("erp", erp_lane_steps, 0.2),
]
# A lane that only some setups run (the others never start its thread).
LANE_WANTED: dict[str, Callable[[Settings], bool]] = {"erp": erp_wanted}

HEARTBEAT_S = 2.0


def _bind(build: Callable[[Engines, Shared], list[Step]], shared: Shared, engines: Engines) -> list[Step]:
    return build(engines, shared)


class Worker:
    """Runs every lane in its own thread; the main thread keeps the heartbeat and the lanes alive."""

    def __init__(self, settings: Settings, make_engines: Callable[[], Engines], clock: Clock) -> None:
        self.settings = settings
        self.make_engines = make_engines
        self.clock = clock
        self.shared = Shared(settings, clock)
        self.stop_event = self.shared.stop
        self.lanes = [Lane(name, functools.partial(_bind, build, self.shared), idle) for name, build, idle in LANES
                      if LANE_WANTED.get(name, lambda _s: True)(settings)]
        self.shared.lanes = {lane.name: lane for lane in self.lanes}

    def _start(self, lane: Lane) -> LaneThread:
        engines = self.make_engines()  # its own connections: lanes never share a transaction
        steps = [*lane.build(engines), keycrm_answered_step(engines)]
        t = LaneThread(lane, steps, engines.store, self.clock, self.stop_event)
        t.start()
        return t

    def wait_until_usable(self, check_every_s: float = 5.0) -> bool:
        """A worker started on a full disk or a damaged database does not exit: it waits and says why
        (``/readyz`` and ``doctor`` say it too). Returns False when stopped meanwhile."""
        said = ""
        while not self.stop_event.is_set():
            problem = disk_problem(self.settings)
            damaged = integrity(self.settings.database_path) if problem is None else None
            if damaged:
                problem = f"the database is damaged ({damaged}): {CORRUPT_HINT}"
            if problem is None:
                try:
                    self.make_engines().store.close()
                    return True
                except (sqlite3.Error, OSError) as exc:
                    problem = f"the database cannot be opened: {exc}"
            if problem != said:
                log.error("worker waiting: %s", problem, extra={"database": self.settings.database_path})
                said = problem
            self.stop_event.wait(check_every_s)
        return False

    def run(self) -> None:
        if not self.wait_until_usable():
            return
        lock = WorkerLock(self.settings.database_path)
        lock.acquire(self.clock)
        main = self.make_engines()
        released = main.store.release_all_claims()
        if main.store.get_meta(approval.META_KEY) is None and main.ledger.agreed_count():
            # A database of a release before the review existed, already in sync: nothing to review.
            approval.approve(main.store, self.settings, self.clock.now(), "upgrade")
        log.info("worker started", extra={"pid": os.getpid(), "reclaimed": released,
                                          "mode": self.settings.sync_mode, "lanes": [ln.name for ln in self.lanes]})
        threads = {lane.name: self._start(lane) for lane in self.lanes}
        try:
            while not self.stop_event.is_set():
                for lane in self.lanes:
                    if not threads[lane.name].is_alive():
                        log.error("lane stopped; starting it again", extra={"lane": lane.name})
                        threads[lane.name] = self._start(lane)
                self._heartbeat(main, threads)
                self.stop_event.wait(HEARTBEAT_S)
        finally:
            self.stop_event.set()
            deadline = time.monotonic() + 5.0  # (daemon threads: a lane stuck in a request ends with us)
            for t in threads.values():
                t.join(timeout=max(0.0, deadline - time.monotonic()))
            lock.release()
            log.info("worker stopped")

    def _heartbeat(self, main: Engines, threads: dict[str, LaneThread]) -> None:
        try:
            main.store.set_meta("worker_heartbeat", {"at": self.clock.now(), "pid": os.getpid(),
                                                     "lanes": {n: t.is_alive() for n, t in threads.items()}})
        except Exception as exc:  # noqa: BLE001 - a full disk: keep running, /readyz says why
            log.warning("could not write the worker heartbeat", extra={"error": describe(exc)})

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, _frame: Any) -> None:
            log.info("stopping on signal", extra={"signal": signum})
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
