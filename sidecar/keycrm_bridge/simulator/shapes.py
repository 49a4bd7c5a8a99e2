"""JSON shapes of the spec's schemas (Offer, OfferStocks, Warehouse, ProductWithIncludes, ProductOffer,
OrderWithIncludes, PaginatedResponse), built from the state. Call with ``state.lock`` held."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from keycrm_bridge.simulator.state import ORDER_STATUSES, Offer, Order, Product, SimState


def timestamp(seconds: float | None) -> str | None:
    """KeyCRM's UTC ``YYYY-MM-DD HH:MM:SS``."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def warehouse_stock(state: SimState, offer_id: int) -> list[dict[str, Any]]:
    """``Warehouse`` rows for ``filter[details]=true``: every warehouse of the account, in id order."""
    cells = state.stock.get(offer_id, {})
    rows = []
    for wh_id in sorted(state.warehouses):
        cell = cells.get(wh_id)
        rows.append(
            {
                "id": wh_id,
                "name": state.warehouses[wh_id].name,
                "quantity": cell.quantity if cell else 0,
                "reserve": cell.reserve if cell else 0,
            }
        )
    return rows


def offer_stocks(state: SimState, offer_id: int, details: bool) -> dict[str, Any]:
    offer = state.offers[offer_id]
    quantity, reserve = state.totals(offer_id)
    row: dict[str, Any] = {
        "id": offer.id,
        "sku": offer.sku,
        "price": offer.price,
        "purchased_price": offer.purchased_price,
        "quantity": quantity,
        "reserve": reserve,
    }
    if details:
        row["warehouse"] = warehouse_stock(state, offer_id)
    return row


def offer(state: SimState, offer_id: int, include_product: bool) -> dict[str, Any]:
    o = state.offers[offer_id]
    row = _offer_fields(state, o)
    if include_product:
        row["product"] = product_offer(state, state.products[o.product_id])
    return row


def _offer_fields(state: SimState, o: Offer) -> dict[str, Any]:
    return {
        "id": o.id,
        "product_id": o.product_id,
        "sku": o.sku,
        "barcode": o.barcode,
        "thumbnail_url": o.thumbnail_url,
        "price": o.price,
        "purchased_price": o.purchased_price,
        "quantity": state.totals(o.id)[0],
        "weight": o.weight,
        "length": o.length,
        "width": o.width,
        "height": o.height,
        "properties": [dict(p) for p in o.properties],
    }


def _product_common(state: SimState, p: Product) -> dict[str, Any]:
    offer_ids = state.product_offers.get(p.id, [])
    prices = [state.offers[i].price for i in offer_ids]
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "thumbnail_url": p.pictures[0] if p.pictures else None,
        "attachments_data": list(p.pictures),
        "quantity": sum(state.totals(i)[0] for i in offer_ids),
        "unit_type": p.unit_type,
        "currency_code": p.currency_code,
        "min_price": min(prices) if prices else 0,
        "max_price": max(prices) if prices else 0,
        "weight": p.weight,
        "length": p.length,
        "width": p.width,
        "height": p.height,
        "has_offers": p.has_offers,
        "is_archived": p.is_archived,
        "category_id": p.category_id,
        "created_at": timestamp(p.created_at),
        "updated_at": timestamp(p.updated_at),
    }


def _default_offer(state: SimState, p: Product) -> Offer | None:
    ids = state.product_offers.get(p.id, [])
    return state.offers[ids[0]] if ids and not p.has_offers else None


def product(state: SimState, p: Product, include_custom_fields: bool = False) -> dict[str, Any]:
    """``ProductWithIncludes``: sku/barcode/price only for a product without variations."""
    row = _product_common(state, p)
    default = _default_offer(state, p)
    if default is not None:
        row.update(
            {
                "sku": default.sku,
                "barcode": default.barcode,
                "price": default.price,
                "purchased_price": default.purchased_price,
            }
        )
    if include_custom_fields:
        row["custom_fields"] = [dict(cf) for cf in p.custom_fields]
    return row


