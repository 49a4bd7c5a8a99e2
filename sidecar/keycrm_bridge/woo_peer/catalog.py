"""The peer's products: a thread-safe, in-memory WooCommerce catalogue.

Indexed by id and by SKU so that 100,000 products stay fast; list queries are cached per catalogue
version, because a client paging through 1,000 pages would otherwise re-filter and re-sort the
whole catalogue for every page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PRODUCT_TYPES = ("simple", "grouped", "external", "variable")
STATUSES = ("publish", "draft", "pending", "private", "future", "trash")
# Fields whose change is a product edit (product.upsert); stock fields are reported as stock.set.
PRODUCT_FIELDS = (
    "name",
    "sku",
    "status",
    "description",
    "short_description",
    "regular_price",
    "sale_price",
    "weight",
    "length",
    "width",
    "height",
    "manage_stock",
    "type",
)


class FieldError(Exception):
    """A write WooCommerce would reject; carries the wc/v3 error code and status."""

    def __init__(self, code: str, message: str, status: int = 400, params: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.params = params


@dataclass
class Product:
    id: int
    type: str
    name: str = ""
    sku: str = ""
    parent_id: int = 0
    status: str = "publish"
    description: str = ""
    short_description: str = ""
    regular_price: str = ""
    sale_price: str = ""
    manage_stock: bool = False
    stock_quantity: int | None = None
    stock_status: str = "instock"
    backorders: str = "no"
    weight: str = ""
    length: str = ""
    width: str = ""
    height: str = ""
    menu_order: int = 0
    date_created: int = 0
    date_modified: int = 0
    variations: list[int] = field(default_factory=list)

    @property
    def price(self) -> str:
        return self.sale_price or self.regular_price


def wp_date(ts: int) -> str:
    """WordPress' REST date format (site timezone is UTC in the peer, so local == GMT)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def product_json(p: Product, home_url: str) -> dict[str, Any]:
    """The wc/v3 shape of a product or variation, for the fields the bridge reads."""
    slug = f"product-{p.id}"
    return {
        "id": p.id,
        "name": p.name,
        "slug": slug,
        "permalink": f"{home_url}/?p={p.id}",
        "date_created": wp_date(p.date_created),
        "date_created_gmt": wp_date(p.date_created),
        "date_modified": wp_date(p.date_modified),
        "date_modified_gmt": wp_date(p.date_modified),
        "type": p.type,
        "status": p.status,
        "description": p.description,
        "short_description": p.short_description,
        "sku": p.sku,
        "price": p.price,
        "regular_price": p.regular_price,
        "sale_price": p.sale_price,
        "on_sale": bool(p.sale_price),
        "manage_stock": p.manage_stock,
        "stock_quantity": p.stock_quantity if p.manage_stock else None,
        "stock_status": p.stock_status,
        "backorders": p.backorders,
        "weight": p.weight,
        "dimensions": {"length": p.length, "width": p.width, "height": p.height},
        "parent_id": p.parent_id,
        "menu_order": p.menu_order,
        "variations": list(p.variations),
    }


