"""Stock writes into WooCommerce that met a different value than the one they were decided on.

The plugin's stock route writes only where the shop still shows the value the decision was made on
(``woo_client.set_stock``). When it does not, the shop changed in between — a sale, a cancel, an
edit — and the plugin's event for that change is on its way: it says *why* (an order is counted as
in flight, which decides how KeyCRM's value may be copied). Deciding again from the bare current
value before that event arrives would put a sale's units back on sale in ``keycrm`` mode, or count
it twice in ``two-way`` mode. So the SKU waits, still dirty, until the ledger shows a newer
WooCommerce value than at the conflict (the event came), and at most ``GRACE_S``: a change without
an event (a direct database edit, an extension that bypasses WooCommerce's stock functions) is then
taken as the shop's current value and decided on like any reading.
"""

from __future__ import annotations

import logging
from typing import Any

from .clock import Clock
from .ledger import Row
from .store import Store

log = logging.getLogger("keycrm_bridge.sync")

GRACE_S = 60.0
META = "woo_conflicts"


class WooConflicts:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def _all(self) -> dict[str, dict[str, Any]]:
        value = self.store.get_meta(META, {})
        return value if isinstance(value, dict) else {}

    def record(self, found: dict[str, tuple[float, float | None, Row]]) -> None:
        """``found``: sku -> (the shop's current value, the value expected, the ledger row decided on)."""
        if not found:
            return
        conflicts = self._all()
        now = self.clock.now()
        for sku, (current, expected, row) in found.items():
            previous = conflicts.get(sku)
            conflicts[sku] = {"current": current, "expected": expected, "woo_stock": row.woo_stock,
                              "woo_at": row.woo_at, "since": previous["since"] if previous else now}
            log.info("WooCommerce stock changed since the decision; waiting for the shop's event",
                     extra={"sku": sku, "expected": expected, "current": current})
        self.store.set_meta(META, conflicts)

    def check(self, sku: str, row: Row) -> tuple[str, float | None]:
        """("decide", None): go on; ("wait", None): the shop's event is still on its way;
        ("read", value): no event came in time, decide on the shop's current value."""
        conflicts = self._all()
        c = conflicts.get(sku)
        if c is None:
            return "decide", None
        if (row.woo_stock, row.woo_at) != (c["woo_stock"], c["woo_at"]):
            self.drop([sku])  # the event arrived: the ledger knows the change and its cause
            return "decide", None
        if self.clock.now() - float(c["since"]) < GRACE_S:
            return "wait", None
        self.drop([sku])
        log.warning("no event explained a WooCommerce stock change; deciding on the shop's value",
                    extra={"sku": sku, "current": c["current"], "expected": c["expected"]})
        return "read", float(c["current"])

    def drop(self, skus: list[str]) -> None:
        conflicts = self._all()
        if any(s in conflicts for s in skus):
            self.store.set_meta(META, {s: c for s, c in conflicts.items() if s not in skus})

    def skus(self) -> set[str]:
        """SKUs with a write that met another value, waiting for the shop's event."""
        return set(self._all())

    def waiting(self) -> int:
        return len(self._all())
