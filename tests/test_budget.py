"""The one KeyCRM rate budget: a sliding 60-second window stored in SQLite.

Time is always injected: FakeClock (sleep advances it), a stepped clock whose sleepers wait for
the test to move time, and AcceleratedClock for two real processes sharing one SQLite file.
"""

from __future__ import annotations

import bisect
import json
import multiprocessing
import os
import random
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keycrm_bridge.budget import (
    HANDOVER_S,
    KEEP_S,
    LEAVE_MARGIN_S,
    STALE_S,
    WINDOW_S,
    Priority,
    RateBudget,
    default_write_reserve,
)
from keycrm_bridge.clock import AcceleratedClock, FakeClock

T0 = 1_800_000_000.0
W, R = Priority.WRITE, Priority.READ


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "bridge.sqlite3"


def max_in_any_window(starts: Sequence[float], window: float = WINDOW_S) -> int:
    """Largest number of starts in any half-open window [t, t + window), t ranging over every start.

    A window holding the most calls can always be slid right until it begins at a call, so checking
    the windows that begin at each call time covers every 60-second window.
    """
    ts = sorted(starts)
    return max((bisect.bisect_left(ts, t + window) - i for i, t in enumerate(ts)), default=0)


# -- basics ----------------------------------------------------------------------------------------------
def test_default_reserve() -> None:
    assert default_write_reserve(60) == 10
    assert default_write_reserve(6) == 1
    assert default_write_reserve(3) == 1
    assert default_write_reserve(1) == 0  # reads keep their one call