def product_offer(state: SimState, p: Product) -> dict[str, Any]:
    """``ProductOffer`` (the ``product`` of ``GET /offers?include=product``)."""
    row = _product_common(state, p)
    default = _default_offer(state, p)
    row["sku"] = default.sku if default is not None else None
    agg: dict[str, list[str]] = {}
    for oid in state.product_offers.get(p.id, []):
        for prop in state.offers[oid].properties:
            values = agg.setdefault(prop["name"], [])
            if prop["value"] not in values:
                values.append(prop["value"])
    row["properties_agg"] = agg
    return row


def order(state: SimState, o: Order, includes: set[str]) -> dict[str, Any]:
    status_id, group_id, status_name = ORDER_STATUSES[o.status]
    total = sum(line.price * line.quantity for line in o.lines)
    row: dict[str, Any] = {
        "id": o.id,
        "parent_id": None,
        "source_uuid": o.source_uuid,
        "source_id": o.source_id,
        "status_id": status_id,
        "status_group_id": group_id,
        "grand_total": total,
        "promocode": None,
        "total_discount": 0,
        "expenses_sum": 0,
        "shipping_price": 0,
        "wrap_price": 0,
        "taxes": 0,
        "manager_comment": None,
        "buyer_comment": None,
        "gift_message": None,
        "is_gift": False,
        "payment_status": "not_paid",
        "last_synced_at": timestamp(o.updated_at),
        "created_at": timestamp(o.created_at),
        "ordered_at": timestamp(o.created_at),
        "updated_at": timestamp(o.updated_at),
        "closed_at": timestamp(o.closed_at),
    }
    if "products" in includes or "products.offer" in includes:
        wh = state.warehouses.get(o.warehouse_id)
        lines = []
        for line in o.lines:
            item: dict[str, Any] = {
                "name": line.name,
                "sku": line.sku,
                "price": line.price,
                "price_sold": line.price,
                "purchased_price": state.offers[line.offer_id].purchased_price,
                "discount_percent": None,
                "discount_amount": None,
                "total_discount": 0,
                "quantity": line.quantity,
                "unit_type": None,
                "upsale": False,
                "comment": None,
                "product_status_id": None,
                "picture": None,
                "properties": [dict(p) for p in state.offers[line.offer_id].properties],
                "shipment_type": "warehouse",
                "warehouse": {
                    "id": o.warehouse_id,
                    "name": wh.name if wh else "",
                    "description": None,
                    "is_active": True,
                },
            }
            if "products.offer" in includes:
                item["offer"] = _offer_fields(state, state.offers[line.offer_id])
            lines.append(item)
        row["products"] = lines
    if "status" in includes:
        row["status"] = {
            "id": status_id,
            "name": status_name,
            "alias": o.status,
            "is_active": True,
            "group_id": group_id,
            "is_closing_order": o.status != "new",
            "is_reserved": True,
            "created_at": None,
            "updated_at": None,
        }
    return row


def page_envelope(
    base_url: str, total: int, page: int, per_page: int, data: list[dict[str, Any]]
) -> dict[str, Any]:
    """The spec's ``PaginatedResponse`` plus ``last_page``/``from``/``to`` (as live KeyCRM answers).

    Page links carry only ``page``, like the spec's example (``…/{current_path}?page=2``): a client
    has to keep its own filters and limit when it asks for the next page.
    """
    last_page = max(1, -(-total // per_page))
    first = (page - 1) * per_page + 1 if data else None

    def link(n: int) -> str:
        return f"{base_url}?{urlencode({'page': n})}"

    return {
        "total": total,
        "current_page": page,
        "per_page": per_page,
        "data": data,
        "first_page_url": link(1),
        "last_page_url": link(last_page),
        "next_page_url": link(page + 1) if page < last_page else None,
        "prev_page_url": link(page - 1) if page > 1 else None,
        "last_page": last_page,
        "from": first,
        "to": first + len(data) - 1 if first is not None else None,
    }
