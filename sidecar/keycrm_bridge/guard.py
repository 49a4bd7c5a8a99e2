"""The guard against mass cuts of matched SKUs, into WooCommerce and into KeyCRM (DESIGN.md S13, S20).

A cut is a write that sets a SKU to 0 or to half or less of what that side shows. A round whose cuts
— together with the cuts already applied in the last ``WINDOW_S`` in the same direction, so that a
trickle counts as much as a burst — reach ``GUARD_MIN_SKUS`` and more than ``GUARD_SHARE`` of the
*matched* SKUs (known on both sides; one-sided SKUs cannot be cut and must not dilute the share) is
held: the cut SKUs are written nowhere until the owner confirms or dismisses the hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .config import Settings
from .ledger import Ledger
from .store import Store

log = logging.getLogger("keycrm_bridge.sync")

WINDOW_S = 600.0
DIRECTIONS = ("woocommerce", "keycrm")  # the side a cut would be written to


@dataclass
class Cut:
    sku: str
    before: float
    after: float


def is_cut(before: float | None, after: float | None) -> bool:
    if before is None or after is None or before <= 0:
        return False
    return after == 0 or (before >= 2 and after <= before / 2)


class Guard:
    def __init__(self, store: Store, ledger: Ledger, settings: Settings, clock: Clock) -> None:
        self.store, self.ledger, self.settings, self.clock = store, ledger, settings, clock

    def matched(self) -> int:
        """SKUs known on both sides: KeyCRM's value and WooCommerce's (an event, or the SKU map)."""
        has_map = self.store.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'woo_skus'").fetchone()
        in_map = " OR EXISTS (SELECT 1 FROM woo_skus w WHERE w.sku = l.sku)" if has_map else ""
        return int(self.store.conn.execute(
            f"SELECT count(*) FROM ledger l WHERE kc_sellable IS NOT NULL AND (woo_stock IS NOT NULL{in_map})"
        ).fetchone()[0])

    def check(self, cuts: dict[str, list[Cut]]) -> set[str]:
        """``cuts`` per direction (bypassed SKUs already left out); returns the SKUs to hold (none: go on)."""
        now = self.clock.now()
        matched = max(self.matched(), 1)
        held: set[str] = set()
        reasons: list[str] = []
        examples: list[dict[str, Any]] = []
        windows: dict[str, dict[str, float]] = {}
        for direction in DIRECTIONS:
            these = cuts.get(direction) or []
            key = f"guard_recent_cuts:{direction}"
            recent = {s: t for s, t in (self.store.get_meta(key, {}) or {}).items() if t > now - WINDOW_S}
            windows[direction] = recent
            if not these:
                continue
            counted = len(set(recent) | {c.sku for c in these})
            if counted < self.settings.guard_min_skus or counted <= self.settings.guard_share * matched:
                continue
            zeroed = sum(1 for c in these if c.after == 0)
            reasons.append(f"{counted} of {matched} matched SKUs would drop to 0 or by half or more in {direction} "
                           f"within {WINDOW_S / 60:g} minutes ({len(these)} held now, {zeroed} of them to 0)")
            examples += [{"sku": c.sku, "side": direction, "from": c.before, "to": c.after} for c in these[:20]]
            held |= {c.sku for c in these}
        for direction in DIRECTIONS:
            # Cuts that go through count against the next rounds; held ones wait for the owner.
            passed = [c.sku for c in cuts.get(direction) or [] if c.sku not in held]
            if passed or windows[direction]:
                windows[direction].update({s: now for s in passed})
                self.store.set_meta(f"guard_recent_cuts:{direction}", windows[direction])
        if held:
            sides = sorted({str(e["side"]) for e in examples})
            summary = {"reason": "; ".join(reasons), "direction": sides[0] if len(sides) == 1 else "both",
                       "examples": examples[:20]}
            hold_id = self.ledger.hold(sorted(held), summary, now)
            log.warning("guard held a cycle; confirm with `keycrm-bridge guard confirm ID`",
                        extra={"hold_id": hold_id, "skus": len(held), "matched": matched, "direction": sides})
        return held


def answered(ledger: Ledger) -> list[dict[str, Any]]:
    """Holds the owner answered that the sync has not acted on yet."""
    return ledger.holds("confirmed") + ledger.holds("dismissed")


def act_on_answers(ledger: Ledger, now: float) -> set[str]:
    """Release the answered holds; returns the confirmed SKUs (applied now, past the guard).

    A dismissed hold's cut is dropped, and what changed while it was held is decided now: the
    release clears only the marks made before the hold (``Ledger.release_hold``)."""
    confirmed: set[str] = set()
    for h in answered(ledger):
        dismissed = h["status"] == "dismissed"
        skus = ledger.release_hold(h["id"], now, "dropped" if dismissed else "applied")
        if not dismissed:
            confirmed.update(skus)
        log.info("guard hold dismissed; its SKUs sync again" if dismissed else "guard hold confirmed; applying",
                 extra={"hold_id": h["id"], "skus": len(skus)})
    return confirmed


def cuts_of(writes: dict[str, Any], before: dict[str, float | None], target: str,
            bypass: set[str]) -> list[Cut]:
    """The cuts among ``writes`` (decisions by SKU), against what the side shows now."""
    out = []
    for sku, d in writes.items():
        after = getattr(d, target)
        if sku not in bypass and is_cut(before.get(sku), after):
            out.append(Cut(sku, float(before[sku] or 0), float(after)))
    return out
