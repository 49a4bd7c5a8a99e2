"""The steps of each lane (``worker.LANES`` registers them) and ``Shared``, what the lanes of one worker
tell each other: wake-ups and due times, never data (that goes through the store)."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from . import approval
from .clock import Clock
from .config import Settings
from .erp.lane import erp_steps
from .errors import RETRYABLE, describe, disposition
from .events import changes_for
from .lanes import Lane, Step
from .quarantine import INTAKE, PUSH, SKUMAP, SYNC, WEBHOOK, Quarantine
from .wiring import Engines

log = logging.getLogger("keycrm_bridge.worker")

# Stock changes of a burst still going on are taken into the ledger in chunks of at least this many.
STOCK_CHUNK = 2000
RETRIES_EVERY_S = 1.0  # how often set-aside items the owner handed back are looked for


@dataclass
class Shared:
    """What lanes of one worker tell each other without the store: wake-ups, not data."""

    settings: Settings
    clock: Clock
    stop: threading.Event = field(default_factory=threading.Event)
    timers: dict[str, float] = field(default_factory=dict)
    lanes: dict[str, Lane] = field(default_factory=dict)
    decide_now: threading.Event = field(default_factory=threading.Event)  # push → sync: a burst ended
    # intake → sync: when the plugin's burst ends as the shop sent it (its newest batch's arrival plus the
    # debounce), however long this worker took to expand it: then the stock it fed is decided at once.
    decide_at: float = 0.0

    def wake(self, lane: str) -> None:
        """Hand ``lane`` work now: its idle wait ends at once."""
        if lane in self.lanes:
            self.lanes[lane].wake.set()

    def due(self, lane: str, at: float | None) -> None:
        """``lane``'s next work falls due at ``at`` (a debounce ending): it waits no longer than that."""
        if lane in self.lanes and at is not None:
            self.lanes[lane].due_at = at

    def every(self, name: str, period_s: float) -> bool:
        """True once per ``period_s`` for ``name`` (hourly prune, SKU-map refresh)."""
        now = self.clock.now()
        if period_s <= 0 or now - self.timers.get(name, -1e18) < period_s:
            return False
        self.timers[name] = now
        return True


# -- the steps of each lane ------------------------------------------------------------------------


def intake_steps(e: Engines, w: Shared) -> list[Step]:
    """Plugin batches → events and queued changes; the SKU map follows the events; set-aside retries."""
    quarantine = Quarantine(e.store, w.clock)

    def expand() -> bool:
        if not e.store.inbox_waiting():  # the idle lane's only read, without the write lock
            return False
        fresh: list[dict[str, Any]] = []
        one_by_one: list[dict[str, Any]] = []
        fed: list[int] = []
        received: list[float] = []
        two_way = w.settings.sync_mode == "two-way"

        def feed(events: list[dict[str, Any]]) -> None:
            # Stock into the ledger in the same commit as its events (what ``take_stock`` would do a
            # round later, re-reading them): the sync's own debounce is what coalesces the writes.
            e.ledger.observe_woo(events, w.clock.now(), two_way=two_way)
            fed.append(len(events))

        with e.store.transaction():  # the events, their changes, the ledger and the SKU map: one commit
            new, dup = e.store.expand_inbox(
                lambda ev: changes_for(ev, w.settings), fresh=fresh, feed=feed if approved(e, w) else None,
                received=received,
                set_aside=lambda key, reason, payload, sku: quarantine.add(INTAKE, key, reason, payload, sku))
            if e.skumap is not None and fresh:
                # Plugin events keep the SKU ↔ product id map current between REST refreshes (S16).
                ordered = sorted(fresh, key=lambda ev: (ev["occurred_at"], ev["id"]))
                try:
                    with e.store.transaction() as c:
                        e.skumap.apply_events(ordered, conn=c)
                except Exception as exc:  # noqa: BLE001 - then one by one: what the map cannot take is set aside
                    if disposition(exc) == RETRYABLE:
                        raise
                    one_by_one = ordered
        for ev in one_by_one:
            assert e.skumap is not None
            try:
                e.skumap.apply_event(ev)
            except Exception as one:  # noqa: BLE001
                if disposition(one) == RETRYABLE:
                    raise
                quarantine.add(SKUMAP, f"event:{ev.get('id')}", describe(one), ev, ev.get("sku"))
        if new or dup:
            log.debug("inbox expanded", extra={"new": new, "duplicates": dup})
        if new:
            w.wake("push")
        if fed and received:
            w.decide_at = received[0] + w.settings.push_debounce_s
            w.due("sync", w.decide_at)
            w.wake("sync")
        return bool(new or dup)

    def retries() -> bool:
        if not w.every("retries", RETRIES_EVERY_S):
            return False
        items = quarantine.due_retries((INTAKE, SKUMAP, PUSH, WEBHOOK, SYNC))
        for item in items:
            quarantine.resolved(item["id"])  # a retry that fails again sets the item aside anew
            requeue(e, w, item, quarantine)
        return bool(items)

    def prune() -> bool:
        # Hourly: the SQLite file keeps `explain`'s history for RETENTION_DAYS, not forever.
        if not w.every("prune", 3600):
            return False
        removed = e.store.prune(w.clock.now() - w.settings.retention_days * 86400)
        if any(removed.values()):
            log.info("old history pruned", extra=removed)
        return False

    return [Step("intake", expand), Step("quarantine", retries), Step("prune", prune)]


