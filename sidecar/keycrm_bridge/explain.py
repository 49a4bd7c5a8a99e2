""""Why is this SKU at 3?": both sides' last changes and the decision taken for each."""

from __future__ import annotations

from typing import Any

from .erp.report import erp_explain, format_erp_explain
from .ledger import Ledger
from .store import Store


def explain(store: Store, sku: str, limit: int = 30) -> dict[str, Any]:
    ledger = Ledger(store)
    row = ledger.rows([sku]).get(sku)
    unmatched = [u for u in store.unmatched(10000) if u["sku"] == sku]
    return {
        "sku": sku,
        "known": row is not None,
        "woocommerce_stock": row.woo_stock if row else None,
        "keycrm_sellable": row.kc_sellable if row else None,
        "agreed": row.agreed if row else None,
        "held": row.hold if row else None,
        "in_flight_orders": [o for o in ledger.open_inflight() if o["sku"] == sku],
        "keycrm_warehouses": store.keycrm_stock([sku]).get(sku, {}),
        "problems": unmatched,
        "history": ledger.history(sku, limit),
        "erp": erp_explain(store, sku),
    }


def format_explain(info: dict[str, Any]) -> str:
    lines = [f"SKU {info['sku']}"]
    if not info["known"]:
        lines.append("  not seen yet on either side")
        return "\n".join(lines)
    lines.append(f"  WooCommerce stock: {info['woocommerce_stock']}   KeyCRM sellable: {info['keycrm_sellable']}"
                 f"   agreed: {info['agreed']}")
    for o in info["in_flight_orders"]:
        lines.append(f"  site order {o['order_id']} ({o['kind']}, {o['qty']:g}) not yet shown by KeyCRM")
    if info["held"]:
        lines.append(f"  held: {info['held']}")
    lines += format_erp_explain(info.get("erp"))
    for p in info["problems"]:
        lines.append(f"  problem ({p['side']}): {p['reason']}")
    lines.append("  history (oldest first):")
    for h in info["history"]:
        detail = {k: v for k, v in h.items() if k not in ("at", "kind") and v is not None}
        lines.append(f"    {h['at']:.3f} {h['kind']:9} {detail}")
    return "\n".join(lines)
