"""The sync round: decide every dirty SKU, then write both sides in as few requests as they allow
(the writes: ``sync_writes.py``).

KeyCRM writes go out as one ``PUT /offers/stocks`` per 10,000 rows, WooCommerce writes as batches
of 100, each conditional on the value the decision was made on (a sale landing in between is never
erased; ``woo_conflicts``). The arithmetic is ``decide.decide``; this module adds what touches the network: reading
KeyCRM before writing it where a concurrent change could be lost (two-way), holding SKUs whose site
orders KeyCRM may just have reserved until the orders are checked, and the guard against a cycle
that would empty a large part of the shop (S13).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import exclusions, latency
from .aliases import Aliases
from .budget import Priority
from .clock import Clock
from .config import Settings
from .decide import Decision, decide
from .errors import RETRYABLE, RetryableError, describe, disposition
from .guard import Guard, act_on_answers, answered, cuts_of
from .ledger import Ledger, Row, seqs_read
from .pacing import write_gap_s
from .quarantine import SYNC, Quarantine
from .store import Store
from .sync_writes import SyncWrites
from .woo_conflicts import WooConflicts

log = logging.getLogger("keycrm_bridge.sync")

STALL_BACKOFF_S = (15.0, 300.0)  # first and longest wait after a round that could settle nothing


class KeyCRMStock(Protocol):
    def iter_stocks(self, skus: list[str] | None = None, offer_ids: list[int] | None = None,
                    details: bool = True) -> Iterable[dict[str, Any]]: ...
    def put_stocks(self, warehouse_id: int, rows: list[dict[str, Any]]) -> Any: ...


@dataclass
class RoundResult:
    decided: int = 0
    keycrm_rows: int = 0
    woo_writes: int = 0
    held_for_orders: int = 0
    guarded: int = 0
    unmatched: int = 0
    settled: int = 0  # SKUs that left the dirty set this round (written, in agreement, or set aside)
    unwritable: int = 0  # writes dropped because that side cannot be written at all (no WooCommerce)
    excluded: int = 0  # SKUs the owner excluded from sync: read, not written
    errors: list[str] = field(default_factory=list)

    @property
    def progressed(self) -> bool:
        return bool(self.settled or self.keycrm_rows or self.woo_writes or self.guarded)

    @property
    def stalled(self) -> bool:
        """Nothing moved, and only because a side cannot be written: not worth another round soon.

        SKUs waiting for an order check or decided again because KeyCRM moved meanwhile are
        work for the next round, not a stall."""
        return not self.progressed and self.unwritable > 0 and not self.held_for_orders


class SyncEngine(SyncWrites):
    def __init__(self, store: Store, ledger: Ledger, keycrm: KeyCRMStock, settings: Settings, clock: Clock,
                 woo: Any = None, skumap: Any = None, rng: random.Random | None = None,
                 before_woo_write: Callable[[list[Any]], None] | None = None) -> None:
        self.store = store
        self.ledger = ledger
        self.keycrm = keycrm
        self.settings = settings
        self.clock = clock
        self.woo = woo
        self.skumap = skumap
        self.rng = rng or random.Random()
        self._guarded: set[str] = set()
        self._round_at = -1e18  # when the last round that decided anything started
        self.conflicts = WooConflicts(store, clock)
        # Called with the writes between the decision and the WooCommerce write (the race tests hold it).
        self.before_woo_write = before_woo_write

    # -- KeyCRM reads into the mirror and the ledger ----------------------------------------------

    def sellable_of(self, per_wh: dict[int, dict[str, Any]]) -> float:
        return float(sum(w["quantity"] - w["reserve"] for wid, w in per_wh.items()
                         if wid in self.settings.read_warehouse_ids))

    def absorb_stock_rows(self, items: Iterable[dict[str, Any]], source: str,
                          wanted: set[str] | None = None) -> set[str]:
        """Store ``GET /offers/stocks`` rows (with details) in the mirror and the ledger."""
        now = self.clock.now()
        rows: list[tuple[str, int, int | None, float, float]] = []
        sellable: dict[str, float] = {}
        all_wh = {self.settings.write_warehouse_id, *self.settings.read_warehouse_ids}
        for item in Aliases(self.store).ours(items):
            sku = item.get("sku")
            if not sku or (wanted is not None and sku not in wanted):
                continue
            per: dict[int, dict[str, Any]] = {}
            for w in item.get("warehouse") or []:
                per[int(w["id"])] = {"quantity": float(w.get("quantity") or 0), "reserve": float(w.get("reserve") or 0)}
            for w_id in all_wh - set(per):
                per[w_id] = {"quantity": 0.0, "reserve": 0.0}  # a warehouse without the offer holds none
            rows += [(sku, w_id, item.get("id"), v["quantity"], v["reserve"]) for w_id, v in per.items()]
            sellable[sku] = self.sellable_of(per)
        self.store.save_keycrm_stock(rows, now)
        if sellable:
            self.ledger.observe_keycrm(sellable, now, source)
            self.store.set_meta("last_keycrm_success_at", now)
        return set(sellable)

    def read_stock(self, skus: list[str], source: str = "read") -> set[str]:
        """Read these SKUs from KeyCRM (≤ 50 a request). Returns those KeyCRM has."""
        if not skus:
            return set()
        aliases = Aliases(self.store).all()
        plain = [s for s in skus if s not in aliases]
        items: Iterable[dict[str, Any]] = self.keycrm.iter_stocks(skus=plain, details=True) if plain else []
        by_id = [aliases[s].offer_id for s in skus if s in aliases]
        if by_id:  # KeyCRM kept the old SKU of these: read their offers by id
            items = [*items, *self.keycrm.iter_stocks(offer_ids=by_id, details=True)]
        return self.absorb_stock_rows(items, source, set(skus))

    # -- the round --------------------------------------------------------------------------------

    def window(self) -> tuple[int, float | None, float | None]:
        """(dirty SKUs, since when the oldest waits, the newest mark): the debounce's inputs. A mark
        that came during the last round waits from that round on, not from before it, so a
        continuous stream gets a round per max wait rather than one after the other; and changes
        still queued for the ledger count as marks, so a burst taken in chunks is one burst."""
        count, oldest, newest = self.ledger.dirty_window()
        if oldest is not None:
            oldest = max(oldest, self._round_at)
        queued, _, received = self.store.due_window(self.clock.now())
        if count and queued and received is not None:
            newest = max(newest or received, received)  # the shop is still sending: the burst goes on
        if count and self.store.inbox_waiting():
            newest = self.clock.now()  # batches not expanded yet: the burst is not over for the ledger
        return count, oldest, newest

    def due(self) -> bool:
        count, oldest, newest = self.window()
        if not count or oldest is None or newest is None:
            return answered(self.ledger) != []
        if self.held_back():
            return False
        now = self.clock.now()
        return now - newest >= self.settings.push_debounce_s or now - oldest >= self.settings.push_max_wait_s

    def held_back(self) -> bool:
        """A failed round's back-off, or the SKUs that could not be written last time and no mark newer
        (by number, not time) since: even a burst that ended (``Shared.decide_at``) waits."""
        now = self.clock.now()
        if self.store.get_meta("sync_retry_at", 0) > now:
            return True
        stalled = self.store.get_meta("sync_stalled")
        return bool(stalled and now < stalled["until"] and self.ledger.newest_mark() <= stalled.get("seq", -1))

    def _paced(self, now: float) -> bool:
        """A stream of edits: the next KeyCRM write round waits the widening gap (``pacing.py``)."""
        budget = getattr(self.keycrm, "budget", None)
        if not self.settings.pushes_stock or budget is None:
            return False
        writes = budget.started_last_minute(Priority.WRITE, reads_too=False)  # not the order polls
        gap = write_gap_s(writes, self.settings.keycrm_writes_per_minute)
        return gap > 0 and now - float(self.store.get_meta("last_stock_write_at", 0) or 0) < gap

    def run_round(self, limit: int = 10000) -> RoundResult:
        result = RoundResult()
        started = self.clock.now()
        bypass = act_on_answers(self.ledger, started)
        read = self.ledger.dirty(limit)  # each SKU's mark as read: what this round may clear
        skus = list(read)
        if not skus or (not bypass and self._paced(started)):
            return result
        self._round_at = started
        try:
            self._round_isolating(skus, read, started, bypass, result)
            if self.store.get_meta("sync_retry_at", 0):  # (a read: no write lock taken every round)
                self.store.set_meta("sync_retry_at", 0)
            self._note_stall(result)
        except RetryableError as exc:
            failures = int(self.store.get_meta("sync_failures", 0))
            wait = min(300.0, 2.0 ** min(failures, 8)) * (0.5 + self.rng.random() / 2)
            if exc.retry_after:
                wait = max(wait, exc.retry_after)
            self.store.set_meta("sync_failures", int(self.store.get_meta("sync_failures", 0)) + 1)
            self.store.set_meta("sync_retry_at", self.clock.now() + wait)
            self.store.set_meta("last_error", {"at": self.clock.now(), "stage": "sync", "error": str(exc)[:500]})
            result.errors.append(str(exc))
            log.warning("sync round will be retried", extra={"retry_in_s": round(wait, 1), "error": str(exc)[:300]})
            return result
        if self.store.get_meta("sync_failures", 0):
            self.store.set_meta("sync_failures", 0)
        return result

    def _note_stall(self, result: RoundResult) -> None:
        """SKUs that stay dirty without anything written (no WooCommerce to write to, waiting for
        orders) are not work: the next round waits, longer each time, unless a new change arrives."""
        if not result.stalled:
            if self.store.get_meta("sync_stalled") is not None:
                self.store.set_meta("sync_stalled", None)
            return
        prev = self.store.get_meta("sync_stalled") or {}
        first, longest = STALL_BACKOFF_S
        wait = min(longest, float(prev.get("wait_s", first / 2)) * 2)
        self.store.set_meta("sync_stalled", {"until": self.clock.now() + wait, "seq": self.ledger.newest_mark(),
                                             "wait_s": wait, "skus": result.decided})

    def _round_isolating(self, skus: list[str], read: dict[str, int], started: float, bypass: set[str],
                         result: RoundResult) -> None:
        """A round for these SKUs; one that fails for a reason that is not the peer's is halved until
        the SKU(s) causing it stand alone, which are set aside (quarantine) while the rest are synced."""
        parts = [skus]
        while parts:
            part = parts.pop(0)
            try:
                self._round(part, read, started, bypass, result)
            except Exception as exc:
                if disposition(exc) == RETRYABLE:
                    raise
                if len(part) > 1:
                    parts[:0] = [part[:len(part) // 2], part[len(part) // 2:]]
                    continue
                reason = describe(exc)
                log.exception("sync of one SKU failed; set aside", extra={"sku": part[0]})
                Quarantine(self.store, self.clock).add(SYNC, f"sku:{part[0]}", reason, {"sku": part[0]}, part[0])
                self.store.set_meta("last_error", {"at": self.clock.now(), "stage": "sync", "error": reason})
                # Not decided again until it changes again (or the owner retries it): a change since
                # the round's read has a newer mark, which stays and is tried again.
                self.ledger.clean(part, read)
                result.errors.append(reason)

    def _round(self, skus: list[str], read: dict[str, int], started: float, bypass: set[str],
               result: RoundResult) -> None:
        mode = self.settings.sync_mode
        off = exclusions.excluded_among(self.store.conn, skus)
        if off:
            # Read, never written: leaves the dirty set now and is decided again when switched back on.
            # (A switch back on since the read is a newer mark: it stays.)
            result.settled += self.ledger.clean(off, read)
            result.excluded += len(off)
            skus = [s for s in skus if s not in off]
        rows = self.ledger.rows(skus)
        unknown = [s for s in skus if rows[s].kc_sellable is None and s.strip()]
        if unknown:
            found = self.read_stock(unknown)
            missing = [s for s in unknown if s not in found]
            self._unmatched(missing, "woocommerce", "SKU not found in KeyCRM", result, rows)
            rows = self.ledger.rows(skus)
        empty = [s for s in skus if not s.strip()]
        result.settled += self.ledger.clean(empty, read)
        inflight = self.ledger.inflight(skus)
        checked_at = float(self.store.get_meta("orders_checked_at", 0) or 0)
        self._know_woo([s for s in skus if s.strip() and rows[s].woo_stock is None], mode)
        decisions: dict[str, Decision] = {}
        woo_now: dict[str, float | None] = {}
        hold_orders: list[str] = []
        met = self.conflicts.skus()  # (read once a round, not once a SKU)
        for sku in skus:
            r = rows[sku]
            if not sku.strip() or r.kc_sellable is None:
                continue
            inf = inflight.get(sku, 0.0)
            # KeyCRM moved after the last order check while a site order is in flight: the move may
            # be that order's reserve, so subtracting the order too would count it twice. Wait for
            # the order check (requested now, answered within seconds) before deciding.
            if inf and (r.kc_at or 0) > checked_at:
                hold_orders.append(sku)
                continue
            verdict, shop_value = self.conflicts.check(sku, r) if sku in met else ("decide", None)
            if verdict == "wait":
                continue  # stays dirty: the shop's event for the change it met is on its way
            if verdict == "read":
                self.ledger.set_values([(sku, shop_value, None, None, None, None)], started)
                self.ledger.note(sku, started, "woo", {"cause": "read-after-conflict", "stock": shop_value})
            woo = woo_now[sku] = shop_value if verdict == "read" else (
                r.woo_stock if r.woo_stock is not None else self._woo_known(sku))
            agreed, base_woo, base_kc = r.agreed, r.base_woo, r.base_kc
            if mode == "two-way" and agreed is None and woo is not None:
                agreed, base_woo, base_kc = self._first_contact(sku, r, woo, r.kc_sellable - inf)
            d = decide(mode, woo=woo, kc=r.kc_sellable, agreed=agreed, inflight=inf,
                       buffer=self.settings.safety_buffer if mode in ("keycrm", "erp") else 0.0,
                       base_woo=base_woo, base_kc=base_kc)
            decisions[sku] = d
        result.decided += len(decisions)
        if hold_orders:
            self.store.set_meta("orders_check_requested", started)
            result.held_for_orders = len(hold_orders)
        kc_writes = {s: d for s, d in decisions.items() if d.kc_target is not None}
        woo_writes = {s: d for s, d in decisions.items() if d.woo_target is not None}
        if woo_writes and not self._can_write_woo():
            result.unwritable += len(woo_writes)
            woo_writes = {}
        woo_writes, kc_writes = self._guard(woo_writes, kc_writes, woo_now, rows, bypass, result)
        written_kc = self._write_keycrm(kc_writes, rows, result)
        if mode == "two-way":
            # KeyCRM moved while we decided: decide both sides again next round, not one now.
            woo_writes = {s: d for s, d in woo_writes.items() if s not in kc_writes or s in written_kc}
        written_woo: set[str] = set()
        try:
            written_woo = self._write_woo(woo_writes, woo_now, rows, result)
        finally:
            # Also when WooCommerce failed: what KeyCRM took must be on record before we go on.
            result.settled += self._record(decisions, woo_now, rows, inflight, kc_writes, written_kc, woo_writes,
                                           written_woo)

    def _record(self, decisions: dict[str, Decision], woo_now: dict[str, float | None], rows: dict[str, Row],
                inflight: dict[str, float], kc_writes: dict[str, Decision], written_kc: set[str],
                woo_writes: dict[str, Decision], written_woo: set[str]) -> int:
        now = self.clock.now()
        mode = self.settings.sync_mode
        updates, notes, done = [], [], []
        for sku, d in decisions.items():
            kc_ok = d.kc_target is None or sku in written_kc
            woo_ok = d.woo_target is None or sku in written_woo
            observed_kc = (rows[sku].kc_sellable or 0.0) - inflight.get(sku, 0.0)
            updates.append((sku, d.woo_target if sku in written_woo else None,
                            d.kc_target if sku in written_kc else None, d.agreed,
                            d.agreed if woo_ok else woo_now.get(sku), d.agreed if kc_ok else observed_kc))
            if not (kc_ok and woo_ok) or sku in self._guarded:
                continue  # stays dirty: decided again next round with what each side shows then
            notes.append((sku, "decision", {"mode": mode, "woo": woo_now.get(sku), "kc": rows[sku].kc_sellable,
                                            "agreed": rows[sku].agreed, "inflight": inflight.get(sku, 0.0),
                                            "woo_target": d.woo_target, "kc_target": d.kc_target,
                                            "reason": d.reason}))
            done.append(sku)
        # How long each write took from the change it carries; one commit with the values (latency.py).
        push = [now - at for at in (rows[s].woo_at for s in written_kc) if at is not None]
        pull = [now - at for at in (rows[s].kc_at for s in written_woo) if at is not None]
        # (decided_on: keeps what other lanes wrote meanwhile.)
        self.ledger.set_values(updates, now, also=lambda c: latency.record_both(c, push, pull), decided_on=rows)
        self.ledger.notes(notes, now)
        settled = self.ledger.clean(done, seqs_read(rows, done))  # the marks decided on; newer ones stay
        if written_kc:
            self.store.set_meta("last_push_at", now)
        if written_woo:
            self.store.set_meta("last_pull_at", now)
        return settled

    def _first_contact(self, sku: str, r: Row, woo: float, effective: float
                       ) -> tuple[float | None, float | None, float | None]:
        """Two-way, nothing agreed yet: whose value stands?

        The side that just *told* us of a change wins: a KeyCRM webhook or order (a receiving) over
        a WooCommerce value we only read, a plugin event over a KeyCRM value we only read. When both
        or neither did, decide() takes the lower value, which never lists units nobody has.
        """
        kc_signal = any(h["kind"] == "keycrm" and h.get("source") in ("webhook", "order")
                        for h in self.ledger.history(sku, 20))
        woo_signal = r.woo_stock is not None  # only plugin events put a WooCommerce value in the ledger
        if kc_signal and not woo_signal:
            return woo, woo, woo              # KeyCRM's change is the delta: merged = KeyCRM's value
        if woo_signal and not kc_signal:
            return effective, effective, effective  # WooCommerce's change is the delta
        return None, None, None

    def _know_woo(self, unknown: list[str], mode: str) -> None:
        """Before deciding a write into WooCommerce, learn the shop's value of SKUs the SKU map has not seen
        yet (one incremental refresh): the write is conditional on it, and a two-way merge needs it."""
        if mode not in ("keycrm", "erp", "two-way") or self.woo is None or self.skumap is None:
            return
        missing = [s for s in unknown if self._woo_known(s) is None and self.skumap.get(s) is None]
        if missing:
            self._look_up_woo(missing)

    def _look_up_woo(self, skus: list[str]) -> None:
        assert self.skumap is not None
        if self.skumap.watermark is None and hasattr(self.woo, "find_by_skus"):
            # The first full listing is still running in the catalogue lane (minutes for 100,000
            # products): look these SKUs up by SKU rather than list the whole shop again here.
            self.skumap.learn(self.woo, skus)
        else:
            self.skumap.refresh(self.woo)  # incremental: products created since the last look

    def _woo_known(self, sku: str) -> float | None:
        if self.skumap is None:
            return None
        entry = self.skumap.get(sku)
        return None if entry is None else entry.stock_quantity

    # -- the guard (guard.py) ---------------------------------------------------------------------

    def _guard(self, woo_writes: dict[str, Decision], kc_writes: dict[str, Decision],
               woo_now: dict[str, float | None], rows: dict[str, Row], bypass: set[str],
               result: RoundResult) -> tuple[dict[str, Decision], dict[str, Decision]]:
        """Hold the cuts of a round that would empty or halve a large share of the matched SKUs, on
        either side; what is held is written to neither side until the owner answers."""
        kc_now = {s: rows[s].kc_sellable for s in kc_writes}
        cuts = {"woocommerce": cuts_of(woo_writes, woo_now, "woo_target", bypass),
                "keycrm": cuts_of(kc_writes, kc_now, "kc_target", bypass)}
        self._guarded = Guard(self.store, self.ledger, self.settings, self.clock).check(cuts) \
            if cuts["woocommerce"] or cuts["keycrm"] else set()
        result.guarded += len(self._guarded)
        return ({s: d for s, d in woo_writes.items() if s not in self._guarded},
                {s: d for s, d in kc_writes.items() if s not in self._guarded})