def requeue(e: Engines, w: Shared, item: dict[str, Any], quarantine: Quarantine) -> None:
    """Hand one set-aside item back to the stage it came from, as that stage takes new work."""
    stage, payload, now = item["stage"], item["payload"], w.clock.now()
    if stage == INTAKE:
        body = payload["body"] if "body" in payload and len(payload) == 1 else json.dumps({"events": [payload]})
        e.store.append_batch(body, 1, now)
    elif stage == SKUMAP and e.skumap is not None:
        try:
            e.skumap.apply_event(payload)
        except Exception as exc:  # noqa: BLE001
            quarantine.add(SKUMAP, item["key"], describe(exc), payload, item["sku"])
    elif stage == PUSH:
        e.store.conn.execute("UPDATE changes SET status = 'pending', claim_token = NULL, claimed_until = NULL,"
                             " next_attempt_at = 0 WHERE id = ?", (payload["change_id"],))
    elif stage == WEBHOOK:
        e.store.append_webhook([payload], now)
    elif stage == SYNC:
        e.ledger.mark_dirty([payload["sku"]], now)
    log.info("set-aside item handed back", extra={"stage": stage, "sku": item["sku"], "key": item["key"]})


def approved(e: Engines, w: Shared) -> bool:
    """Until the owner approved the first comparison, both sides are only read (approval.py): plugin
    events wait in the queue, KeyCRM's readings fill the ledger, nothing is written."""
    ok = approval.approved(e.store, w.settings)
    if not ok and not w.timers.get("waiting_logged"):
        log.warning("waiting for the first-sync review: nothing is written until a full resync is applied",
                    extra={"reason": approval.state(e.store, w.settings)["waiting_reason"]})
    w.timers["waiting_logged"] = 0.0 if ok else 1.0
    return ok


def keycrm_answered_step(e: Engines) -> Step:
    """Every answered KeyCRM call counts, reads too; one write per 10 s is enough for a status in seconds."""
    saved = [-1e18]

    def note() -> bool:
        ok_at = getattr(e.keycrm, "last_ok_at", None)
        if ok_at is not None and ok_at - saved[0] >= 10.0:
            saved[0] = ok_at
            if ok_at > float(e.store.get_meta("last_keycrm_success_at", 0) or 0):
                e.store.set_meta("last_keycrm_success_at", ok_at)
        return False

    return Step("keycrm-answered", note)


