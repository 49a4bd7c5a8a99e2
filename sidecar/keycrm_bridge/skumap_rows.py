"""What the SKU map stores and how a REST product or a plugin event becomes its row (``woo_skumap.py``
keeps the map: refresh, events, lookups)."""

from __future__ import annotations

from typing import Any

from .woo_client import parse_wc_date

COLUMNS = (
    "product_id",
    "parent_id",
    "sku",
    "type",
    "manage_stock",
    "stock_quantity",
    "date_modified",
    "date_modified_ts",
    "name",
    "status",
    "updated_at",
)
# Skip a REST row more than a second older than an event already applied to that product: every
# change saves the product, so such a read predates what the event told us.
UPSERT_REST_ROW = (
    "INSERT INTO woo_skus (product_id, parent_id, sku, type, manage_stock, stock_quantity, date_modified, "
    "date_modified_ts, name, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(product_id) DO UPDATE SET parent_id = excluded.parent_id, sku = excluded.sku, "
    "type = excluded.type, manage_stock = excluded.manage_stock, stock_quantity = excluded.stock_quantity, "
    "date_modified = excluded.date_modified, date_modified_ts = excluded.date_modified_ts, "
    "name = excluded.name, status = excluded.status, "
    "updated_at = max(woo_skus.updated_at, excluded.updated_at) "
    "WHERE excluded.date_modified_ts + 1 >= woo_skus.updated_at"
)
UPSERT_EVENT_ROW = (
    "INSERT INTO woo_skus (product_id, parent_id, sku, type, manage_stock, stock_quantity, date_modified, "
    "date_modified_ts, name, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(product_id) DO UPDATE SET parent_id = excluded.parent_id, sku = excluded.sku, "
    "type = excluded.type, manage_stock = excluded.manage_stock, stock_quantity = excluded.stock_quantity, "
    "date_modified = excluded.date_modified, date_modified_ts = excluded.date_modified_ts, "
    "name = excluded.name, status = excluded.status, updated_at = excluded.updated_at"
)
SELECT_ROWS = (
    "SELECT product_id, parent_id, sku, type, manage_stock, stock_quantity, date_modified, date_modified_ts, "
    "name, status, updated_at FROM woo_skus WHERE "
)


def row_from_rest(p: dict[str, Any], parent_id: int = 0) -> dict[str, Any]:
    modified = p.get("date_modified_gmt") or p.get("date_modified")
    ts = parse_wc_date(modified) or 0.0
    manage = p.get("manage_stock") is True  # a variation may say "parent"; its own stock is not managed then
    ptype = p.get("type") or ("variation" if parent_id else "simple")
    return {
        "product_id": int(p["id"]),
        "parent_id": int(p.get("parent_id") or parent_id or 0),
        "sku": p.get("sku") or "",
        "type": ptype,
        "manage_stock": int(manage),
        "stock_quantity": p.get("stock_quantity") if manage else None,
        "date_modified": modified,
        "date_modified_ts": ts,
        "name": p.get("name") or "",
        "status": p.get("status") or "",
        "updated_at": ts,
    }


def last_stock_sets(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A product whose events here are all ``stock.set`` ends as its newest one makes it (each sets
    the same fields, and one older than the map's row is ignored): a burst of edits is one row."""
    kinds: dict[int, set[Any]] = {}
    newest: dict[int, tuple[float, int]] = {}
    for i, e in enumerate(events):
        pid = int(e["product_id"])
        kinds.setdefault(pid, set()).add(e.get("type"))
        at = float(e.get("occurred_at") or 0.0)
        if pid not in newest or at >= newest[pid][0]:  # (the later of equals, as one by one would leave it)
            newest[pid] = (at, i)
    return [e for i, e in enumerate(events)
            if kinds[int(e["product_id"])] != {"stock.set"} or newest[int(e["product_id"])][1] == i]


def event_row(event: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The map row after one plugin event (``{"deleted": True}`` for a deletion); None to ignore it."""
    etype = event.get("type")
    at = float(event.get("occurred_at") or 0.0)
    if current is not None and float(current["updated_at"] or 0.0) > at:
        return None
    if etype == "product.deleted":
        return {"deleted": True}
    if etype not in ("stock.set", "product.upsert"):
        return None
    parent_id = int(event.get("parent_id", current["parent_id"] if current else 0) or 0)
    row: dict[str, Any] = {
        "product_id": int(event["product_id"]),
        "parent_id": parent_id,
        "sku": event.get("sku") or "",
        "type": (current["type"] or "simple") if current else ("variation" if parent_id else "simple"),
        "manage_stock": int(bool(current["manage_stock"])) if current else 0,
        "stock_quantity": current["stock_quantity"] if current else None,
        "date_modified": current["date_modified"] if current else None,
        "date_modified_ts": 0.0 if current is None else (current["date_modified_ts"]
                                                           if current["date_modified_ts"] is not None
                                                           else ts_of(current["date_modified"])),
        "name": (current["name"] or "") if current else "",
        "status": (current["status"] or "") if current else "",
        "updated_at": at,
    }
    if etype == "stock.set":
        quantity = event.get("stock_quantity")
        row["stock_quantity"] = quantity
        row["manage_stock"] = int(quantity is not None)
    else:
        product = event.get("product") or {}
        if product.get("type"):
            row["type"] = product["type"]
        if "manage_stock" in product:
            row["manage_stock"] = int(bool(product["manage_stock"]))
        if "stock_quantity" in product:
            row["stock_quantity"] = product["stock_quantity"] if row["manage_stock"] else None
        for name in ("name", "status"):
            if name in product:
                row[name] = product[name]
    return row


def ts_of(text: str | None) -> float:
    return parse_wc_date(text) or 0.0
