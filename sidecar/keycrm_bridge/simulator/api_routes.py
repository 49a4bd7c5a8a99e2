"""Handlers of the KeyCRM operations the bridge uses, keyed by the spec's ``operationId``.

Each handler gets the validated request (query already cast by openapi-core: ``limit``/``page`` ints
with the spec's defaults, ``filter`` a dict of strings) and returns ``(status, body, log_extra)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keycrm_bridge.simulator import shapes
from keycrm_bridge.simulator.state import ORDER_STATUSES, SimError, SimState
from keycrm_bridge.simulator.validation import ValidationResult

Answer = tuple[int, Any, dict[str, Any]]


@dataclass
class Call:
    """One validated API request as a handler sees it."""

    state: SimState
    v: ValidationResult
    base_url: str  # this route's URL without query, for page links

    @property
    def filters(self) -> dict[str, Any]:
        value = self.v.query.get("filter")
        return value if isinstance(value, dict) else {}

    @property
    def includes(self) -> set[str]:
        raw = self.v.query.get("include") or ""
        return {part.strip() for part in str(raw).split(",") if part.strip()}

    @property
    def limit(self) -> int:
        return int(self.v.query.get("limit") or 15)

    @property
    def page(self) -> int:
        return max(1, int(self.v.query.get("page") or 1))

    @property
    def body(self) -> dict[str, Any]:
        return self.v.body if isinstance(self.v.body, dict) else {}


def _csv(value: Any) -> list[str]:
    """KeyCRM list filters are comma-separated. SKUs are not stripped: ``" A1"`` and ``"A1"`` differ."""
    if value is None:
        return []
    return [part for part in str(value).split(",") if part != ""]


def _int_list(value: Any) -> list[int]:
    out = []
    for part in _csv(value):
        try:
            out.append(int(part.strip()))
        except ValueError:
            continue
    return out


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _paginate(
    call: Call, ids: Sequence[int], render: Callable[[int], dict[str, Any]], descending: bool = False
) -> dict[str, Any]:
    total = len(ids)
    start = (call.page - 1) * call.limit
    if descending:
        hi = total - start  # ascending index just past this page
        window = [ids[i] for i in range(hi - 1, max(0, hi - call.limit) - 1, -1)] if hi > 0 else []
    else:
        window = list(ids[start : start + call.limit])
    return shapes.page_envelope(call.base_url, total, call.page, call.limit, [render(i) for i in window])


def _select_offers(
    state: SimState, *, ids: Any = None, skus: Any = None, product_ids: Any = None, archived: Any = None
) -> Sequence[int]:
    """Offer ids matching the filters, ascending. No filter: the state's own ascending list (no copy)."""
    chosen: set[int] | None = None

    def narrow(found: set[int]) -> None:
        nonlocal chosen
        chosen = found if chosen is None else chosen & found

    if ids is not None:
        narrow({i for i in _int_list(ids) if i in state.offers})
    if skus is not None:
        narrow({oid for sku in _csv(skus) for oid in state.sku_index.get(sku, ())})
    if product_ids is not None:
        narrow({oid for pid in _int_list(product_ids) for oid in state.product_offers.get(pid, ())})
    if archived is not None:
        flag = _truthy(archived)
        base = chosen if chosen is not None else set(state.offers)
        chosen = {oid for oid in base if state.offers[oid].is_archived == flag}
    return state.offer_ids if chosen is None else sorted(chosen)


def _sort_desc(call: Call) -> bool:
    return str(call.v.query.get("sort") or "id").strip().startswith("-")


# ------------------------------------------------------------------ offers
def get_stocks(call: Call) -> Answer:
    f = call.filters
    details = _truthy(f.get("details", False))
    with call.state.lock:
        ids = _select_offers(call.state, ids=f.get("offers_id"), skus=f.get("offers_sku"))
        body = _paginate(call, ids, lambda oid: shapes.offer_stocks(call.state, oid, details))
    return 200, body, {}


def put_stocks(call: Call) -> Answer:
    body = call.body
    result = call.state.set_stocks(int(body["warehouse_id"]), body.get("stocks") or [])
    extra = {
        "applied": result.applied,
        "ignored": len(result.ignored),
        "ignored_rows": result.ignored,
        "changed": len(result.changed_offer_ids),
    }
    return 202, {"status": True}, extra


def get_offers(call: Call) -> Answer:
    f = call.filters
    include_product = "product" in call.includes
    with call.state.lock:
        ids = _select_offers(
            call.state,
            ids=f.get("id"),
            skus=f.get("sku"),
            product_ids=f.get("product_id"),
            archived=f.get("is_archived"),
        )
        body = _paginate(
            call, ids, lambda oid: shapes.offer(call.state, oid, include_product), _sort_desc(call)
        )
    return 200, body, {}


def put_offers(call: Call) -> Answer:
    result = call.state.update_offers(call.body.get("offers") or [])
    return (
        202,
        {"status": True},
        {"applied": result.applied, "ignored": len(result.ignored), "ignored_rows": result.ignored},
    )


