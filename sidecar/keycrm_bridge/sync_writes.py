"""The sync round's writes: one ``PUT /offers/stocks`` per 10,000 rows into KeyCRM (read first where the
mirror is old: the quantity it sets is absolute), WooCommerce batches conditional on the value decided
on (``woo_conflicts``), and SKUs either side cannot take set aside as unmatched. ``SyncEngine`` holds
these methods (a mixin over the same store, ledger and clients)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .aliases import Aliases
from .config import Settings
from .decide import Decision, json_number
from .errors import PermanentError, RetryableError
from .ledger import Ledger, Row, seqs_read
from .store import Store
from .woo_conflicts import WooConflicts

if TYPE_CHECKING:
    from .clock import Clock
    from .sync import KeyCRMStock, RoundResult

log = logging.getLogger("keycrm_bridge.sync")


class SyncWrites:
    store: Store
    ledger: Ledger
    keycrm: KeyCRMStock
    settings: Settings
    clock: Clock
    woo: Any
    skumap: Any
    conflicts: WooConflicts
    before_woo_write: Callable[[list[Any]], None] | None

    def read_stock(self, skus: list[str], source: str = "read") -> set[str]:
        raise NotImplementedError  # SyncEngine's

    def _look_up_woo(self, skus: list[str]) -> None:
        raise NotImplementedError  # SyncEngine's

    def sellable_of(self, per_wh: dict[int, dict[str, Any]]) -> float:
        raise NotImplementedError  # SyncEngine's

    def _can_write_woo(self) -> bool:
        if self.woo is None or self.skumap is None:
            if not self.store.get_meta("woo_missing_warned"):
                log.warning("WooCommerce is not configured (WOO_URL): KeyCRM stock is not written back")
                self.store.set_meta("woo_missing_warned", True)
            return False
        return True

    def _write_keycrm(self, writes: dict[str, Decision], rows: dict[str, Row], result: RoundResult) -> set[str]:
        if not writes:
            return set()
        now = self.clock.now()
        skus = list(writes)
        mirror = self.store.keycrm_stock(skus)
        max_age = 0.0 if self.settings.sync_mode == "two-way" else self.settings.stock_max_age_s
        # (A webhook that cannot be split per warehouse marks the mirror rows old: pull.absorb_webhooks.)
        stale = [s for s in skus if s not in mirror
                 or min(w["fetched_at"] for w in mirror[s].values()) < now - max_age]
        if stale:
            # Read before write: PUT /offers/stocks sets an absolute quantity, so writing from an
            # old reading would erase a receiving that happened since.
            before = {s: rows[s].kc_sellable for s in stale}
            self.read_stock(stale, source="read-before-write")
            fresh = self.ledger.rows(stale)
            moved = {s for s in stale if fresh[s].kc_sellable != before[s]}
            for s in moved:
                writes.pop(s, None)  # KeyCRM changed meanwhile: decide again next round
            mirror = self.store.keycrm_stock(list(writes))
        wh = self.settings.write_warehouse_id
        aliases = Aliases(self.store).all()
        ours = {a.offer_id: a.sku for a in aliases.values()}
        put_rows: list[dict[str, Any]] = []
        planned: dict[str, tuple[float, float]] = {}
        for sku, d in writes.items():
            per = mirror.get(sku)
            if not per:
                continue
            assert d.kc_target is not None
            q_write = per.get(wh, {}).get("quantity", 0.0)
            new_q = q_write + (d.kc_target - self.sellable_of(per))
            if new_q < 0:
                log.warning("target below what other warehouses hold; clamping at 0", extra={"sku": sku})
                new_q = 0.0
            alias = aliases.get(sku)
            put_rows.append({"id": alias.offer_id, "quantity": json_number(new_q)} if alias
                            else {"sku": sku, "quantity": json_number(new_q)})
            planned[sku] = (new_q, per.get(wh, {}).get("reserve", 0.0))
        if not put_rows:
            return set()
        self.store.set_meta("last_stock_write_at", self.clock.now())
        ok, bad = self._put_isolating(put_rows)
        ok_skus = {r["sku"] if "sku" in r else ours[r["id"]] for r in ok}
        self.store.save_keycrm_stock([(s, wh, None, planned[s][0], planned[s][1]) for s in ok_skus], self.clock.now())
        self.store.clear_unmatched(ok_skus)
        for row, why in bad:
            sku_of = row["sku"] if "sku" in row else ours[row["id"]]
            self._unmatched([sku_of], "woocommerce", f"KeyCRM rejected the stock row: {why}"[:300], result, rows)
        if ok_skus:
            self.store.set_meta("last_keycrm_success_at", self.clock.now())
        result.keycrm_rows += len(ok_skus)
        log.info("KeyCRM stock written", extra={"rows": len(ok_skus), "skus": sorted(ok_skus)[:20], "warehouse_id": wh})
        return ok_skus

    def _put_isolating(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[dict, str]]]:
        """PUT the rows; when KeyCRM rejects a batch (422), halve it to find the bad rows.

        Costs one extra request per halving, only when something is wrong, and lets every good row
        through instead of failing the whole batch for one bad SKU.
        """
        try:
            self.keycrm.put_stocks(self.settings.write_warehouse_id, rows)
            return rows, []
        except PermanentError as exc:
            if exc.status in (401, 403):
                raise RetryableError(f"KeyCRM refused the API key: {exc}", status=exc.status) from exc
            if len(rows) == 1:
                return [], [(rows[0], str(exc))]
            mid = len(rows) // 2
            ok1, bad1 = self._put_isolating(rows[:mid])
            ok2, bad2 = self._put_isolating(rows[mid:])
            return ok1 + ok2, bad1 + bad2

    def _write_woo(self, writes: dict[str, Decision], woo_now: dict[str, float | None], rows: dict[str, Row],
                   result: RoundResult) -> set[str]:
        if not writes:
            return set()
        from .woo_client import StockWrite

        entries = {s: self.skumap.get(s) for s in writes}
        missing = [s for s, e in entries.items() if e is None]
        if missing:
            self._look_up_woo(missing)
            entries.update({s: self.skumap.get(s) for s in missing})
        items = []
        for sku, e in entries.items():
            if e is None:
                self._unmatched([sku], "keycrm", "SKU not found in WooCommerce", result, rows)
                continue
            if not e.manage_stock:
                self._unmatched([sku], "keycrm", "stock is not managed in WooCommerce for this product", result,
                                rows)
                continue
            target = writes[sku].woo_target
            assert target is not None
            # Conditional on what the decision saw, or (when it saw nothing) on what the SKU map knows.
            expect = woo_now.get(sku)
            items.append(StockWrite(product_id=e.product_id, parent_id=e.parent_id, quantity=target, sku=sku,
                                    expect=e.stock_quantity if expect is None else expect))
        if not items:
            return set()
        if self.before_woo_write is not None:
            self.before_woo_write(items)
        ok: set[str] = set()
        met: dict[str, tuple[float, float | None, Row]] = {}
        for res in self.woo.set_stock(items):
            sku = res.write.sku or ""
            if res.conflict and res.write.expect is None:
                # We did not know the shop's value: now we do; the next round decides on it.
                self.skumap.record_stock(res.write.product_id, res.stock_quantity)
            elif res.conflict:
                met[sku] = (float(res.stock_quantity or 0), res.write.expect, rows[sku])
            elif res.ok:
                ok.add(sku)
                # WooCommerce's own clock: later plugin events are compared against it.
                self.skumap.record_stock(res.write.product_id, res.write.quantity, res.date_modified)
            else:
                self._unmatched([sku], "keycrm", f"WooCommerce refused the stock write: {res.error}"[:300], result,
                                rows)
        self.conflicts.record(met)
        result.woo_writes += len(ok)
        log.info("WooCommerce stock written", extra={"products": len(ok), "skus": sorted(ok)[:20]})
        return ok

    def _unmatched(self, skus: list[str], side: str, reason: str, result: RoundResult,
                   read: dict[str, Row]) -> None:
        """Set aside: listed as unmatched, its mark as ``read`` (the round's rows) cleared."""
        if not skus:
            return
        now = self.clock.now()
        for sku in skus:
            entry = self.skumap.get(sku) if self.skumap is not None else None
            self.store.note_unmatched(sku, side, reason, entry.product_id if entry else None, now)
            log.warning("SKU set aside", extra={"sku": sku, "reason": reason})
        # Not retried forever: the SKU waits until either side changes it again (a change since the
        # round read it is a newer mark, which stays).
        result.settled += self.ledger.clean(skus, seqs_read(read, skus))
        result.unmatched += len(skus)
