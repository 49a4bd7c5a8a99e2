""""Why is this SKU at 3?": both sides' last changes and the decision taken for each, in plain words.

``explain`` gives the data (for ``GET /v1/skus/<sku>``, the plugin's product panel and ``--json``)
with a ``timeline`` of sentences; ``format_explain`` prints it for a person: local time, numbers
without trailing ``.0``, "unknown" where nothing was seen yet.
"""

from __future__ import annotations

import time
from typing import Any

from . import exclusions, reasons
from .erp.report import erp_explain, format_erp_explain
from .ledger import Ledger
from .store import Store

WOO_CAUSES = {"manual": "edited in WooCommerce", "rest": "changed through the REST API", "import": "set by an import",
              "order": "a site order", "order_restore": "a site order cancelled or refunded",
              "sidecar": "the bridge's own write, seen back"}
KC_SOURCES = {"webhook": "KeyCRM's stock webhook", "sweep": "the regular check of KeyCRM", "read": "a read",
              "read-before-write": "a read before writing", "order": "a read after a KeyCRM order",
              "resync": "the full resync"}


def num(v: Any) -> str:
    if v is None:
        return "unknown"
    f = float(v)
    return str(int(f)) if f.is_integer() else f"{f:g}"


def local_time(ts: float | None) -> str:
    return "never" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def sentence(h: dict[str, Any]) -> str:
    kind = h.get("kind")
    if kind == "woo":
        cause = h.get("cause") or "manual"
        order = f" #{h['order_id']}" if h.get("order_id") and cause in ("order", "order_restore") else ""
        delta = f" ({'+' if float(h['delta']) > 0 else ''}{num(h['delta'])})" if h.get("delta") else ""
        return f"WooCommerce stock {num(h.get('stock'))}{delta}: {WOO_CAUSES.get(cause, cause)}{order}"
    if kind == "keycrm":
        src = KC_SOURCES.get(h.get("source") or "", h.get("source") or "KeyCRM")
        was = f"{num(h['was'])} → " if h.get("was") is not None else ""
        return f"KeyCRM sellable {was}{num(h.get('sellable'))} (from {src})"
    if kind == "order":
        return f"site order #{h.get('order_id')}: no longer held in flight ({h.get('resolution') or 'resolved'})"
    if kind == "decision":
        writes = []
        if h.get("woo_target") is not None:
            writes.append(f"WooCommerce set to {num(h['woo_target'])}")
        if h.get("kc_target") is not None:
            writes.append(f"KeyCRM set to {num(h['kc_target'])}")
        what = " and ".join(writes) if writes else "nothing to write"
        inflight = f", {num(h['inflight'])} held for site orders" if h.get("inflight") else ""
        return (f"decided ({h.get('mode')} mode; WooCommerce {num(h.get('woo'))}, KeyCRM {num(h.get('kc'))}"
                f"{inflight}): {what} — {h.get('reason') or ''}".rstrip(" —"))
    if kind == "resync":
        return f"full resync: WooCommerce {num(h.get('woo'))}, KeyCRM {num(h.get('kc'))}, agreed {num(h.get('agreed'))}"
    if kind == "excluded":
        return "excluded from sync in WooCommerce" if h.get("excluded") else "included in sync again"
    rest = ", ".join(f"{k} {num(v) if isinstance(v, (int, float)) else v}" for k, v in h.items()
                     if k not in ("at", "kind") and v is not None)
    return f"{kind}: {rest}" if rest else str(kind)


def _last_sync(history: list[dict[str, Any]], field: str) -> dict[str, Any] | None:
    for h in reversed(history):
        if h.get("kind") == "decision" and h.get(field) is not None:
            return {"at": h["at"], "when": local_time(h["at"]), "value": h[field]}
        if h.get("kind") == "resync":
            return {"at": h["at"], "when": local_time(h["at"]), "value": h.get("agreed")}
    return None


def _from_last_resync(store: Store, sku: str) -> tuple[float | None, float | None, float | None]:
    """On hand and reserve as the newest full resync read them, where they make up all of sellable."""
    exists = store.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'resync_kc'").fetchone()
    if not exists:
        return None, None, None
    row = store.conn.execute("SELECT q_write, r_write, sellable FROM resync_kc k JOIN resync_jobs j ON j.id = k.job"
                             " WHERE k.sku = ? ORDER BY j.created_at DESC LIMIT 1", (sku,)).fetchone()
    if row is None or abs(float(row[0]) - float(row[1]) - float(row[2])) > 1e-9:
        return None, None, None
    return float(row[0]), float(row[1]), float(row[2])


