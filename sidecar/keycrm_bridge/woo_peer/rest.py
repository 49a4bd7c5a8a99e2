"""The wc/v3 routes the bridge uses, with WooCommerce's parameter rules and answer shapes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .plugin import events_for_change
from .product import PRODUCT_TYPES, STATUSES, FieldError, Product, product_json

if TYPE_CHECKING:
    from .server import WooPeer

BATCH_LIMIT = 100  # default of the woocommerce_rest_batch_items_limit filter
ORDERBY = (
    "date",
    "modified",
    "id",
    "include",
    "title",
    "slug",
    "price",
    "popularity",
    "rating",
    "menu_order",
)


@dataclass
class RestCall:
    method: str
    route: str  # the part after /wp-json/wc/v3/
    query: dict[str, str]
    body: Any
    cause: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RestAnswer:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


def wc_error(code: str, message: str, status: int, **data: Any) -> RestAnswer:
    return RestAnswer(status, {"code": code, "message": message, "data": {"status": status, **data}})


def invalid_param(name: str, detail: str) -> RestAnswer:
    return wc_error(
        "rest_invalid_param",
        f"Invalid parameter(s): {name}",
        400,
        params={name: detail},
        details={name: {"code": "rest_invalid_param", "message": detail, "data": None}},
    )


class ParamError(Exception):
    def __init__(self, answer: RestAnswer) -> None:
        super().__init__(answer.payload["message"])
        self.answer = answer


def _int_param(q: dict[str, str], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParamError(invalid_param(name, f"{name} is not of type integer.")) from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} (inclusive) and {hi} (inclusive)" if hi is not None else f"greater than or equal to {lo}"
        raise ParamError(invalid_param(name, f"{name} must be {bound}"))
    return value


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


def _date_param(q: dict[str, str], name: str) -> int | None:
    """rest_parse_date: RFC 3339; without a zone the site's zone (UTC here)."""
    raw = q.get(name)
    if not raw:
        return None
    if not _DATE_RE.match(raw):
        raise ParamError(invalid_param(name, "Invalid date."))
    text = raw.replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # WordPress compares whole seconds (post_modified is DATETIME).
    return math.floor(parsed.timestamp())


def _sort_key(orderby: str, include: list[int]) -> Callable[[Product], Any]:
    if orderby == "modified":
        return lambda p: (p.date_modified, p.id)
    if orderby == "title":
        return lambda p: (p.name, p.id)
    if orderby == "price":
        return lambda p: (float(p.price) if p.price else 0.0, p.id)
    if orderby == "menu_order":
        return lambda p: (p.menu_order, p.id)
    if orderby == "include":
        pos = {pid: i for i, pid in enumerate(include)}
        return lambda p: (pos.get(p.id, len(pos)), p.id)
    if orderby in ("id", "slug", "popularity", "rating"):
        return lambda p: p.id
    return lambda p: (p.date_created, p.id)


def list_products(peer: WooPeer, q: dict[str, str], parent_id: int | None) -> RestAnswer:
    """GET products and GET products/{id}/variations."""
    per_page = _int_param(q, "per_page", 10, 1, 100)
    page = _int_param(q, "page", 1, 1, None)
    offset = _int_param(q, "offset", -1, 0, None)
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ParamError(invalid_param("order", "order is not one of asc and desc."))
    orderby = q.get("orderby", "date")
    if orderby not in ORDERBY:
        raise ParamError(invalid_param("orderby", f"orderby is not one of {', '.join(ORDERBY)}."))
    ptype = q.get("type", "")
    if ptype and ptype not in PRODUCT_TYPES:
        raise ParamError(invalid_param("type", f"type is not one of {', '.join(PRODUCT_TYPES)}."))
    status = q.get("status", "any")
    if status != "any" and status not in STATUSES:
        raise ParamError(invalid_param("status", "status is not one of any, " + ", ".join(STATUSES) + "."))
    after = _date_param(q, "modified_after")
    before = _date_param(q, "modified_before")
    include: list[int] = []
    if q.get("include"):
        try:
            include = [int(x) for x in q["include"].split(",") if x.strip()]
        except ValueError:
            raise ParamError(invalid_param("include", "include[0] is not of type integer.")) from None
    search = q.get("search", "").strip().lower()
    # sanitize_text_field trims and collapses whitespace; the controller explodes on commas and
    # also tries the whole string.
    sku_raw = re.sub(r"[\r\n\t ]+", " ", q.get("sku", "")).strip()
    skus: tuple[str, ...] = ()
    if sku_raw:
        parts = sku_raw.split(",")
        skus = tuple(parts + [sku_raw] if len(parts) > 1 else parts)

    candidates: set[int] | list[int] | None = None
    if parent_id is not None:
        candidates = [c.id for c in peer.catalog.children(parent_id)]
    if skus:
        found = peer.catalog.sku_candidates(skus)
        candidates = found if candidates is None else [i for i in candidates if i in found]
    if include:
        wanted = set(include)
        candidates = wanted if candidates is None else [i for i in candidates if i in wanted]

    # Without a SKU filter the products route lists post type `product` only (no variations).
    variations_too = parent_id is not None or bool(skus)

    def predicate(p: Product) -> bool:
        if p.type == "variation" and not variations_too:
            return False
        if status == "any":
            if p.status == "trash":
                return False
        elif p.status != status:
            return False
        if ptype and p.type != ptype:
            return False
        if after is not None and not p.date_modified > after:
            return False
        if before is not None and not p.date_modified < before:
            return False
        return not (search and search not in p.name.lower() and search not in p.sku.lower())

    key = ("list", parent_id, skus, tuple(include), ptype, status, after, before, search, orderby, order)
    ids = peer.catalog.query(
        cache_key=key,
        predicate=predicate,
        sort_key=_sort_key(orderby, include),
        descending=order == "desc",
        candidates=candidates,
    )
    total = len(ids)
    start = offset if offset >= 0 else (page - 1) * per_page
    page_ids = ids[start : start + per_page]
    items = []
    with peer.catalog.lock:
        for pid in page_ids:
            p = peer.catalog.get(pid)
            if p is not None:
                items.append(product_json(p, peer.home_url))
    pages = math.ceil(total / per_page) if total else 0
    return RestAnswer(200, items, {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)})


