"""The one KeyCRM rate budget shared: threads of one process (a stepped clock whose sleepers wait for
the test to move time) and two real processes on one SQLite file (AcceleratedClock).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keycrm_bridge.budget import (
    HANDOVER_S,
    LEAVE_MARGIN_S,
    STALE_S,
    WINDOW_S,
    Priority,
    RateBudget,
    default_write_reserve,
)
from keycrm_bridge.clock import AcceleratedClock, FakeClock
from test_budget import T0, R, W, max_in_any_window


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "bridge.sqlite3"


# -- in-process priority, with threads ---------------------------------------------------------------------
class SteppedClock:
    """Sleepers block until the test moves time past their deadline."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._cond = threading.Condition()
        self.sleepers = 0

    def now(self) -> float:
        with self._cond:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._cond:
            deadline = self._now + seconds
            self.sleepers += 1
            self._cond.notify_all()
            while self._now < deadline:
                self._cond.wait()
            self.sleepers -= 1

    def advance_to(self, t: float) -> None:
        with self._cond:
            self._now = t
            self._cond.notify_all()

    def wait_for_sleepers(self, n: int, timeout_s: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.sleepers >= n, timeout_s), f"{self.sleepers} sleepers, want {n}"


def test_waiting_writes_go_before_waiting_reads_and_each_kind_in_turn(db: Path) -> None:
    clock = SteppedClock(T0)
    with RateBudget(db, clock, per_minute=6) as budget:
        for _ in range(6):
            assert budget.try_acquire(W, "fill")
        threads = []
        callers = [(R, "read-1"), (R, "read-2"), (W, "write-1"), (R, "read-3"), (W, "write-2")]
        for n, (prio, name) in enumerate(callers):
            t = threading.Thread(target=budget.acquire, args=(prio, name))
            t.start()
            threads.append(t)
            clock.wait_for_sleepers(n + 1)  # each is queued before the next one comes
        assert budget.waiting() == 5
        assert not budget.try_acquire(R, "late read")  # nobody jumps the queue
        assert not budget.try_acquire(W, "late write")
        # The whole window frees at once; then time moves in small steps while they hand over.
        now = T0 + 61
        while any(t.is_alive() for t in threads):
            assert now < T0 + 120, "the waiting callers did not all get through"
            clock.advance_to(now)
            for t in threads:
                t.join(timeout=0.05)
            now += 0.1
        order = [
            e for (e,) in budget._conn.execute("SELECT endpoint FROM keycrm_calls WHERE ts > ? ORDER BY rowid", (T0,))
        ]
        assert budget.waiting() == 0
    assert order == ["write-1", "write-2", "read-1", "read-2", "read-3"]


