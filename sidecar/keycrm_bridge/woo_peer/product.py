"""One product as the peer's WooCommerce holds it: the record, its wc/v3 JSON, and the field rules
a REST write goes through (the coercions and refusals of WC_REST_Products_V2_Controller)."""

from __future__ import annotations

from collections.abc import Callable
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


def _not_of_type(name: str, kind: str) -> FieldError:
    return FieldError(
        "rest_invalid_param", f"Invalid parameter(s): {name}", params={name: f"{name} is not of type {kind}."}
    )


def _as_price(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _not_of_type(name, "string")
    text = str(value).strip()
    try:
        float(text)
    except ValueError:
        # WooCommerce stores whatever string it gets (wc_format_decimal empties junk); keep that.
        return ""
    return text


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _not_of_type(name, "integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _not_of_type(name, "integer")


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    raise _not_of_type(name, "boolean")


def as_str(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _not_of_type(name, "string")


def derive_stock_status(p: Product) -> None:
    if p.manage_stock and p.stock_quantity is not None:
        if p.stock_quantity > 0:
            p.stock_status = "instock"
        else:
            p.stock_status = "onbackorder" if p.backorders != "no" else "outofstock"


def apply_fields(p: Product, fields: dict[str, Any], *, sku_taken: Callable[[str], bool]) -> None:
    """Set props the way WC_REST_Products_V2_Controller::prepare_object_for_database does.

    ``sku_taken``: whether another product holds that SKU (the write is refused when it does).
    """
    if "name" in fields:
        p.name = as_str("name", fields["name"])
    if "status" in fields:
        status = as_str("status", fields["status"])
        if status not in STATUSES:
            raise FieldError("rest_invalid_param", "Invalid parameter(s): status", params={"status": "invalid"})
        p.status = status
    for name in ("description", "short_description"):
        if name in fields:
            setattr(p, name, as_str(name, fields[name]))
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
        sku = as_str("sku", fields["sku"]).strip()
        if sku and sku_taken(sku):
            raise FieldError("product_invalid_sku", "Invalid or duplicated SKU.", 400)
        p.sku = sku
    if "backorders" in fields:
        p.backorders = as_str("backorders", fields["backorders"])
    if "manage_stock" in fields:
        p.manage_stock = _as_bool("manage_stock", fields["manage_stock"])
    if p.manage_stock:
        if "stock_quantity" in fields and fields["stock_quantity"] is not None:
            p.stock_quantity = _as_int("stock_quantity", fields["stock_quantity"])
        elif p.stock_quantity is None:
            p.stock_quantity = 0
        derive_stock_status(p)
    else:
        # WooCommerce drops the quantity of a product that does not manage stock.
        p.stock_quantity = None
        if "stock_status" in fields:
            status = as_str("stock_status", fields["stock_status"])
            if status not in ("instock", "outofstock", "onbackorder"):
                raise FieldError(
                    "rest_invalid_param",
                    "Invalid parameter(s): stock_status",
                    params={"stock_status": "invalid"},
                )
            p.stock_status = status
