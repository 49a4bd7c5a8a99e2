"""Push: WooCommerce changes → KeyCRM, claimed from the queue and coalesced per SKU.

Stock events go to the ledger (``ledger.observe_woo``): what KeyCRM then gets is the sync round's
decision (``sync.py``), which knows the mode, the site orders in flight and KeyCRM's side. Product
fields (``PUT /offers`` for price, weight and dimensions — 10,000 a request —, ``PUT /products/{id}``
for name and description) and SKU renames are pushed here, only where they differ from KeyCRM.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import exclusions
from .aliases import Aliases
from .clock import Clock
from .config import Settings
from .errors import RETRYABLE, BridgeError, PermanentError, RetryableError, backoff_s, describe, disposition
from .ledger import Ledger
from .push_fields import number_or_none, push_products
from .quarantine import PUSH, Quarantine
from .store import SUPERSEDED, Change, Store

log = logging.getLogger("keycrm_bridge.push")

LEASE_S = 120.0
OFFER_FIELDS = ("price", "weight", "length", "width", "height")


class KeyCRM(Protocol):
    def iter_offers(self, skus: list[str] | None = None, include_product: bool = False) -> Iterable[dict[str, Any]]: ...
    def put_offers(self, offers: list[dict[str, Any]]) -> Any: ...
    def update_product(self, product_id: int, fields: dict[str, Any]) -> Any: ...


@dataclass
class PushResult:
    claimed: int = 0
    pushed_stock: int = 0  # stock events handed to the ledger
    pushed_offers: int = 0
    pushed_products: int = 0
    skipped: int = 0
    retry: int = 0
    errors: list[str] = field(default_factory=list)


def newest_per_sku(changes: Iterable[Change]) -> tuple[dict[str, Change], list[Change]]:
    """Coalesce: the newest change per SKU wins; the rest are superseded."""
    newest: dict[str, Change] = {}
    older: list[Change] = []
    for ch in changes:
        cur = newest.get(ch.sku)
        if cur is None or (ch.occurred_at, ch.id) > (cur.occurred_at, cur.id):
            if cur is not None:
                older.append(cur)
            newest[ch.sku] = ch
        else:
            older.append(ch)
    return newest, older


class PushEngine:
    def __init__(self, store: Store, keycrm: KeyCRM, settings: Settings, clock: Clock,
                 rng: random.Random | None = None, ledger: Ledger | None = None, skumap: Any = None) -> None:
        self.skumap = skumap
        self.store = store
        self.ledger = ledger or Ledger(store)
        self.keycrm = keycrm
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()

    # -- entry points --------------------------------------------------------------------------

    def take_stock(self, limit: int = 20000) -> int:
        """Stock changes into the ledger as they come, without the debounce: nothing here calls
        KeyCRM (the sync round's debounce is what coalesces the writes), so there is no claim and no
        lease either: one transaction reads them, feeds the ledger and marks them done. Returns how
        many. What the ledger cannot take goes through ``run_once``, which sets it aside."""
        now = self.clock.now()
        try:
            with self.store.transaction():
                ids, events = self.store.due_stock(now, limit)
                if ids:
                    self.ledger.observe_woo(events, now, two_way=self.settings.sync_mode == "two-way")
                    self.store.finish_unclaimed(ids, now)
        except Exception as exc:
            if disposition(exc) == RETRYABLE:
                raise
            log.warning("stock changes go one by one", extra={"error": describe(exc)})
            return self.run_once().pushed_stock
        return len(ids)


    def run_once(self, limit: int = 20000) -> PushResult:
        result = PushResult()
        token, changes = self.store.claim(self.clock.now(), LEASE_S, limit)
        result.claimed = len(changes)
        if not changes:
            return result
        by_kind: dict[str, list[Change]] = {}
        for ch in changes:
            by_kind.setdefault(ch.kind, []).append(ch)
        self._drop_excluded(token, by_kind)
        # Renames first, so that later changes in the batch already find the offer under its new SKU.
        for kind, handler in (("rename", self._renames), ("stock", self._stock), ("product", self._products),
                              ("deleted", self._deleted)):
            group = by_kind.pop(kind, [])
            if group:
                self._isolating(token, kind, handler, group, result)
        for kind, group in by_kind.items():
            self._skip(token, group, result, f"unknown change kind {kind!r}")
        return result

    def _drop_excluded(self, token: str, by_kind: dict[str, list[Change]]) -> None:
        """Product fields and renames of a product the owner excluded are not written to KeyCRM. Stock
        changes still reach the ledger (which is only read for such a SKU): the sync writes nothing."""
        fields = [ch for kind in ("product", "rename") for ch in by_kind.get(kind, [])]
        off = exclusions.excluded_among(self.store.conn, {ch.sku for ch in fields})
        if not off:
            return
        for kind in ("product", "rename"):
            dropped = [ch for ch in by_kind.get(kind, []) if ch.sku in off]
            if dropped:
                by_kind[kind] = [ch for ch in by_kind[kind] if ch.sku not in off]
                self._done(token, dropped)
                for ch in dropped:
                    log.info("change not written: product excluded from sync", extra={"sku": ch.sku, "kind": kind})

    def _isolating(self, token: str, kind: str, handler: Any, group: list[Change], result: PushResult) -> None:
        """Run one kind's handler; a failure that is not the peer's is narrowed down to its changes.

        Retryable failures wait on the one retry policy as a group. Anything else is halved until the
        change(s) that cause it stand alone: those are set aside (quarantine), every other goes on.
        """
        parts = [group]
        while parts:
            part = parts.pop(0)
            try:
                handler(token, part, result)
            except Exception as exc:  # noqa: BLE001 - one bad change must not stop the others
                how = disposition(exc)
                if how == RETRYABLE:
                    self._retry(token, part, result, exc,
                                delay=60.0 if isinstance(exc, PermanentError) else None)
                elif len(part) > 1:
                    parts[:0] = [part[:len(part) // 2], part[len(part) // 2:]]
                else:
                    self._set_aside(token, part[0], result, exc)

    def _set_aside(self, token: str, ch: Change, result: PushResult, exc: Exception) -> None:
        reason = describe(exc)
        if not isinstance(exc, BridgeError):
            log.exception("push of one change failed; set aside", extra={"sku": ch.sku, "event_id": ch.event_id})
        self.store.mark_skipped(token, [ch.id], self.clock.now(), f"set aside: {reason}")
        Quarantine(self.store, self.clock).add(PUSH, f"change:{ch.id}", f"{ch.kind}: {reason}",
                                               {"change_id": ch.id, "event_id": ch.event_id}, ch.sku)
        self.store.set_meta("last_error", {"at": self.clock.now(), "stage": "push", "error": reason})
        result.skipped += 1

    # -- bookkeeping -----------------------------------------------------------------------------

    def _retry(self, token: str, group: list[Change], result: PushResult, exc: Exception,
               delay: float | None = None) -> None:
        attempts = max(ch.attempts for ch in group)
        wait = delay if delay is not None else backoff_s(attempts, self.rng)
        if isinstance(exc, RetryableError) and exc.retry_after:
            wait = max(wait, exc.retry_after)
        now = self.clock.now()
        self.store.release(token, [ch.id for ch in group], now + wait, str(exc)[:500])
        self.store.set_meta("last_error", {"at": now, "error": str(exc)[:500]})
        result.retry += len(group)
        result.errors.append(str(exc))
        log.warning("push will be retried", extra={"changes": len(group), "retry_in_s": round(wait, 1),
                                                   "error": str(exc)[:300], "sku": group[0].sku})

    def _skip(self, token: str, group: list[Change], result: PushResult, reason: str) -> None:
        now = self.clock.now()
        self.store.mark_skipped(token, [ch.id for ch in group], now, reason)
        for ch in group:
            key = ch.sku or f"(empty SKU, product #{ch.payload.get('product_id')})"
            self.store.note_unmatched(key, "woocommerce", reason, ch.payload.get("product_id"), now)
            log.warning("change set aside", extra={"sku": ch.sku, "reason": reason, "event_id": ch.event_id})
        result.skipped += len(group)

    def _done(self, token: str, group: Iterable[Change], status: str = "done") -> None:
        self.store.mark_done(token, [ch.id for ch in group], self.clock.now(), status)

    def _succeeded(self) -> None:
        self.store.set_meta("last_keycrm_success_at", self.clock.now())
        self.store.set_meta("last_push_at", self.clock.now())

    def _coalesce(self, token: str, kind: str, group: list[Change], result: PushResult) -> dict[str, Change]:
        newest, older = newest_per_sku(group)
        self._done(token, older, SUPERSEDED)
        empty = [ch for sku, ch in newest.items() if not sku.strip()]
        if empty:
            self._skip(token, empty, result, "empty SKU: give the product an SKU in WooCommerce")
        # An event older than what was already pushed must not overwrite it (late resend, reorder).
        pushed = self.store.last_pushed(kind, newest)
        stale = [ch for sku, ch in newest.items() if sku in pushed and ch.occurred_at < pushed[sku][0]]
        self._done(token, stale, SUPERSEDED)
        drop = {ch.sku for ch in empty + stale}
        return {sku: ch for sku, ch in newest.items() if sku not in drop}

    # -- stock -----------------------------------------------------------------------------------

    def _stock(self, token: str, group: list[Change], result: PushResult) -> None:
        empty = [ch for ch in group if not ch.sku.strip()]
        if empty:
            self._skip(token, empty, result, "empty SKU: give the product an SKU in WooCommerce")
        known = [ch for ch in group if ch.sku.strip()]
        # Every event counts here, not only the newest per SKU: an older one may be a site order
        # whose units must be held as in flight.
        self.ledger.observe_woo([ch.payload for ch in known], self.clock.now(),
                                two_way=self.settings.sync_mode == "two-way")
        self._done(token, known)
        result.pushed_stock += len(known)

    # -- product fields --------------------------------------------------------------------------

    def _offers(self, skus: list[str]) -> dict[str, dict[str, Any]]:
        return known_offers(self.store, self.keycrm, self.clock.now(), skus)

    def _products(self, token: str, group: list[Change], result: PushResult) -> None:
        push_products(self, token, group, result)

    # -- renames, orders, deletions --------------------------------------------------------------

    def _renames(self, token: str, group: list[Change], result: PushResult) -> None:
        """S16: the KeyCRM offer follows the product to its new SKU; the old SKU is not left behind."""
        group.sort(key=lambda c: (c.occurred_at, c.id))
        olds = [ch.payload["old_sku"] for ch in group if ch.payload["old_sku"]]
        offers = self._offers(olds) if olds else {}
        rows, done, missing = [], [], []
        for ch in group:
            old = ch.payload["old_sku"]
            offer = offers.get(old)
            if not old or offer is None:
                missing.append(ch)
                continue
            rows.append({"id": offer["offer_id"], "sku": ch.sku})
            done.append(ch)
        if rows:
            self.keycrm.put_offers(rows)
            self._succeeded()
            with self.store.transaction() as c:
                for ch in done:
                    old = ch.payload["old_sku"]
                    for table in ("keycrm_offers", "keycrm_stock", "ledger"):
                        c.execute(f"DELETE FROM {table} WHERE sku = ?", (ch.sku,))
                        c.execute(f"UPDATE {table} SET sku = ? WHERE sku = ?", (ch.sku, old))
                    c.execute("UPDATE inflight SET sku = ? WHERE sku = ?", (ch.sku, old))
                    c.execute("DELETE FROM unmatched WHERE sku = ?", (old,))
            self._check_renames({ch.sku: (ch.payload["old_sku"], offers[ch.payload["old_sku"]]["offer_id"])
                                 for ch in done})
        self._done(token, done)
        if missing:
            self._skip(token, missing, result, "renamed SKU: the old SKU is not in KeyCRM")

    def _check_renames(self, renamed: dict[str, tuple[str, int]]) -> None:
        """Read the offers back: KeyCRM's spec does not promise that ``PUT /offers`` renames a SKU.

        Where it kept the old SKU, the rename becomes an open item and stock goes by offer id.
        """
        seen = {int(o["id"]): o.get("sku") for o in self.keycrm.iter_offers(skus=list(renamed))}
        aliases, now = Aliases(self.store), self.clock.now()
        for new, (old, offer_id) in renamed.items():
            if seen.get(int(offer_id)) == new:
                aliases.confirmed([new])
            else:
                aliases.add(new, old, int(offer_id), now)

    def _deleted(self, token: str, group: list[Change], result: PushResult) -> None:
        # Deleting in KeyCRM would lose its history and other channels' stock: we only stop syncing.
        self._done(token, group)


__all__ = ["BridgeError", "PushEngine", "PushResult", "backoff_s", "newest_per_sku"]


def known_offers(store: Store, keycrm: Any, now: float, skus: list[str]) -> dict[str, dict[str, Any]]:
    """KeyCRM's offers of ``skus`` (id, product id, fields): the mirror's, the rest read (≤ 50 a request)."""
    known: dict[str, dict[str, Any]] = store.keycrm_offers(skus)
    need = [s for s in skus if s not in known]
    if need:
        wanted = set(need)
        rows = []
        for o in keycrm.iter_offers(skus=need, include_product=True):
            if o.get("sku") not in wanted:
                continue
            product = o.get("product") or {}
            fields = {k: number_or_none(o.get(k)) for k in OFFER_FIELDS}
            fields["name"] = product.get("name")
            fields["description"] = product.get("description")
            rows.append((o["sku"], int(o["id"]), o.get("product_id"), fields))
        store.save_keycrm_offers(rows, now)
        known = store.keycrm_offers(skus)
    return known
