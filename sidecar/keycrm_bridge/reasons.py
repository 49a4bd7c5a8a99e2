"""Stable codes for the sidecar's "why" texts, so the plugin can show them in the shop's language.

The English text stays what the sidecar stores and logs; ``coded`` gives, beside it, a code and the
values it names (``{"reason_code": "merged", "reason_args": {"agreed": "8", …}}``). The plugin
translates the codes it knows (wp-plugin ``Admin/Reasons.php``) and shows the text of any other
(``other``), so a newer sidecar's new reason still reads in English rather than not at all.
"""

from __future__ import annotations

import re
from typing import Any

from .exclusions import REASON as EXCLUDED
from .resync_plan import WRITTEN_BACK

_N = r"[-+]?[\d.]+(?:e[-+]?\d+)?"
PATTERNS: list[tuple[str, re.Pattern[str]]] = [(code, re.compile(rx)) for code, rx in [
    ("not_in_keycrm", r"not known in KeyCRM"),
    ("woocommerce_unknown", r"WooCommerce stock not known yet"),
    ("keycrm_master", rf"KeyCRM is the master(?:; (?P<held>{_N}) held for site orders)?"),
    ("woocommerce_master", r"WooCommerce is the master"),
    ("first_from_keycrm", r"first value from KeyCRM"),
    ("merged", rf"merged: agreed (?P<agreed>{_N}), WooCommerce (?P<woo>{_N}), KeyCRM (?P<kc>{_N})"),
    ("sku_not_in_keycrm", r"SKU not found in KeyCRM"),
    ("sku_not_in_woocommerce", r"SKU not found in WooCommerce"),
    ("stock_not_managed", r"stock is not managed in WooCommerce for this product"),
    ("keycrm_rejected_row", r"KeyCRM rejected the stock row: (?P<detail>.*)"),
    ("woocommerce_refused_write", r"(?:resync: )?WooCommerce refused the stock write: (?P<detail>.*)"),
    ("empty_sku", r"empty SKU: give the product an SKU in WooCommerce"),
    ("excluded", re.escape(EXCLUDED)),
    ("written_back", re.escape(WRITTEN_BACK)),
    ("first_sync", r"first sync: review the comparison and apply it \(a full resync\) to start writing stock"),
    ("mode_changed", r"SYNC_MODE changed from (?P<old>\S+) to (?P<new>\S+): review the comparison and apply it"
                     r" \(a full resync\) to start writing stock"),
    ("account_changed", r"the KeyCRM account \(API URL or key\) changed: review the comparison and apply it"
                        r" \(a full resync\) to start writing stock"),
]]
CODES = tuple(code for code, _ in PATTERNS)


def code_of(text: str | None) -> tuple[str, dict[str, str]]:
    """(code, named values) of one text; ``("other", {})`` for a text without a code (an error's words)."""
    for code, rx in PATTERNS:
        m = rx.fullmatch(text or "")
        if m:
            return code, {k: v for k, v in m.groupdict().items() if v is not None}
    return "other", {}


def coded(row: dict[str, Any], field: str = "reason") -> dict[str, Any]:
    """The row with ``<field>_code`` and ``<field>_args`` beside its text (a copy; the row is kept)."""
    code, args = code_of(row.get(field))
    return {**row, f"{field}_code": code, f"{field}_args": args}
