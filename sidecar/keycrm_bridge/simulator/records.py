"""The simulated KeyCRM account's records: warehouses, products, offers, stock cells and orders.

Plain dataclasses with no behaviour; ``SimState`` owns them and guards them with its lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Number = int | float

# KeyCRM status ids/groups for the three states the simulator models (group ids are KeyCRM's:
# 1 new, 5 completed, 6 canceled).
ORDER_STATUSES: dict[str, tuple[int, int, str]] = {
    "new": (1, 1, "Новий"),
    "completed": (12, 5, "Виконано"),
    "canceled": (19, 6, "Скасовано"),
}


def generated_sku(index: int, prefix: str = "SKU-") -> str:
    """The SKU the seeder gives the ``index``-th generated offer (1-based): ``SKU-000001``."""
    return f"{prefix}{index:06d}"


def num(value: Any) -> Number:
    """Keep whole numbers as ints so answers read ``5``, not ``5.0``."""
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | float):
        return value
    raise ValueError(f"not a number: {value!r}")


class SimError(Exception):
    """A control or API request the state cannot carry out; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Warehouse:
    id: int
    name: str


@dataclass
class Product:
    id: int
    name: str
    created_at: float
    updated_at: float
    description: str = ""
    currency_code: str = "UAH"
    unit_type: str | None = None
    category_id: Number | None = None
    pictures: list[str] = field(default_factory=list)
    custom_fields: list[dict[str, Any]] = field(default_factory=list)
    weight: Number | None = None
    length: Number | None = None
    width: Number | None = None
    height: Number | None = None
    is_archived: bool = False
    has_offers: bool = False  # True once variations exist (KeyCRM's has_offers)


@dataclass
class Offer:
    id: int
    product_id: int
    sku: str
    created_at: float
    updated_at: float
    barcode: str | None = None
    price: Number = 0
    purchased_price: Number = 0
    weight: Number | None = None
    length: Number | None = None
    width: Number | None = None
    height: Number | None = None
    thumbnail_url: str | None = None
    properties: list[dict[str, Any]] = field(default_factory=list)
    is_archived: bool = False


@dataclass
class StockCell:
    quantity: Number = 0
    reserve: Number = 0


@dataclass
class OrderLine:
    offer_id: int
    sku: str
    quantity: Number
    price: Number
    name: str


@dataclass
class Order:
    id: int
    source_uuid: str | None
    source_id: int
    status: str
    warehouse_id: int
    lines: list[OrderLine]
    created_at: float
    updated_at: float
    closed_at: float | None = None


@dataclass
class StockWriteResult:
    applied: int = 0
    ignored: list[dict[str, Any]] = field(default_factory=list)
    changed_offer_ids: list[int] = field(default_factory=list)


OFFER_FIELDS = ("price", "purchased_price", "weight", "length", "width", "height")
PRODUCT_FIELDS = (
    "name",
    "description",
    "currency_code",
    "unit_type",
    "category_id",
    "weight",
    "length",
    "width",
    "height",
)

StockListener = Callable[[list[int]], None]