def _get_one(peer: WooPeer, pid: int, parent_id: int | None) -> Product:
    p = peer.catalog.get(pid)
    if (
        p is None
        or (parent_id is None and p.type == "variation")
        or (parent_id is not None and p.parent_id != parent_id)
    ):
        code = (
            "woocommerce_rest_product_variation_invalid_id"
            if parent_id is not None
            else "woocommerce_rest_product_invalid_id"
        )
        raise FieldError(code, "Invalid ID.", 404)
    return p


def _create(peer: WooPeer, call: RestCall, item: Any, parent_id: int | None) -> Product:
    if not isinstance(item, dict):
        raise FieldError("rest_invalid_param", "Invalid parameter(s): body", 400)
    p = peer.catalog.create(item, parent_id=parent_id or 0)
    call.events.append(peer.events.upsert(p, call.cause))
    if p.manage_stock:
        call.events.append(peer.events.stock_set(p, call.cause))
    return p


def _update(peer: WooPeer, call: RestCall, pid: int, item: Any, parent_id: int | None) -> Product:
    if not isinstance(item, dict):
        raise FieldError("rest_invalid_param", "Invalid parameter(s): body", 400)
    _get_one(peer, pid, parent_id)
    p, changed, old_sku = peer.catalog.update(pid, {k: v for k, v in item.items() if k not in ("id", "type")})
    call.events.extend(events_for_change(peer.events, p, changed, old_sku, call.cause))
    return p


def _delete(peer: WooPeer, call: RestCall, pid: int, parent_id: int | None) -> Product:
    _get_one(peer, pid, parent_id)
    removed = peer.catalog.delete(pid)
    for p in removed:
        call.events.append(peer.events.deleted(p, call.cause))
    return removed[0]


def _item_error(item_id: Any, exc: FieldError) -> dict[str, Any]:
    return {
        "id": item_id,
        "error": {"code": exc.code, "message": exc.message, "data": {"status": exc.status}},
    }


