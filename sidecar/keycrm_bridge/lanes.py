"""Worker lanes: threads over the one store, each its own loop, heartbeat and ``last_error`` per step.

A lane is a few steps run in turn (the KeyCRM reads lane: webhook, orders, sweep). Each step is
guarded on its own: an exception is recorded against that step, which then waits under the one
retry policy (``errors.backoff_s``, or the peer's ``Retry-After``), while the lane's other steps and
every other lane go on. So a slow WooCommerce, a wait for a KeyCRM slot or a long SKU-map refresh
holds only the lane it happens in. Lanes share nothing in memory but the stop flag and wake-up
events: each has its own SQLite connections (``wiring.make_engines``) and the rate budget is the
shared one in the store.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock, wait
from .errors import RETRYABLE, RetryableError, backoff_s, describe, disposition
from .store import Store

log = logging.getLogger("keycrm_bridge.worker")

BEAT_EVERY_S = 1.0   # a lane writes its heartbeat at most this often (more often when a step fails)


@dataclass
class Step:
    name: str                     # the stage named in status and in logs
    run: Callable[[], bool]       # one round; True when it did work (the lane then goes on at once)


@dataclass
class StepState:
    last_ok_at: float | None = None
    last_error: dict[str, Any] | None = None
    failures: int = 0
    retry_at: float = 0.0


@dataclass
class Lane:
    """A registered lane: its name, how often it looks for work when idle, and how to build its steps."""

    name: str
    build: Callable[[Any], list[Step]]     # engines -> steps
    idle_s: float = 0.1
    states: dict[str, StepState] = field(default_factory=dict)
    # Set by another lane that just handed this one work: the idle wait ends at once.
    wake: threading.Event = field(default_factory=threading.Event)
    # When a step knows its work falls due sooner than ``idle_s`` (a debounce ending), the time it does.
    due_at: float | None = None


class LaneThread(threading.Thread):
    def __init__(self, lane: Lane, steps: list[Step], store: Store, clock: Clock, stop: threading.Event,
                 rng: random.Random | None = None) -> None:
        super().__init__(name=f"lane-{lane.name}", daemon=True)
        self.lane, self.steps, self.store, self.clock, self.stop = lane, steps, store, clock, stop
        self.rng = rng or random.Random()
        self.states = lane.states
        for s in steps:
            self.states.setdefault(s.name, StepState())
        self._beat_at = -1e18

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                worked = self.round()
            except BaseException:  # noqa: BLE001 - a lane outlives any bug, even in its bookkeeping
                log.exception("lane round failed; going on", extra={"lane": self.lane.name})
                worked = False
                self.clock.sleep(1.0)
            if not worked:
                self.idle()

    def idle(self) -> None:
        """Wait ``idle_s``, less when a step said its work falls due sooner, none once woken."""
        lane = self.lane
        wait_s = lane.idle_s
        if lane.due_at is not None:
            wait_s = min(wait_s, max(0.0, lane.due_at - self.clock.now()))
            lane.due_at = None
        wait(self.clock, lane.wake, wait_s)
        lane.wake.clear()

    def round(self) -> bool:
        worked = changed = False
        for step in self.steps:
            if self.stop.is_set():
                break
            st = self.states[step.name]
            if st.retry_at > self.clock.now():
                continue
            try:
                worked = bool(step.run()) or worked
                if st.failures:
                    changed = True
                    log.info("step recovered", extra={"lane": self.lane.name, "step": step.name})
                st.failures, st.last_ok_at = 0, self.clock.now()
            except Exception as exc:  # noqa: BLE001 - one failing step must not stop the others
                changed = True
                self._failed(step, st, exc)
        self.beat(force=changed)
        return worked

    def _failed(self, step: Step, st: StepState, exc: Exception) -> None:
        now = self.clock.now()
        st.failures += 1
        wait = backoff_s(st.failures, self.rng)
        if isinstance(exc, RetryableError) and exc.retry_after:
            wait = max(wait, exc.retry_after)
        st.retry_at = now + wait
        how = disposition(exc)
        st.last_error = {"at": now, "stage": step.name, "error": describe(exc), "kind": how}
        extra = {"lane": self.lane.name, "step": step.name, "retry_in_s": round(wait, 1), "error": describe(exc)}
        if how == RETRYABLE:
            log.warning("step will be retried", extra=extra)
        else:
            # Items are isolated inside the steps; reaching here is a bug of the step itself.
            log.error("step failed", extra=extra, exc_info=exc)
        try:
            self.store.set_meta("last_error", st.last_error)
        except Exception:  # noqa: BLE001 - a full disk must not turn a recorded error into a crash
            log.exception("could not record the error")

    def beat(self, force: bool = False) -> None:
        now = self.clock.now()
        if not force and now - self._beat_at < BEAT_EVERY_S:
            return
        self._beat_at = now
        steps = {name: {"last_ok_at": s.last_ok_at, "last_error": s.last_error, "failures": s.failures,
                        "retry_at": s.retry_at if s.failures else None} for name, s in self.states.items()}
        try:
            self.store.set_meta(f"lane:{self.lane.name}", {"beat_at": now, "steps": steps})
        except Exception:  # noqa: BLE001 - reported by the heartbeat going stale instead
            log.warning("could not write the lane heartbeat", extra={"lane": self.lane.name})


def lane_states(store: Store) -> dict[str, Any]:
    """Every lane's last heartbeat, for status and metrics."""
    rows = store.conn.execute("SELECT key, value FROM meta WHERE key LIKE 'lane:%' ORDER BY key").fetchall()
    import json

    return {r[0][5:]: json.loads(r[1]) for r in rows}