def fork_and_stop() -> int:
    """A child process that just stays alive (stopped) until the test kills it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(0)
    return pid


def test_an_abandoned_ticket_goes_stale_and_an_interrupted_waiter_leaves_the_queue(db: Path) -> None:
    clock = FakeClock(T0)
    with RateBudget(db, clock, per_minute=2) as budget:
        assert budget.try_acquire(W, "a") and budget.try_acquire(W, "b")
        # A live process that queued and then got stuck: its ticket holds others only until stale.
        stuck = fork_and_stop()
        try:
            budget._conn.execute(
                "INSERT INTO keycrm_waiters (priority, wake_at, pid) VALUES ('write', ?, ?)", (T0 + 60 + LEAVE_MARGIN_S, stuck)
            )
            started = budget.acquire(W, "c")
            assert T0 + 60 + LEAVE_MARGIN_S + STALE_S <= started <= T0 + 60 + LEAVE_MARGIN_S + STALE_S + 2 * HANDOVER_S
            assert budget.waiting() == 0
            # A killed process's ticket is dropped at once.
            budget._conn.execute(
                "INSERT INTO keycrm_waiters (priority, wake_at, pid) VALUES ('write', ?, ?)", (started + 600, stuck)
            )
        finally:
            os.kill(stuck, signal.SIGKILL)
            os.waitpid(stuck, 0)
        clock.advance(60 + LEAVE_MARGIN_S + 0.01)
        assert budget.try_acquire(W, "d")
        started = clock.now()

        class Interrupted(Exception):
            pass

        class InterruptingClock(FakeClock):
            def sleep(self, seconds: float) -> None:
                raise Interrupted

    with RateBudget(db, InterruptingClock(started), per_minute=2) as other:
        assert other.try_acquire(W, "e")
        with pytest.raises(Interrupted):
            other.acquire(W, "f")  # must wait: window full
        assert other.waiting() == 0


def test_threads_sharing_a_budget_never_overfill_a_window(db: Path, clock: FakeClock) -> None:
    starts: list[float] = []
    lock = threading.Lock()

    def caller(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            ts = budget.acquire(W if rng.random() < 0.3 else R, "x")
            with lock:
                starts.append(ts)

    with RateBudget(db, clock, per_minute=12) as budget:
        threads = [threading.Thread(target=caller, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()
    assert len(starts) == 160
    assert max_in_any_window(starts) <= 12


# -- two processes, one SQLite file ---------------------------------------------------------------------------
class SharedOriginClock:
    """An AcceleratedClock whose origin the parent process sets once every child is ready."""

    def __init__(self, factor: float, origin: Any) -> None:
        self.factor, self.origin = factor, origin

    def now(self) -> float:
        return AcceleratedClock(self.factor, self.origin.value).now()

    def sleep(self, seconds: float) -> None:
        AcceleratedClock(self.factor, self.origin.value).sleep(seconds)


def _process_caller(
    db: str,
    ready: Any,
    go: Any,
    origin: Any,
    factor: float,
    per_minute: int,
    n_calls: int,
    write_share: float,
    seed: int,
    out: str,
) -> None:
    rng = random.Random(seed)
    calls = []
    with RateBudget(db, SharedOriginClock(factor, origin), per_minute=per_minute) as budget:
        ready.release()
        if not go.wait(timeout=30):
            raise TimeoutError("the parent never said go")
        for _ in range(n_calls):  # always wanting the next call: the budget is saturated
            prio = W if rng.random() < write_share else R
            calls.append((budget.acquire(prio, f"proc-{seed}"), prio.value))
    Path(out).write_text(json.dumps(calls))


@pytest.fixture
def fork_context() -> Iterator[multiprocessing.context.BaseContext]:
    yield multiprocessing.get_context("fork")


def run_two_processes(
    ctx: multiprocessing.context.BaseContext, db: Path, *, per_minute: int, n_calls: int, write_share: float
) -> list[list[tuple[float, str]]]:
    """Two processes saturate one budget file on a shared 120x clock; returns each one's (start, priority)."""
    RateBudget(db, FakeClock(T0), per_minute=per_minute).close()  # create the schema once
    ready, go, origin = ctx.Semaphore(0), ctx.Event(), ctx.Value("d", 0.0)
    outs = [db.with_name(f"calls-{i}.json") for i in range(2)]
    procs = [
        ctx.Process(  # type: ignore[attr-defined]
            target=_process_caller,
            args=(str(db), ready, go, origin, 120.0, per_minute, n_calls, write_share, i, str(outs[i])),
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # both are up before their shared clock starts
        assert ready.acquire(timeout=30)
    origin.value = time.time()
    go.set()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return [[(float(ts), str(prio)) for ts, prio in json.loads(o.read_text())] for o in outs]


def test_two_processes_sharing_the_file_never_exceed_the_budget_together(
    tmp_path: Path, fork_context: multiprocessing.context.BaseContext
) -> None:
    # 2 x 40 calls at 20 a minute: at least four simulated minutes, two real seconds at 120x.
    per_minute = 20
    per_proc = run_two_processes(
        fork_context, tmp_path / "shared.sqlite3", per_minute=per_minute, n_calls=40, write_share=0.25
    )
    everything = [call for calls in per_proc for call in calls]
    starts = [ts for ts, _ in everything]
    assert max_in_any_window(starts) <= per_minute
    reads = [ts for ts, p in everything if p == "read"]
    assert max_in_any_window(reads) <= per_minute - default_write_reserve(per_minute)
    # They really ran at the same time (so two separate budgets would have let 2x through).
    assert min(max(ts for ts, _ in calls) for calls in per_proc) > max(min(ts for ts, _ in calls) for calls in per_proc)


def test_two_processes_take_turns(tmp_path: Path, fork_context: multiprocessing.context.BaseContext) -> None:
    """The shared queue is fair: once both wait, neither wins slot after slot.

    During the first window whoever asks first takes the free slots; after that both are queued
    and they alternate. Without the queue, the process that happened to wake first won every
    slot and the other waited out its whole run.
    """
    per_proc = run_two_processes(fork_context, tmp_path / "fair.sqlite3", per_minute=20, n_calls=40, write_share=0.0)
    first = max(min(ts for ts, _ in calls) for calls in per_proc)
    last = min(max(ts for ts, _ in calls) for calls in per_proc)
    steady = sorted((ts, i) for i, calls in enumerate(per_proc) for ts, _ in calls if first + WINDOW_S <= ts <= last)
    assert len(steady) >= 10
    owners = [i for _, i in steady]
    # Each gets a fair share. (Not strict turns: at 120x a process that the OS pauses for a few real
    # milliseconds lets the other take several slots in a row.)
    assert min(owners.count(0), owners.count(1)) >= 0.3 * len(owners)


def test_product_fields_never_queue_a_stock_write_behind_them(tmp_path) -> None:
    """Stock first: a product-field write has a read's share and queue place, so the write reserve
    stays free for stock and a stock write never waits behind product fields."""
    clock = FakeClock()
    budget = RateBudget(tmp_path / "b.sqlite3", clock, per_minute=6, write_reserve=2)
    for _ in range(4):
        assert budget.try_acquire(Priority.FIELDS, "PUT /products/{id}")
    assert not budget.try_acquire(Priority.FIELDS, "PUT /products/{id}"), "fields took the stock reserve"
    assert budget.try_acquire(Priority.WRITE, "PUT /offers/stocks")
    assert budget.try_acquire(Priority.WRITE, "PUT /offers/stocks")
    budget.close()