def test_invalid_settings(db: Path, clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        RateBudget(db, clock, per_minute=0)
    with pytest.raises(ValueError):
        RateBudget(db, clock, per_minute=5, write_reserve=5)


def test_full_budget_then_exact_wait_for_the_oldest_to_leave(db: Path, clock: FakeClock) -> None:
    with RateBudget(db, clock, per_minute=3, write_reserve=0) as budget:
        assert budget.acquire(W, "a") == T0
        clock.advance(10)
        budget.acquire(W, "b")
        clock.advance(10)
        budget.acquire(W, "c")
        clock.advance(5)  # t0 + 25, three calls in the window
        assert budget.left() == 0 and budget.used_last_minute() == 3
        assert budget.next_slot_in(W) == pytest.approx(35 + LEAVE_MARGIN_S)
        started = budget.acquire(W, "d")
        # It waited exactly until the call at t0 was 60 s old, not a second more.
        assert started == pytest.approx(T0 + 60 + LEAVE_MARGIN_S, abs=1e-6)
        assert clock.now() == started
        assert budget.next_slot_in(W) == pytest.approx(10, abs=1e-3)  # the call at t0+10 leaves next


def test_reads_leave_the_reserve_to_writes(db: Path, clock: FakeClock) -> None:
    with RateBudget(db, clock, per_minute=6) as budget:  # reserve 1: reads may use 5
        assert budget.write_reserve == 1
        assert all(budget.try_acquire(R, "GET /offers/stocks") for _ in range(5))
        assert not budget.try_acquire(R, "GET /offers/stocks")
        assert budget.left(R) == 0 and budget.left(W) == 1
        assert budget.try_acquire(W, "PUT /offers/stocks")
        assert not budget.try_acquire(W, "PUT /offers/stocks")
        assert budget.calls_by_endpoint() == {"GET /offers/stocks": 5, "PUT /offers/stocks": 1}
        snap = budget.snapshot()
        assert (snap.used_last_minute, snap.left_write, snap.left_read, snap.blocked_until, snap.waiting) == (
            6,
            0,
            0,
            None,
            0,
        )


def test_penalize_blocks_everyone_until_retry_after(db: Path, clock: FakeClock) -> None:
    with RateBudget(db, clock, per_minute=60) as budget, RateBudget(db, clock, per_minute=60) as other:
        assert budget.penalize(20) == T0 + 20
        assert other.penalize(5) == T0 + 20  # a shorter penalty never shortens the block
        assert other.blocked_until() == T0 + 20
        assert other.left() == 0
        assert not other.try_acquire(W, "x")
        started = other.acquire(W, "x")
        assert started == pytest.approx(T0 + 20)
        assert budget.blocked_until() is None
        assert budget.left() == 59


def test_old_rows_are_pruned(db: Path, clock: FakeClock) -> None:
    with RateBudget(db, clock, per_minute=60) as budget:
        for _ in range(10):
            budget.acquire(W, "x")
        clock.advance(KEEP_S + 1)
        budget.acquire(R, "y")
        rows = budget._conn.execute("SELECT count(*) FROM keycrm_calls").fetchone()[0]
        assert rows == 1
        assert budget.calls_by_endpoint(window_s=KEEP_S * 2) == {"y": 1}


# -- properties over ten simulated minutes ------------------------------------------------------------------
def random_arrivals(
    rng: random.Random, per_minute: int, load: float, write_share: float
) -> list[tuple[float, Priority]]:
    n = max(1, int(per_minute * 10 * load))
    # Bursty arrivals: most of them clumped around a few moments, the rest spread out.
    centres = [rng.uniform(0, 600) for _ in range(rng.randint(1, 5))]
    times = [
        min(600.0, max(0.0, rng.gauss(rng.choice(centres), 5))) if rng.random() < 0.6 else rng.uniform(0, 600)
        for _ in range(n)
    ]
    return sorted((T0 + t, W if rng.random() < write_share else R) for t in times)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    per_minute=st.integers(2, 30),
    load=st.floats(0.3, 3.0),
    write_share=st.floats(0.0, 0.6),
)
def test_windows_and_write_priority_under_random_concurrent_demand(
    seed: int, per_minute: int, load: float, write_share: float
) -> None:
    """Many independent callers (as threads would be): writes go first, reads take what is left.

    A discrete-event loop plays the callers: whenever the clock reaches an arrival or the moment
    the budget says a slot frees up, every waiting call tries (writes first, as ``acquire`` does
    in-process). The budget alone decides who may start.
    """
    rng = random.Random(seed)
    arrivals = random_arrivals(rng, per_minute, load, write_share)
    clock = FakeClock(T0)
    with (
        tempfile.TemporaryDirectory() as tmp,
        RateBudget(Path(tmp) / "b.sqlite3", clock, per_minute=per_minute) as budget,
    ):
        reserve = budget.write_reserve
        waiting: dict[Priority, deque[float]] = {W: deque(), R: deque()}
        started: list[tuple[float, Priority, float]] = []  # (start, priority, arrival)
        i = 0
        while i < len(arrivals) or waiting[W] or waiting[R]:
            now = clock.now()
            while i < len(arrivals) and arrivals[i][0] <= now:
                waiting[arrivals[i][1]].append(arrivals[i][0])
                i += 1
            for prio in (W, R):
                while waiting[prio] and budget.try_acquire(prio, prio.value):
                    started.append((now, prio, waiting[prio].popleft()))
                if waiting[prio]:
                    break  # a waiting write holds back every read
            moments = [arrivals[i][0]] if i < len(arrivals) else []
            for prio in (W, R):
                if waiting[prio]:
                    moments.append(now + budget.next_slot_in(prio))
                    break
            if moments:
                clock.advance(max(0.0, min(moments) - now))

    assert len(started) == len(arrivals)  # nobody starves for good
    starts = [s for s, _, _ in started]
    assert max_in_any_window(starts) <= per_minute
    assert max_in_any_window([s for s, p, _ in started if p is R]) <= per_minute - reserve
    write_starts = sorted(s for s, p, _ in started if p is W)
    for start, prio, arrival in started:
        if prio is W:
            recent = bisect.bisect_right(write_starts, arrival) - bisect.bisect_right(
                write_starts, arrival - WINDOW_S - 0.01
            )
            if recent < reserve:
                # However many reads wait, a write with reserve left starts the moment it comes.
                assert start == arrival


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), per_minute=st.integers(1, 20))
def test_blocking_acquire_never_overfills_and_waits_no_longer_than_needed(seed: int, per_minute: int) -> None:
    rng = random.Random(seed)
    arrivals = random_arrivals(rng, per_minute, load=2.0, write_share=0.3)
    clock = FakeClock(T0)
    with (
        tempfile.TemporaryDirectory() as tmp,
        RateBudget(Path(tmp) / "b.sqlite3", clock, per_minute=per_minute) as budget,
    ):
        calls: list[tuple[float, float, Priority]] = []
        for arrival, prio in arrivals:
            if clock.now() < arrival:
                clock.advance(arrival - clock.now())
            ready = clock.now()
            calls.append((ready, budget.acquire(prio, prio.value), prio))
        reserve = budget.write_reserve
    starts = [s for _, s, _ in calls]
    assert starts == sorted(starts)
    assert max_in_any_window(starts) <= per_minute
    assert max_in_any_window([s for _, s, p in calls if p is R]) <= per_minute - reserve
    for k, (ready, start, prio) in enumerate(calls):
        if start > ready:
            # It waited, so just before it started the window was full for its priority: the wait
            # ended when a slot freed up, not later.
            limit = per_minute if prio is W else per_minute - reserve
            earlier = starts[:k]
            in_window = len(earlier) - bisect.bisect_right(earlier, start - WINDOW_S - LEAVE_MARGIN_S - 0.005)
            assert in_window >= limit


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
