"""The plugin's event batch: validation against the one JSON Schema, and what each event queues."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from .config import Settings

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 1000
PUSHED_CAUSES = frozenset({"manual", "rest", "import"})
ORDER_CAUSES = frozenset({"order", "order_restore"})


@cache
def schema() -> dict[str, Any]:
    text = resources.files("keycrm_bridge").joinpath("schema/events.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def schema_errors(batch: Any, limit: int = 10) -> list[str]:
    errors = []
    for err in _validator().iter_errors(batch):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        errors.append(f"{where}: {err.message[:200]}")
        if len(errors) >= limit:
            break
    return errors


def changes_for(event: dict[str, Any], settings: Settings) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The queue rows one new event causes: (kind, sku, payload).

    Stock that WooCommerce lowered for an order is not pushed (KeyCRM reserves it through its own
    order integration; pushing it too would count the sale twice) and the sidecar's own writes are
    never sent back. Both are still kept in ``events`` for the pull direction and ``explain``.
    """
    cause, sku = event["cause"], event["sku"]
    base = {"product_id": event["product_id"], "parent_id": event.get("parent_id", 0), "cause": cause}
    if cause == "sidecar":
        return
    if event["type"] == "stock.set":
        if cause in ORDER_CAUSES:
            yield "order", sku, {**base, "order_id": event.get("order_id"),
                                 "quantity_delta": event.get("quantity_delta"),
                                 "stock_quantity": event.get("stock_quantity")}
        elif settings.pushes_stock and event.get("stock_quantity") is not None:
            yield "stock", sku, {**base, "stock_quantity": event["stock_quantity"]}
    elif event["type"] == "product.upsert":
        old = event.get("old_sku")
        if old is not None and old != sku:
            yield "rename", sku, {**base, "old_sku": old}
        if settings.product_fields_from_woo:
            yield "product", sku, {**base, "product": event["product"]}
    elif event["type"] == "product.deleted":
        yield "deleted", sku, base
