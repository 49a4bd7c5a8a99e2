"""How the paths that can wait share KeyCRM's 60 calls a minute with the paths that cannot.

Nothing here waits or calls anything: these are the rules, as functions of what the shared budget
(``budget.py``) shows, so that unit tests can check them without a clock.

* Stock writes come first. ``PUT /products/{id}`` and ``PUT /offers`` (product fields, one request
  per product for names) only take a write slot while ``STOCK_HEADROOM`` more stay free, so a shop
  importing a hundred renamed products still gets its stock into KeyCRM within seconds.
* Writes coalesce under pressure. The first few stock writes of a minute go out after the push
  debounce; once half of ``KEYCRM_WRITES_PER_MINUTE`` went out in the last minute every further
  write round waits ``60 / KEYCRM_WRITES_PER_MINUTE`` s after the previous one, so a continuous
  stream of edits costs at most that many requests a minute *over any stretch of it*, and each edit
  still lands within the gap plus the debounce. (A gap growing with the minute's count let a stream
  that had just started write at twice that rate until its first minute filled.)
* The order poll counts as a write (``keycrm_client``): it may use the write reserve, so a sweep or a
  resync that fills the reads never delays it.
* The sweep takes what is left. Its page rate is the bridge's share of the budget (all of it but
  ``BUDGET_SHARE_OTHERS``, kept for the owner's other integrations), minus the write reserve, minus
  the reads the other paths (stock reads for orders and pushes, a resync) made in the last minute,
  minus writes (and order polls) beyond the reserve. Its pages keep to a timeline (``sweep_slot``),
  so a page that starts a little late does not delay every later one.
"""

from __future__ import annotations

import math

# Write slots a product-field push always leaves free for stock writes.
STOCK_HEADROOM = 5
# Product-field requests one push round may send; the rest wait for the next round.
PRODUCT_PUTS_PER_ROUND = 2


def bridge_reads_per_minute(per_minute: int, write_reserve: int, others_share: float) -> int:
    """Reads a minute the bridge may spend when nothing is being written."""
    return max(1, math.floor(per_minute * (1.0 - others_share)) - write_reserve)


def sweep_interval_s(per_minute: int, write_reserve: int, others_share: float, other_reads_last_min: int,
                     writes_last_min: int, min_interval_s: float) -> float:
    """Seconds between two sweep pages so that the sweep uses only the reads the other paths leave."""
    left = (bridge_reads_per_minute(per_minute, write_reserve, others_share) - other_reads_last_min
            - max(0, writes_last_min - write_reserve))
    return max(min_interval_s, 60.0 / max(1, left))


def sweep_slot(last_slot: float, now: float, interval_s: float) -> float:
    """The time slot a sweep page starting ``now`` takes: one ``interval_s`` after the last one.

    Pages keep to a timeline, not to "one interval after the previous page started": a page that
    started a little late (the worker was busy, or its loop looked a moment later) does not push
    every later page back, so the sweep uses every read the budget leaves. A page more than one
    interval behind (the sweep was paused, or waited for a slot) starts a new timeline, so the sweep
    never bursts to catch up."""
    slot = last_slot + interval_s
    return slot if 0.0 <= now - slot < interval_s else now


def sweep_due_at(last_slot: float, last_page_at: float, interval_s: float) -> float:
    """When the next sweep page may start. ``last_page_at`` is the last page's start, or a later
    moment at which something paused the sweep (a resync reads everything the sweep would)."""
    if last_page_at >= last_slot + interval_s:
        return last_page_at + interval_s
    return last_slot + interval_s


def write_gap_s(writes_last_min: int, writes_per_minute: int) -> float:
    """Seconds a stock write round waits after the previous one: 0 while writes are few (a burst of
    up to half the rate goes out at once), then ``60 / writes_per_minute``."""
    if writes_last_min < max(1, writes_per_minute // 2):
        return 0.0
    return 60.0 / writes_per_minute


def product_slots(left_write: int) -> int:
    """Product-field requests that may start now without touching the stock headroom."""
    return max(0, min(PRODUCT_PUTS_PER_ROUND, left_write - STOCK_HEADROOM))


__all__ = ["PRODUCT_PUTS_PER_ROUND", "STOCK_HEADROOM", "bridge_reads_per_minute", "product_slots",
           "sweep_due_at", "sweep_interval_s", "sweep_slot",
           "write_gap_s"]
