"""What one SKU's stock should be on each side: the arithmetic of DESIGN.md as a pure function.

Inputs are what the ledger knows of the SKU. ``inflight`` is the stock that site orders took in
WooCommerce and that KeyCRM does not show yet (positive: sold units KeyCRM has not reserved;
negative: restored units KeyCRM has not released). So KeyCRM's *effective* sellable — what it
will show once it has caught up with the site — is ``kc − inflight``.

* ``keycrm``: WooCommerce := effective − safety buffer. KeyCRM is never written.
* ``woocommerce``: KeyCRM sellable := WooCommerce + inflight (the inflight part leaves in KeyCRM
  by reserve, not by us). WooCommerce is never written.
* ``two-way``: each side's change since the last agreement is added, so concurrent edits on both
  sides both survive: merged = agreed + (woo − base_woo) + (effective − base_kc). ``base_woo`` and
  ``base_kc`` are the values of each side already counted in ``agreed`` — the agreed value itself
  once that side has taken it, or what the side showed when a write to it has not landed yet (so a
  half-done round is finished next time, never counted twice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    woo_target: float | None = None      # set WooCommerce stock to this (None: leave it)
    kc_target: float | None = None       # set KeyCRM sellable (over read warehouses) to this
    agreed: float | None = None          # the new agreed value
    reason: str = ""


def decide(mode: str, *, woo: float | None, kc: float | None, agreed: float | None,
           inflight: float = 0.0, buffer: float = 0.0,
           base_woo: float | None = None, base_kc: float | None = None) -> Decision:
    if kc is None:
        return Decision(agreed=agreed, reason="not known in KeyCRM")
    effective = kc - inflight
    if mode in ("keycrm", "erp"):  # erp: the ERP wrote KeyCRM's quantity; the shop follows KeyCRM
        target = max(0.0, effective - buffer)
        return Decision(woo_target=None if woo == target else target, agreed=effective,
                        reason="KeyCRM is the master" + (f"; {inflight:g} held for site orders" if inflight else ""))
    if mode == "woocommerce":
        if woo is None:
            return Decision(agreed=agreed, reason="WooCommerce stock not known yet")
        target = woo + inflight
        return Decision(kc_target=None if kc == target else target, agreed=woo, reason="WooCommerce is the master")
    if mode != "two-way":
        raise ValueError(f"unknown mode {mode!r}")
    if woo is None:
        target = max(0.0, effective)
        return Decision(woo_target=target, agreed=effective, reason="first value from KeyCRM")
    if agreed is None:
        # First contact: nothing agreed yet. Taking the lower side never lists units nobody has.
        agreed, base_woo, base_kc = min(woo, effective), woo, effective
    dw = woo - (agreed if base_woo is None else base_woo)
    dk = effective - (agreed if base_kc is None else base_kc)
    merged = max(0.0, agreed + dw + dk)
    return Decision(
        woo_target=None if woo == merged else merged,
        kc_target=None if kc == merged + inflight else merged + inflight,
        agreed=merged,
        reason=f"merged: agreed {agreed:g}, WooCommerce {dw:+g}, KeyCRM {dk:+g}",
    )


def json_number(v: float) -> float | int:
    """A quantity as KeyCRM and WooCommerce like it: 7, not 7.0. A value that is not finite is no
    quantity at all: the item it belongs to fails (and is set aside), it is never sent."""
    if not math.isfinite(v):
        raise ValueError(f"{v} is not a finite number")
    return int(v) if float(v).is_integer() else round(v, 4)