def batch(peer: WooPeer, call: RestCall, parent_id: int | None) -> RestAnswer:
    body = call.body if isinstance(call.body, dict) else {}
    sections: dict[str, list[Any]] = {}
    for name in ("create", "update", "delete"):
        items = body.get(name)
        if items is None:
            continue
        if not isinstance(items, list):
            return invalid_param(name, f"{name} is not of type array.")
        sections[name] = items
    if sum(len(items) for items in sections.values()) > peer.batch_limit:
        return wc_error(
            "woocommerce_rest_request_entity_too_large",
            f"Unable to accept more than {peer.batch_limit} items for this request.",
            413,
        )
    out: dict[str, list[Any]] = {}
    home = peer.home_url
    for item in sections.get("create", []):
        try:
            out.setdefault("create", []).append(product_json(_create(peer, call, item, parent_id), home))
        except FieldError as exc:
            out.setdefault("create", []).append(_item_error(0, exc))
    for item in sections.get("update", []):
        raw_id = item.get("id") if isinstance(item, dict) else None
        try:
            pid = int(raw_id) if raw_id is not None else 0
        except (TypeError, ValueError):
            pid = 0
        try:
            if pid <= 0:
                raise FieldError("woocommerce_rest_product_invalid_id", "Invalid ID.", 400)
            out.setdefault("update", []).append(product_json(_update(peer, call, pid, item, parent_id), home))
        except FieldError as exc:
            out.setdefault("update", []).append(_item_error(pid, exc))
    for raw in sections.get("delete", []):
        try:
            pid = int(raw)
            out.setdefault("delete", []).append(product_json(_delete(peer, call, pid, parent_id), home))
        except (TypeError, ValueError):
            out.setdefault("delete", []).append(
                _item_error(0, FieldError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404))
            )
        except FieldError as exc:
            out.setdefault("delete", []).append(_item_error(raw, exc))
    return RestAnswer(200, out)


_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^products/?$"), "products"),
    (re.compile(r"^products/batch/?$"), "batch"),
    (re.compile(r"^products/(\d+)/?$"), "product"),
    (re.compile(r"^products/(\d+)/variations/?$"), "variations"),
    (re.compile(r"^products/(\d+)/variations/batch/?$"), "variation_batch"),
    (re.compile(r"^products/(\d+)/variations/(\d+)/?$"), "variation"),
]
EDITABLE = ("POST", "PUT", "PATCH")


def route_of(route: str) -> tuple[str, tuple[int, ...]] | None:
    for pattern, name in _ROUTES:
        m = pattern.match(route)
        if m:
            return name, tuple(int(g) for g in m.groups())
    return None


def dispatch(peer: WooPeer, call: RestCall) -> RestAnswer:
    found = route_of(call.route)
    if found is None:
        return wc_error("rest_no_route", "No route was found matching the URL and request method.", 404)
    name, ids = found
    m = call.method
    try:
        if name == "products" and m == "GET":
            return list_products(peer, call.query, None)
        if name == "products" and m == "POST":
            return RestAnswer(201, product_json(_create(peer, call, call.body, None), peer.home_url))
        if name == "batch" and m in EDITABLE:
            return batch(peer, call, None)
        if name == "product" and m == "GET":
            return RestAnswer(200, product_json(_get_one(peer, ids[0], None), peer.home_url))
        if name == "product" and m in EDITABLE:
            return RestAnswer(200, product_json(_update(peer, call, ids[0], call.body, None), peer.home_url))
        if name == "product" and m == "DELETE":
            return RestAnswer(200, product_json(_delete(peer, call, ids[0], None), peer.home_url))
        if name in ("variations", "variation_batch", "variation"):
            parent = peer.catalog.get(ids[0])
            if m != "GET" and (parent is None or parent.type != "variable"):
                return wc_error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
        if name == "variations" and m == "GET":
            return list_products(peer, call.query, ids[0])
        if name == "variations" and m == "POST":
            return RestAnswer(201, product_json(_create(peer, call, call.body, ids[0]), peer.home_url))
        if name == "variation_batch" and m in EDITABLE:
            return batch(peer, call, ids[0])
        if name == "variation" and m == "GET":
            return RestAnswer(200, product_json(_get_one(peer, ids[1], ids[0]), peer.home_url))
        if name == "variation" and m in EDITABLE:
            return RestAnswer(200, product_json(_update(peer, call, ids[1], call.body, ids[0]), peer.home_url))
        if name == "variation" and m == "DELETE":
            return RestAnswer(200, product_json(_delete(peer, call, ids[1], ids[0]), peer.home_url))
    except ParamError as exc:
        return exc.answer
    except FieldError as exc:
        extra = {"params": exc.params} if exc.params else {}
        return wc_error(exc.code, exc.message, exc.status, **extra)
    return wc_error("rest_no_route", "No route was found matching the URL and request method.", 404)


def permission_error(method: str, route: str) -> RestAnswer:
    """What WooCommerce answers an unauthenticated call (rest_authorization_required_code)."""
    found = route_of(route)
    name = found[0] if found else ""
    if name.endswith("batch"):
        return wc_error(
            "woocommerce_rest_cannot_batch",
            "Sorry, you are not allowed to batch manipulate this resource.",
            401,
        )
    if method == "GET":
        return wc_error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
    if method == "DELETE":
        return wc_error("woocommerce_rest_cannot_delete", "Sorry, you are not allowed to delete this resource.", 401)
    if name in ("products", "variations"):
        return wc_error("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.", 401)
    return wc_error("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.", 401)