def _as_price(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError(
            "rest_invalid_param",
            f"Invalid parameter(s): {name}",
            params={name: f"{name} is not of type string."},
        )
    text = str(value).strip()
    try:
        float(text)
    except ValueError:
        # WooCommerce stores whatever string it gets (wc_format_decimal empties junk); keep that.
        return ""
    return text


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise FieldError(
            "rest_invalid_param",
            f"Invalid parameter(s): {name}",
            params={name: f"{name} is not of type integer."},
        )
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise FieldError(
        "rest_invalid_param",
        f"Invalid parameter(s): {name}",
        params={name: f"{name} is not of type integer."},
    )


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    raise FieldError(
        "rest_invalid_param",
        f"Invalid parameter(s): {name}",
        params={name: f"{name} is not of type boolean."},
    )


def _as_str(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FieldError(
        "rest_invalid_param", f"Invalid parameter(s): {name}", params={name: f"{name} is not of type string."}
    )


class Catalog:
    """Products and variations by id, with a SKU index. All access goes through one lock."""

    def __init__(self, clock_now: Callable[[], float]) -> None:
        self._now = clock_now
        self.lock = threading.RLock()
        self._products: dict[int, Product] = {}
        self._by_sku: dict[str, set[int]] = {}
        self._next_id = 1
        self.version = 0
        self._query_cache: OrderedDict[tuple[Any, ...], tuple[int, list[int]]] = OrderedDict()

    # -- reading -----------------------------------------------------------------------------
    def get(self, product_id: int) -> Product | None:
        with self.lock:
            return self._products.get(product_id)

    def by_sku(self, sku: str) -> list[Product]:
        with self.lock:
            return [self._products[i] for i in sorted(self._by_sku.get(sku, ()))]

    def peek_next_id(self) -> int:
        with self.lock:
            return self._next_id

    def __len__(self) -> int:
        with self.lock:
            return len(self._products)

    def query(
        self,
        *,
        cache_key: tuple[Any, ...],
        predicate: Callable[[Product], bool],
        sort_key: Callable[[Product], Any],
        descending: bool,
        candidates: Iterable[int] | None = None,
    ) -> list[int]:
        """Ids matching ``predicate`` in order; reused while the catalogue is unchanged."""
        with self.lock:
            hit = self._query_cache.get(cache_key)
            if hit is not None and hit[0] == self.version:
                self._query_cache.move_to_end(cache_key)
                return hit[1]
            pool = (
                (self._products[i] for i in candidates if i in self._products)
                if candidates is not None
                else iter(self._products.values())
            )
            matched = [p for p in pool if predicate(p)]
            matched.sort(key=sort_key, reverse=descending)
            ids = [p.id for p in matched]
            self._query_cache[cache_key] = (self.version, ids)
            while len(self._query_cache) > 16:
                self._query_cache.popitem(last=False)
            return ids

    def sku_candidates(self, skus: Iterable[str]) -> set[int]:
        with self.lock:
            out: set[int] = set()
            for sku in skus:
                out |= self._by_sku.get(sku, set())
            return out

    def children(self, parent_id: int) -> list[Product]:
        with self.lock:
            parent = self._products.get(parent_id)
            if parent is None:
                return []
            return [self._products[v] for v in parent.variations if v in self._products]

    # -- writing -----------------------------------------------------------------------------
    def _touch(self, p: Product) -> None:
        p.date_modified = int(self._now())
        self.version += 1
        if p.parent_id and p.parent_id in self._products:
            # A variation save re-syncs and saves its parent (observed: woocommerce_update_product follows).
            self._products[p.parent_id].date_modified = p.date_modified

    def _index(self, p: Product) -> None:
        if p.sku:
            self._by_sku.setdefault(p.sku, set()).add(p.id)

    def _unindex(self, p: Product) -> None:
        if p.sku and p.sku in self._by_sku:
            self._by_sku[p.sku].discard(p.id)
            if not self._by_sku[p.sku]:
                del self._by_sku[p.sku]

    def create(self, fields: dict[str, Any], *, parent_id: int = 0, unique_sku: bool = True) -> Product:
        """Create a product (or a variation under ``parent_id``) from wc/v3 request fields."""
        with self.lock:
            if parent_id:
                parent = self._products.get(parent_id)
                if parent is None or parent.type != "variable":
                    raise FieldError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
                ptype = "variation"
            else:
                ptype = _as_str("type", fields.get("type", "simple"))
                if ptype not in PRODUCT_TYPES:
                    raise FieldError(
                        "rest_invalid_param",
                        "Invalid parameter(s): type",
                        params={"type": "type is not one of simple, grouped, external and variable."},
                    )
            now = int(self._now())
            p = Product(id=self._next_id, type=ptype, parent_id=parent_id, date_created=now, date_modified=now)
            self._apply(p, {k: v for k, v in fields.items() if k != "type"}, unique_sku=unique_sku)
            self._next_id += 1
            self._products[p.id] = p
            self._index(p)
            if parent_id:
                self._products[parent_id].variations.append(p.id)
            self._touch(p)
            return p

    def update(
        self, product_id: int, fields: dict[str, Any], *, unique_sku: bool = True
    ) -> tuple[Product, set[str], str]:
        """Apply fields; returns the product, the names of props that really changed and the old SKU."""
        with self.lock:
            p = self._products.get(product_id)
            if p is None:
                raise FieldError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
            old_sku = p.sku
            before = {name: getattr(p, name) for name in (*PRODUCT_FIELDS, "stock_quantity", "stock_status")}
            self._unindex(p)
            try:
                self._apply(p, fields, unique_sku=unique_sku)
            finally:
                self._index(p)
            changed = {name for name, value in before.items() if getattr(p, name) != value}
            if changed:
                self._touch(p)
            return p, changed, old_sku

    def delete(self, product_id: int) -> list[Product]:
        """Delete a product with its variations; returns everything removed."""
        with self.lock:
            p = self._products.pop(product_id, None)
            if p is None:
                raise FieldError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
            self._unindex(p)
            removed = [p]
            for vid in p.variations:
                child = self._products.pop(vid, None)
                if child is not None:
                    self._unindex(child)
                    removed.append(child)
            if p.parent_id and p.parent_id in self._products:
                parent = self._products[p.parent_id]
                parent.variations = [v for v in parent.variations if v != p.id]
                parent.date_modified = int(self._now())  # the parent re-syncs and is saved
            self.version += 1
            return removed

    def change_stock(self, product_id: int, delta: int) -> Product:
        """Order-driven change (wc_update_product_stock): relative, saves the product."""
        with self.lock:
            p = self._products.get(product_id)
            if p is None:
                raise FieldError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
            if not p.manage_stock or p.stock_quantity is None:
                raise FieldError("peer_stock_not_managed", f"product {product_id} does not manage stock", 409)
            p.stock_quantity += delta
            self._derive_stock_status(p)
            self._touch(p)
            return p

    def clear(self) -> None:
        with self.lock:
            self._products.clear()
            self._by_sku.clear()
            self._next_id = 1
            self.version += 1
            self._query_cache.clear()

    # -- field rules -------------------------------------------------------------------------
    @staticmethod
    def _derive_stock_status(p: Product) -> None:
        if p.manage_stock and p.stock_quantity is not None:
            if p.stock_quantity > 0:
                p.stock_status = "instock"
            else:
                p.stock_status = "onbackorder" if p.backorders != "no" else "outofstock"

    def _apply(self, p: Product, fields: dict[str, Any], *, unique_sku: bool) -> None:
        """Set props the way WC_REST_Products_V2_Controller::prepare_object_for_database does."""
        if "name" in fields:
            p.name = _as_str("name", fields["name"])
        if "status" in fields:
            status = _as_str("status", fields["status"])
            if status not in STATUSES:
                raise FieldError("rest_invalid_param", "Invalid parameter(s): status", params={"status": "invalid"})
            p.status = status
        for name in ("description", "short_description"):
            if name in fields:
                setattr(p, name, _as_str(name, fields[name]))
        for name in ("regular_price", "sale_price"):
            if name in fields:
                setattr(p, name, _as_price(name, fields[name]))
        if "weight" in fields:
            p.weight = _as_price("weight", fields["weight"])
        dims = fields.get("dimensions")
        if isinstance(dims, dict):
            for name in ("length", "width", "height"):
                if name in dims:
                    setattr(p, name, _as_price(name, dims[name]))
        if "menu_order" in fields:
            p.menu_order = _as_int("menu_order", fields["menu_order"])
        if "sku" in fields:
            sku = _as_str("sku", fields["sku"]).strip()
            if unique_sku and sku and any(i != p.id for i in self._by_sku.get(sku, ())):
                raise FieldError("product_invalid_sku", "Invalid or duplicated SKU.", 400)
            p.sku = sku
        if "backorders" in fields:
            p.backorders = _as_str("backorders", fields["backorders"])
        if "manage_stock" in fields:
            p.manage_stock = _as_bool("manage_stock", fields["manage_stock"])
        if p.manage_stock:
            if "stock_quantity" in fields and fields["stock_quantity"] is not None:
                p.stock_quantity = _as_int("stock_quantity", fields["stock_quantity"])
            elif p.stock_quantity is None:
                p.stock_quantity = 0
            self._derive_stock_status(p)
        else:
            # WooCommerce drops the quantity of a product that does not manage stock.
            p.stock_quantity = None
            if "stock_status" in fields:
                status = _as_str("stock_status", fields["stock_status"])
                if status not in ("instock", "outofstock", "onbackorder"):
                    raise FieldError(
                        "rest_invalid_param",
                        "Invalid parameter(s): stock_status",
                        params={"stock_status": "invalid"},
                    )
                p.stock_status = status