# ---------------------------------------------------------------- products
def _product_id(call: Call) -> int:
    try:
        return int(str(call.v.path_params.get("productId")))
    except ValueError as exc:
        raise SimError("Product not found.", 404) from exc


def get_products(call: Call) -> Answer:
    f = call.filters
    custom = "custom_fields" in call.includes
    state = call.state
    with state.lock:
        ids: Sequence[int] = state.product_ids
        if f.get("product_id") is not None:
            ids = sorted(i for i in set(_int_list(f["product_id"])) if i in state.products)
        if f.get("category_id") is not None:
            cats = set(_int_list(f["category_id"]))
            ids = [i for i in ids if state.products[i].category_id in cats]
        if f.get("is_archived") is not None:
            flag = _truthy(f["is_archived"])
            ids = [i for i in ids if state.products[i].is_archived == flag]
        body = _paginate(call, ids, lambda pid: shapes.product(state, state.products[pid], custom))
    return 200, body, {}


def post_product(call: Call) -> Answer:
    with call.state.lock:
        product = call.state.create_product(call.body)
        return 201, shapes.product(call.state, product), {"product_id": product.id}


def get_product(call: Call) -> Answer:
    pid = _product_id(call)
    with call.state.lock:
        product = call.state.products.get(pid)
        if product is None:
            raise SimError("Product not found.", 404)
        return 200, shapes.product(call.state, product, "custom_fields" in call.includes), {}


def put_product(call: Call) -> Answer:
    with call.state.lock:
        product = call.state.update_product(_product_id(call), call.body)
        return 202, shapes.product(call.state, product), {}


def post_product_offers(call: Call) -> Answer:
    offers = call.state.add_offers(_product_id(call), call.body.get("offers") or [])
    return 201, {"status": True}, {"offer_ids": [o.id for o in offers]}


# ------------------------------------------------------------------ orders
def _parse_between(value: str) -> tuple[float, float]:
    """``"2020-08-24 00:00:00, 2020-09-22 23:59:59"``, or date-only ``"2020-08-24,2020-09-22"``
    (whole days), as the spec's examples write it."""
    parts = [p.strip() for p in str(value).split(",")]
    if len(parts) != 2:
        raise SimError("The between filter takes two dates separated by a comma.")
    bounds = []
    for i, part in enumerate(parts):
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
            try:
                moment = datetime.strptime(part, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
            seconds = moment.timestamp()
            if fmt == "%Y-%m-%d" and i == 1:
                seconds += 86400 - 1
            bounds.append(seconds)
            break
        else:
            raise SimError(f"The date {part!r} does not match the format Y-m-d H:i:s.")
    return bounds[0], bounds[1]


def get_orders(call: Call) -> Answer:
    f = call.filters
    state = call.state
    with state.lock:
        if f.get("source_uuid") is not None:
            ids: list[int] = sorted(
                {oid for u in _csv(f["source_uuid"]) for oid in state.orders_by_uuid.get(u, ())}
            )
        else:
            ids = list(state.order_ids)
        if f.get("status_id") is not None:
            wanted = set(_int_list(f["status_id"]))
            ids = [i for i in ids if ORDER_STATUSES[state.orders[i].status][0] in wanted]
        for key, attr in (("updated_between", "updated_at"), ("created_between", "created_at")):
            if f.get(key) is not None:
                lo, hi = _parse_between(f[key])
                # KeyCRM compares whole seconds, as the timestamps it prints
                ids = [i for i in ids if lo <= int(getattr(state.orders[i], attr)) <= hi]
        sort = str(call.v.query.get("sort") or "id").strip()
        key_name = sort.lstrip("-")
        if key_name in ("updated_at", "created_at"):
            ids.sort(key=lambda i: (getattr(state.orders[i], key_name), i), reverse=sort.startswith("-"))
        elif sort.startswith("-"):
            ids.reverse()
        includes = call.includes
        body = _paginate(call, ids, lambda oid: shapes.order(state, state.orders[oid], includes))
    return 200, body, {}


def post_order(call: Call) -> Answer:
    body = call.body
    with call.state.lock:
        order = call.state.create_order(
            body.get("products") or [], source_uuid=body.get("source_uuid"), source_id=int(body["source_id"])
        )
        return 201, shapes.order(call.state, order, set()), {"order_id": order.id}


HANDLERS: dict[str, Callable[[Call], Answer]] = {
    "getPaginatedListOfStocks": get_stocks,
    "offersStocksUpdate": put_stocks,
    "getPaginatedListOfOffers": get_offers,
    "offersUpdate": put_offers,
    "getPaginatedListOfProducts": get_products,
    "createNewProduct": post_product,
    "getProductById": get_product,
    "updateExistingProduct": put_product,
    "createNewProductOffers": post_product_offers,
    "getPaginatedListOfOrders": get_orders,
    "createNewOrder": post_order,
}
