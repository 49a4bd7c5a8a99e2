"""Filling the simulated account for a test, and reading back what it really holds.

Kept apart from ``SimState`` because neither is KeyCRM behaviour: seeding sends no webhooks (as adding
a webhook in KeyCRM sends nothing) and ``truth`` exists only for assertions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from keycrm_bridge.simulator.records import OFFER_FIELDS, generated_sku, num

if TYPE_CHECKING:
    from keycrm_bridge.simulator.state import SimState


def seed(state: SimState, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the catalogue for a test (no webhooks, like KeyCRM adding a webhook sends nothing).

    ``warehouses``: ids or ``{"id", "name"}``; ``count``/``prefix``/``start``: generated simple
    products ``SKU-000001``…; ``quantity``/``reserve``: a number (first warehouse) or
    ``{warehouse_id: n}``; ``offers``: explicit simple products ``{sku, quantity, reserve, price,
    name, …}``; ``products``: ``{name, description, …, offers: [{sku, properties, quantity, …}]}``
    with variations.
    """
    with state.lock:
        for wh in spec.get("warehouses") or ([] if state.warehouses else [1]):
            if isinstance(wh, Mapping):
                state.add_warehouse(int(wh["id"]), wh.get("name") or wh.get("title"))
            else:
                state.add_warehouse(int(wh))
        first_offer = state._next_offer
        count = int(spec.get("count") or 0)
        prefix = str(spec.get("prefix", "SKU-"))
        start = int(spec.get("start", 1))
        defaults = {k: spec[k] for k in ("quantity", "reserve", "price", "purchased_price") if k in spec}
        for i in range(start, start + count):
            sku = generated_sku(i, prefix)
            _seed_simple(state, {"sku": sku, "name": f"Product {sku}", **defaults})
        for row in spec.get("offers") or ():
            _seed_simple(state, {**defaults, **row})
        for prod in spec.get("products") or ():
            fields = {k: v for k, v in prod.items() if k != "offers"}
            product = state.create_product(fields)
            for row in prod.get("offers") or ():
                (offer,) = state.add_offers(product.id, [row])
                _seed_stock(state, offer.id, row)
        return {
            "warehouses": sorted(state.warehouses),
            "offers_created": state._next_offer - first_offer,
            "first_offer_id": first_offer if state._next_offer > first_offer else None,
            "last_offer_id": state._next_offer - 1 if state._next_offer > first_offer else None,
            "offers_total": len(state.offers),
        }


def _seed_simple(state: SimState, row: Mapping[str, Any]) -> None:
    fields = {k: v for k, v in row.items() if k not in ("quantity", "reserve")}
    fields.setdefault("name", f"Product {row['sku']}")
    product = state.create_product(fields)
    _seed_stock(state, state.product_offers[product.id][0], row)


def _seed_stock(state: SimState, offer_id: int, row: Mapping[str, Any]) -> None:
    first = min(state.warehouses)
    for key in ("quantity", "reserve"):
        value = row.get(key)
        if value is None:
            continue
        per_wh = value if isinstance(value, Mapping) else {first: value}
        for wh, amount in per_wh.items():
            state.add_warehouse(int(wh))
            setattr(state.cell(offer_id, int(wh)), key, num(amount))


def truth(
    state: SimState, skus: Iterable[str] | None = None, warehouses: Iterable[int] | None = None
) -> dict[str, Any]:
    """What KeyCRM really holds, for assertions: per SKU the offer, per-warehouse cells, totals and
    sellable (Σ quantity − reserve over ``warehouses``, default all). Unknown SKUs map to None."""
    with state.lock:
        whs = list(warehouses) if warehouses is not None else None
        wanted = list(skus) if skus is not None else list(state.sku_index)
        out: dict[str, Any] = {}
        for sku in wanted:
            ids = state.sku_index.get(sku)
            out[sku] = _truth_row(state, ids, whs) if ids else None
        return out


def _truth_row(state: SimState, ids: list[int], whs: list[int] | None) -> dict[str, Any]:
    offer = state.offers[ids[0]]
    product = state.products[offer.product_id]
    quantity, reserve = state.totals(offer.id, whs)
    return {
        "offer_id": offer.id,
        "offer_ids": list(ids),
        "product_id": offer.product_id,
        "product_name": product.name,
        "product_description": product.description,
        "quantity": quantity,
        "reserve": reserve,
        "sellable": num(quantity - reserve),
        "warehouses": {
            str(w): {"quantity": c.quantity, "reserve": c.reserve} for w, c in sorted(state.stock[offer.id].items())
        },
        **{name: getattr(offer, name) for name in (*OFFER_FIELDS, "barcode", "thumbnail_url")},
        "properties": offer.properties,
        "updated_at": offer.updated_at,
    }