def catalogue_steps(e: Engines, w: Shared) -> list[Step]:
    """The WooCommerce catalogue (SKU ↔ product id), refreshed from REST in its own lane: a 100k-product
    first listing takes minutes and must not hold intake, push or the sync."""
    def refresh() -> bool:
        if e.skumap is None or e.woo is None or not w.every("skumap", w.settings.skumap_refresh_s):
            return False
        e.skumap.refresh(e.woo)
        return False

    return [Step("catalogue", refresh)]


def debounced(w: Shared, lane: str, count: int, oldest: float | None, newest: float | None) -> bool:
    """Debounce: wait for a quiet moment (or the max wait) so a burst goes out as one request; until
    then the lane waits exactly as long as that takes."""
    if not count or oldest is None or newest is None:
        return False
    now, s = w.clock.now(), w.settings
    if now - newest >= s.push_debounce_s or now - oldest >= s.push_max_wait_s:
        return True
    w.due(lane, min(newest + s.push_debounce_s, oldest + s.push_max_wait_s))
    return False


def push_steps(e: Engines, w: Shared) -> list[Step]:
    """The queue, once a burst ended (the debounce); a burst still going on has its stock changes taken
    into the ledger in chunks meanwhile, so that what is left when it ends is little."""
    def push() -> bool:
        if not approved(e, w):
            return False
        count, oldest, newest = e.store.due_window(w.clock.now())
        if debounced(w, "push", count, oldest, newest):
            ended = newest is not None and w.clock.now() - newest >= w.settings.push_debounce_s
            stock = e.push.take_stock()
            result = e.push.run_once()
            if (stock or result.pushed_stock) and ended:
                # The queue already waited for the burst to end: decide these SKUs now, not a debounce later.
                w.decide_now.set()
            if stock or result.pushed_stock:
                w.wake("sync")
            if result.claimed or stock:
                log.info("push round", extra={"stock": stock, **{k: v for k, v in vars(result).items()
                                                                   if k != "errors"}})
            return bool(result.claimed or stock)
        if count >= STOCK_CHUNK:
            return e.push.take_stock() > 0  # (the sync round's own debounce and max wait apply to these)
        return False

    return [Step("push", push)]


def sync_steps(e: Engines, w: Shared) -> list[Step]:
    """Stock decisions and the writes they call for, to KeyCRM and to WooCommerce."""
    def sync() -> bool:
        now = (w.decide_now.is_set() or (0 < w.decide_at <= w.clock.now() and not e.store.inbox_waiting())) \
            and not e.sync.held_back()
        if not approved(e, w) or not (now or e.sync.due()):
            debounced(w, "sync", *e.sync.window())  # wakes when the debounce ends, not a poll later
            if w.decide_at > w.clock.now():  # (passed, with batches waiting: the intake wakes this lane)
                w.due("sync", w.decide_at)
            return False
        w.decide_now.clear()
        w.decide_at = 0.0
        r = e.sync.run_round()
        if r.progressed or r.errors:
            log.info("sync round", extra={k: v for k, v in vars(r).items() if k != "errors"})
        return r.progressed

    return [Step("sync", sync)]


def reads_steps(e: Engines, w: Shared) -> list[Step]:
    """KeyCRM → the ledger, cheapest first: webhooks (a doorbell), the order poll, the sweep."""
    p = e.pull

    def orders() -> bool:
        if not p.orders_due():
            return False
        p.poll_orders()
        return True

    def sweep() -> bool:
        if not p.sweep_due():
            return False
        p.sweep_page()
        return True

    return [Step("webhook", lambda: p.absorb_webhooks() > 0), Step("orders", orders), Step("sweep", sweep)]


def resync_steps(e: Engines, w: Shared) -> list[Step]:
    return [Step("resync", lambda: bool(e.resync.step()) if e.resync is not None else False)]


def erp_lane_steps(e: Engines, w: Shared) -> list[Step]:
    """SYNC_MODE=erp: 1C packages and MoySklad reads into KeyCRM (erp/lane.py)."""
    return erp_steps(e, w.settings, w.clock)
