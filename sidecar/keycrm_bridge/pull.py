"""Where KeyCRM changes come from, cheapest first (DESIGN.md "Budget").

(a) KeyCRM's stock webhook: free, within seconds; rows land in ``keycrm_inbox`` via the API.
(b) Orders: ``GET /order?filter[updated_between]`` each poll tells which SKUs' reserve moved and
    which site orders KeyCRM now shows; only those SKUs are read (≤ 50 a request).
(c) The sweep: one page of ``/offers/stocks`` at a time, paced by the reads the other paths leave
    (``pacing.py``); the safety net for receivings and edits that no order reveals.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from .aliases import Aliases
from .budget import Priority
from .clock import Clock
from .config import Settings
from .ledger import Ledger
from .pacing import sweep_due_at, sweep_interval_s, sweep_slot
from .quarantine import WEBHOOK, Quarantine
from .store import Store
from .sync import SyncEngine

log = logging.getLogger("keycrm_bridge.pull")

ORDER_OVERLAP_S = 120.0      # first check after an upgrade: from the old watermark (our clock) minus this
ORDER_FUTURE_S = 3600.0      # KeyCRM's clock may run ahead of ours: its newest orders are still in range
RECENT_ORDERS_S = 3600.0     # site orders KeyCRM showed are remembered this long, for late site events
ORDER_CHECK_MIN_GAP_S = 1.0  # a requested order check still waits this long after the previous one


def parse_keycrm_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class PullSources:
    def __init__(self, store: Store, ledger: Ledger, sync: SyncEngine, keycrm: Any, settings: Settings,
                 clock: Clock) -> None:
        self.store = store
        self.ledger = ledger
        self.sync = sync
        self.keycrm = keycrm
        self.settings = settings
        self.clock = clock

    # -- (a) webhook -----------------------------------------------------------------------------

    def absorb_webhooks(self, limit: int = 200) -> int:
        """A KeyCRM stock webhook is a doorbell, not a delivery (it is unsigned).

        Its values are believed only where they agree with what the mirror already holds of that
        offer, and then there is nothing to do; every other named offer is read from KeyCRM (≤ 50 a
        request, inside the budget) and the reading is what counts. So a forged, replayed or stale
        webhook costs reads, never stock. A row no stage could process is set aside on its own.
        """
        last_id, batches = self.store.peek_keycrm_inbox(limit)
        if not batches:
            return 0
        named: dict[str, tuple[int | None, float, float]] = {}
        quarantine = Quarantine(self.store, self.clock)
        aliases = Aliases(self.store)
        for n, (_, rows) in enumerate(batches):
            good = []
            for i, row in enumerate(rows if isinstance(rows, list) else [rows]):
                problem = webhook_row_problem(row)
                if problem:
                    quarantine.add(WEBHOOK, f"webhook:{last_id}:{n}:{i}", problem, row,
                                   row.get("sku") if isinstance(row, dict) else None)
                else:
                    good.append(row)
            for row in aliases.ours(good, confirm=False):  # (an offer KeyCRM did not rename speaks for our SKU)
                named[row["sku"]] = (row.get("offer_id"), float(row["in_stock"]), float(row["in_reserve"]))
        to_read = self._disagreeing(named)
        if to_read:
            self.sync.read_stock(to_read, source="webhook")
        self.store.drop_keycrm_inbox(last_id)
        self.store.set_meta("last_webhook_at", self.clock.now())
        return len(named)

    def _disagreeing(self, named: dict[str, tuple[int | None, float, float]]) -> list[str]:
        """The SKUs whose webhook values differ from the mirror (or that the mirror does not hold)."""
        mirror = self.store.keycrm_stock(list(named))
        wanted = set(self.settings.read_warehouse_ids)
        out = []
        for sku, (offer_id, in_stock, in_reserve) in named.items():
            per = {w: v for w, v in mirror.get(sku, {}).items() if w in wanted}
            agrees = (set(per) == wanted
                      and sum(v["quantity"] for v in per.values()) == in_stock
                      and sum(v["reserve"] for v in per.values()) == in_reserve
                      and (offer_id is None or all(v["offer_id"] in (None, offer_id) for v in per.values())))
            if not agrees:
                out.append(sku)
        return sorted(out)

    # -- (b) orders ------------------------------------------------------------------------------

    def orders_due(self) -> bool:
        now = self.clock.now()
        last = float(self.store.get_meta("orders_checked_at", 0) or 0)
        requested = float(self.store.get_meta("orders_check_requested", 0) or 0)
        if requested > last and now - last >= ORDER_CHECK_MIN_GAP_S:
            return True
        return now - last >= self.settings.order_poll_interval_s

    def poll_orders(self) -> int:
        """One order check; returns the number of order changes not seen before.

        The watermark is the newest ``updated_at`` KeyCRM has shown (its clock, not ours), and the
        next check starts at that same second: KeyCRM compares whole seconds, so an order saved later
        in that second is still caught. The orders of that second seen already are remembered by
        (id, updated_at) and skipped, so each order change is read once and its SKUs once."""
        started = self.clock.now()
        mark = self.store.get_meta("orders_watermark", None)
        if mark is None:  # first check: the last hour, as before a restart with an older layout
            polled_to = float(self.store.get_meta("orders_polled_to", 0) or 0)
            since = (polled_to - ORDER_OVERLAP_S) if polled_to else started - 3600
            seen_keys: set[str] = set()
        else:
            since = float(mark["at"])
            seen_keys = set(mark.get("seen") or [])
        recent: dict[str, float] = dict(self.store.get_meta("orders_recent", {}) or {})
        fresh: list[dict[str, Any]] = []
        newest = since
        fetched = 0
        for o in self.keycrm.iter_orders(since, started + ORDER_FUTURE_S):
            fetched += 1
            updated = parse_keycrm_time(o.get("updated_at"))
            key = f"{o.get('id')}@{o.get('updated_at')}"
            if key in seen_keys:
                continue
            fresh.append(o)
            if updated is not None:
                newest = max(newest, float(int(updated)))
            if o.get("source_uuid"):
                recent[str(o["source_uuid"])] = updated or started
        at_mark = {f"{o.get('id')}@{o.get('updated_at')}" for o in fresh
                   if int(parse_keycrm_time(o.get("updated_at")) or -1) == int(newest)}
        if int(newest) == int(since):
            at_mark |= seen_keys
        touched: set[str] = set()
        for o in fresh:
            for line in o.get("products") or []:
                sku = (line.get("offer") or {}).get("sku") or line.get("sku")
                if sku:
                    touched.add(sku)
        resolve: list[tuple[str, str, str, float]] = []
        for row in self.ledger.open_inflight():
            seen_at = recent.get(row["order_id"])
            if seen_at is None:
                if started - row["registered_at"] > self.settings.inflight_timeout_s:
                    self.ledger.resolve([(row["order_id"], row["sku"], row["kind"], row["event_at"])], started,
                                        "timeout: KeyCRM never showed the order")
                    self.store.note_unmatched(row["sku"], "woocommerce",
                                              f"site order {row['order_id']} never reached KeyCRM", None, started)
                    log.warning("site order not seen in KeyCRM; stopped holding its stock",
                                extra={"sku": row["sku"], "order_id": row["order_id"]})
                continue
            if row["kind"] == "order" or seen_at >= int(row["event_at"]):
                resolve.append((row["order_id"], row["sku"], row["kind"], row["event_at"]))
        # Read the SKUs these orders touch *after* seeing the orders, so the reading already holds
        # their reserves; only then stop subtracting them as in flight.
        to_read = sorted(touched | {k[1] for k in resolve})
        if to_read:
            self.sync.read_stock(to_read, source="order")
        if resolve:
            self.ledger.resolve(resolve, started, "KeyCRM shows the order")
        # A site order whose event reaches us after KeyCRM showed it is matched from this memory.
        keep_after = started - RECENT_ORDERS_S
        self.store.set_meta("orders_recent", {u: t for u, t in recent.items() if t >= keep_after})
        self.store.set_meta("orders_watermark", {"at": newest, "seen": sorted(at_mark)})
        self.store.set_meta("orders_checked_at", started)
        self.store.set_meta("orders_polled_to", started)
        # Every order row KeyCRM sent, repeats included: what bench/pull.py divides by the changes made.
        self.store.set_meta("orders_read", int(self.store.get_meta("orders_read", 0) or 0) + fetched)
        return len(fresh)

    # -- (c) sweep ---------------------------------------------------------------------------------

    def sweep_interval_s(self) -> float:
        """The gap to the next page: the reads the other paths left in the last minute (``pacing.py``)."""
        s = self.settings
        budget = getattr(self.keycrm, "budget", None)
        if budget is None:
            return s.sweep_page_interval_s
        now = self.clock.now()
        mine = [t for t in self.store.get_meta("sweep_recent", []) or [] if t > now - 60.0]
        reads = budget.started_last_minute(Priority.READ) - len(mine)
        return sweep_interval_s(s.rate_per_minute, budget.write_reserve, s.budget_share_others, max(0, reads),
                                budget.started_last_minute(Priority.WRITE), s.sweep_page_interval_s)

    def sweep_due(self) -> bool:
        if self.settings.sweep_page_interval_s <= 0:
            return False
        last = float(self.store.get_meta("sweep_page_at", 0) or 0)
        now = self.clock.now()
        if now - last < self.settings.sweep_page_interval_s:
            return False
        slot = float(self.store.get_meta("sweep_slot", 0) or 0)
        return now >= sweep_due_at(slot, last, self.sweep_interval_s())

    def sweep_page(self) -> int:
        now = self.clock.now()
        slot = sweep_slot(float(self.store.get_meta("sweep_slot", 0) or 0), now, self.sweep_interval_s())
        state = self.store.get_meta("sweep", {"page": 1, "started_at": now})
        rows, last_page = self.keycrm.stocks_page(int(state["page"]), details=True)
        self.sync.absorb_stock_rows(rows, "sweep")
        if last_page:
            self.store.set_meta("sweep_completed", {"at": now, "duration_s": now - state["started_at"],
                                                    "pages": state["page"]})
            state = {"page": 1, "started_at": now}
        else:
            state = {"page": int(state["page"]) + 1, "started_at": state["started_at"]}
        self.store.set_meta("sweep", state)
        self.store.set_meta("sweep_page_at", now)
        self.store.set_meta("sweep_slot", slot)
        recent = [t for t in self.store.get_meta("sweep_recent", []) or [] if t > now - 60.0]
        self.store.set_meta("sweep_recent", [*recent, now])
        return len(rows)

    # -- one tick ------------------------------------------------------------------------------------

    def tick(self) -> bool:
        worked = self.absorb_webhooks() > 0
        if self.orders_due():
            self.poll_orders()
            worked = True
        if self.sweep_due():
            self.sweep_page()
            worked = True
        return worked


MAX_WEBHOOK_QUANTITY = 1e9
MAX_ID = 2**53 - 1


def webhook_row_problem(row: Any) -> str | None:
    """Why a stored webhook row cannot be processed, or None (the door's bounds, checked per row again)."""
    if not isinstance(row, dict):
        return "webhook row is not an object"
    sku = row.get("sku")
    if not isinstance(sku, str) or not sku.strip() or len(sku) > 255:
        return "webhook row has no usable sku"
    try:
        sku.encode("utf-8")
    except UnicodeEncodeError:
        return "webhook row's sku is not valid Unicode"
    offer_id = row.get("offer_id")
    if offer_id is not None and (isinstance(offer_id, bool) or not isinstance(offer_id, int)
                                 or not 1 <= offer_id <= MAX_ID):
        return "webhook row's offer_id is not an id"
    for k in ("in_stock", "in_reserve"):
        v = row.get(k)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or abs(v) > MAX_WEBHOOK_QUANTITY:
            return f"webhook row's {k} is not a finite quantity"
    return None


__all__ = ["PullSources", "parse_keycrm_time", "webhook_row_problem"]
