"""The rules that share KeyCRM's budget between stock writes, product fields and the sweep."""

from __future__ import annotations

from keycrm_bridge.budget import Priority, RateBudget
from keycrm_bridge.clock import FakeClock
from keycrm_bridge.pacing import (
    STOCK_HEADROOM,
    bridge_reads_per_minute,
    product_slots,
    sweep_due_at,
    sweep_interval_s,
    sweep_slot,
    write_gap_s,
)


def test_a_stream_of_edits_is_coalesced_to_a_bounded_write_rate_and_each_edit_lands_within_the_gap(tmp_path):
    clock = FakeClock()
    budget = RateBudget(tmp_path / "b.sqlite3", clock, per_minute=60)
    t0 = clock.now()
    pending: list[float] = []           # edit times not yet written
    latencies: list[float] = []
    writes: list[float] = []
    last_write = -1e9
    next_edit = t0
    while clock.now() < t0 + 180:
        now = clock.now()
        while next_edit <= now:          # 150 edits a minute to distinct SKUs
            pending.append(next_edit)
            next_edit += 0.4
        gap = write_gap_s(budget.started_last_minute(Priority.WRITE), 20)
        if pending and now - last_write >= gap:
            budget.acquire(Priority.WRITE, "PUT /offers/stocks")
            writes.append(now)
            latencies += [now - t for t in pending]
            pending, last_write = [], now
        clock.advance(0.1)
    steady = [t for t in writes if t > t0 + 120]
    assert len(steady) <= 20, f"{len(steady)} writes in the last minute"
    # Bounded over short stretches too, from the moment the burst allowance is spent: a stream that
    # has just started must not write at twice the rate until its first minute fills.
    after_burst = writes[10:]
    for i, t in enumerate(after_burst):
        in_6s = [u for u in after_burst[i:] if u < t + 6.0]
        assert len(in_6s) <= 2, f"{len(in_6s)} writes within 6 s at {t - t0:.1f} s"
    assert max(latencies) <= 3.1
    assert len(writes) <= 10 + 3 * 20, "a burst of 10 at first, then 20 a minute"


def test_few_edits_go_out_at_once():
    assert write_gap_s(0, 20) == 0.0 and write_gap_s(9, 20) == 0.0
    assert write_gap_s(10, 20) == write_gap_s(20, 20) == 3.0 == write_gap_s(45, 20)


def test_the_sweep_takes_only_what_the_other_paths_leave():
    # 60 a minute, 10 reserved for writes, 10 % for the owner's other integrations: 44 reads.
    assert bridge_reads_per_minute(60, 10, 0.1) == 44
    idle = sweep_interval_s(60, 10, 0.1, other_reads_last_min=6, writes_last_min=0, min_interval_s=1.0)
    busy = sweep_interval_s(60, 10, 0.1, other_reads_last_min=12, writes_last_min=0, min_interval_s=1.0)
    assert abs(idle - 60 / 38) < 1e-9 and abs(busy - 60 / 32) < 1e-9
    # Writes inside the reserve cost the sweep nothing; beyond it they do.
    assert sweep_interval_s(60, 10, 0.1, 6, 10, 1.0) == idle
    assert sweep_interval_s(60, 10, 0.1, 6, 30, 1.0) == 60 / 18
    # Never faster than the configured floor, never stopped entirely.
    assert sweep_interval_s(600, 100, 0.0, 0, 0, 1.0) == 1.0
    assert sweep_interval_s(60, 10, 0.1, 500, 0, 1.0) == 60.0


def test_sweep_pages_keep_to_a_timeline_so_late_starts_do_not_add_up():
    interval = 60 / 44
    # A worker that looks 0.25 s late every time still gets 44 pages a minute, never more.
    slot, last, pages, now = 0.0, 0.0, 0, 1000.0
    while now < 1060.0:
        due = sweep_due_at(slot, last, interval)
        now = max(now, due) + 0.25  # the loop looks a moment after the page was due
        if now >= 1060.0:
            break
        slot, last, pages = sweep_slot(slot, now, interval), now, pages + 1
    assert pages == 44
    # Paused (a resync touched the last-page time): one interval after the pause, then a new timeline.
    assert sweep_due_at(100.0, 200.0, interval) == 200.0 + interval
    assert sweep_slot(100.0, 200.0 + interval, interval) == 200.0 + interval
    # Far behind: no burst to catch up.
    assert sweep_slot(100.0, 100.0 + 5 * interval, interval) == 100.0 + 5 * interval


def test_product_fields_never_take_the_stock_headroom():
    assert product_slots(60) == 2
    assert product_slots(STOCK_HEADROOM + 1) == 1
    assert product_slots(STOCK_HEADROOM) == 0 == product_slots(0)
