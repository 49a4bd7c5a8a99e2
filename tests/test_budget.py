"""The one KeyCRM rate budget: a sliding 60-second window stored in SQLite, on a FakeClock (sleep
advances it): its rules, and properties over ten simulated minutes of random demand. Threads and
processes sharing it are test_budget_sharing.py's.
"""

from __future__ import annotations

import bisect
import random
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keycrm_bridge.budget import (
    KEEP_S,
    LEAVE_MARGIN_S,
    WINDOW_S,
    Priority,
    RateBudget,
    default_write_reserve,
)
from keycrm_bridge.clock import FakeClock

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