def explain(store: Store, sku: str, limit: int = 30) -> dict[str, Any]:
    ledger = Ledger(store)
    row = ledger.rows([sku]).get(sku)
    unmatched = [u for u in store.unmatched(10000) if u["sku"] == sku]
    warehouses = store.keycrm_stock([sku]).get(sku, {})
    history = ledger.history(sku, limit)
    on_hand = sum(float(w.get("quantity") or 0) for w in warehouses.values()) if warehouses else None
    reserve = sum(float(w.get("reserve") or 0) for w in warehouses.values()) if warehouses else None
    sellable = row.kc_sellable if row else None
    if on_hand is None:
        on_hand, reserve, read = _from_last_resync(store, sku)
        sellable = read if sellable is None else sellable
    return {
        "sku": sku,
        "known": row is not None,
        "excluded": bool(exclusions.excluded_among(store.conn, [sku])),
        "woocommerce_stock": row.woo_stock if row else None,
        "keycrm_sellable": sellable,
        "keycrm_on_hand": on_hand,
        "keycrm_reserve": reserve,
        "agreed": row.agreed if row else None,
        "held": row.hold if row else None,
        "in_flight_orders": [o for o in ledger.open_inflight() if o["sku"] == sku],
        "keycrm_warehouses": warehouses,
        "problems": unmatched,
        "last_sync": {"to_woocommerce": _last_sync(history, "woo_target"),
                      "to_keycrm": _last_sync(history, "kc_target")},
        # ``args`` (with the reason's code) lets the plugin word each line in the shop's language.
        "timeline": [{"at": h["at"], "when": local_time(h["at"]), "kind": h.get("kind"), "text": sentence(h),
                      "args": reasons.coded({k: v for k, v in h.items() if k not in ("at", "kind")})}
                     for h in history],
        "history": history,
        "erp": erp_explain(store, sku),
    }


def format_explain(info: dict[str, Any]) -> str:
    lines = [f"SKU {info['sku']}"]
    if info.get("excluded"):
        lines.append("  excluded from sync in WooCommerce: read on both sides, written on neither")
    if not info["known"]:
        lines.append("  not seen yet on either side")
        return "\n".join(lines + format_erp_explain(info.get("erp")))
    if info["keycrm_on_hand"] is not None:
        lines.append(f"  KeyCRM: on hand {num(info['keycrm_on_hand'])} − reserved {num(info['keycrm_reserve'])}"
                     f" = sellable {num(info['keycrm_sellable'])}")
    else:
        lines.append(f"  KeyCRM sellable: {num(info['keycrm_sellable'])}")
    woo = info["woocommerce_stock"]
    lines.append(f"  WooCommerce stock: {num(woo) if woo is not None else 'not reported by the shop yet'}")
    lines.append(f"  agreed by both sides: {num(info['agreed']) if info['agreed'] is not None else 'not yet'}")
    orders = info["in_flight_orders"]
    if not orders:
        lines.append("  site orders in flight: none")
    for o in orders:
        what = "sold" if o["kind"] == "order" else "restored"
        lines.append(f"  site order #{o['order_id']}: {num(o['qty'])} {what}, not yet shown by KeyCRM"
                     " (the shop's stock is not set back up for it)")
    for side, label in (("to_woocommerce", "to WooCommerce"), ("to_keycrm", "to KeyCRM")):
        last = info["last_sync"][side]
        lines.append(f"  last sync {label}: " + (f"{last['when']} (set to {num(last['value'])})" if last else "never"))
    if info["held"]:
        lines.append(f"  held by the guard (cycle #{info['held']}): confirm with `keycrm-bridge guard confirm`")
    lines += format_erp_explain(info.get("erp"))
    for p in info["problems"]:
        lines.append(f"  problem ({p['side']}): {p['reason']}")
    lines.append("  timeline (oldest first, local time):")
    for t in info["timeline"]:
        lines.append(f"    {t['when']}  {t['text']}")
    return "\n".join(lines)
