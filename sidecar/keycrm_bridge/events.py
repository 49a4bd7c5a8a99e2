"""The plugin's event batch: validation against the one JSON Schema, and what each event queues."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

from .config import Settings

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 1000
ORDER_CAUSES = frozenset({"order", "order_restore"})


@cache
def schema() -> dict[str, Any]:
    text = resources.files("keycrm_bridge").joinpath("schema/events.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


@cache
def _fast_validator() -> Any:
    # The same schema compiled to Python: ~15x faster than jsonschema on a 100-event batch, which is
    # most of the cost of ingest. It speaks draft-07; the schema uses nothing newer than that.
    return fastjsonschema.compile({**schema(), "$schema": "http://json-schema.org/draft-07/schema#"})


def schema_errors(batch: Any, limit: int = 10) -> list[str]:
    """[] when the batch matches the schema, else readable reasons (from jsonschema, the reference)."""
    if _plainly_valid(batch):
        return []
    try:
        _fast_validator()(batch)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    return reference_schema_errors(batch, limit)


def reference_schema_errors(batch: Any, limit: int = 10) -> list[str]:
    errors = []
    for err in _validator().iter_errors(batch):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        errors.append(f"{where}: {err.message[:200]}")
        if len(errors) >= limit:
            break
    return errors


FUTURE_SLACK_S = 86400.0


def future_events(batch: dict[str, Any], now: float, limit: int = 10) -> list[str]:
    """Events dated more than a day ahead: newest ``occurred_at`` wins per SKU, so one such event would
    outrank every real change of its SKU until that date. The plugin's clock is the one that signed
    the batch within ±5 minutes of ours, so a real event is never that far ahead."""
    late = [f"events/{n}/occurred_at: {e['occurred_at']} is more than a day ahead of the sidecar's clock"
            for n, e in enumerate(batch["events"]) if e["occurred_at"] > now + FUTURE_SLACK_S]
    return late[:limit]


def changes_for(event: dict[str, Any], settings: Settings) -> Iterator[tuple[str, str]]:
    """The queue rows one new event causes: (kind, sku); the event itself is the change's payload.

    Every stock event reaches the ledger, whatever its cause: the sync round decides what, if
    anything, KeyCRM gets. Stock that WooCommerce lowered for a site order is never pushed as a
    lower quantity (KeyCRM reserves it through its own order integration; pushing it too would count
    the sale twice) — it is held as in flight instead — and the sidecar's own writes (cause
    ``sidecar``) only confirm what the ledger already holds.
    """
    sku = event["sku"]
    if event["type"] == "stock.set":
        if event.get("stock_quantity") is not None or event["cause"] in ORDER_CAUSES:
            yield "stock", sku
    elif event["cause"] == "sidecar":
        return
    elif event["type"] == "product.upsert":
        old = event.get("old_sku")
        if old is not None and old != sku:
            yield "rename", sku
        if settings.product_fields_from_woo:
            yield "product", sku
    elif event["type"] == "product.deleted":
        yield "deleted", sku
    # product.exclude queues nothing: the switch is recorded as the batch is expanded (exclusions.py).


# A shortcut for the batches the plugin sends most (stock and deletion events, no product body): plain
# type and range checks, ~10x faster than the compiled schema, whose if/then branches raise and catch
# an exception per event. It may only say "valid" where the schema does (tests/test_events_api.py
# checks the two agree); anything else, including every event with a product, takes the full way.
_ID_RE = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_TYPES = frozenset({"stock.set", "product.deleted"})
_CAUSES = frozenset({"order", "order_restore", "manual", "rest", "import", "sidecar"})
_EVENT_KEYS = frozenset({"id", "type", "occurred_at", "product_id", "parent_id", "sku", "old_sku", "cause",
                         "order_id", "stock_quantity", "quantity_delta"})
_BATCH_KEYS = frozenset({"site", "plugin_version", "events"})


_MAX_ID = 9_007_199_254_740_991
_MAX_QTY = 1_000_000_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _number(v: Any) -> bool:
    return (type(v) is float and math.isfinite(v)) or type(v) is int


def _quantity(v: Any) -> bool:
    return _number(v) and -_MAX_QTY <= v <= _MAX_QTY


def _sku(v: Any) -> bool:
    return type(v) is str and len(v) <= 191 and not _CONTROL.search(v)


def _id(v: Any, lo: int) -> bool:
    return type(v) is int and lo <= v <= _MAX_ID


def _plainly_valid(batch: Any) -> bool:
    if type(batch) is not dict or not batch.keys() <= _BATCH_KEYS:
        return False
    site, version, evs = batch.get("site", ""), batch.get("plugin_version", ""), batch.get("events")
    if type(site) is not str or len(site) > 2048 or type(version) is not str or len(version) > 32:
        return False
    if type(evs) is not list or not 1 <= len(evs) <= MAX_EVENTS:
        return False
    for e in evs:
        if type(e) is not dict or not e.keys() <= _EVENT_KEYS:
            return False
        eid, at = e.get("id"), e.get("occurred_at", 0)
        if type(eid) is not str or not _ID_RE.fullmatch(eid) or not _sku(e.get("sku")):
            return False
        if not _id(e.get("product_id"), 1) or not _number(at) or not 1_000_000_000 <= at <= 9_999_999_999:
            return False
        if e.get("type") not in _TYPES or e.get("cause") not in _CAUSES:
            return False
        if ("parent_id" in e and not _id(e["parent_id"], 0)) or ("old_sku" in e and not _sku(e["old_sku"])):
            return False
        if "order_id" in e and not _id(e["order_id"], 1):
            return False
        if e["cause"] in ORDER_CAUSES and "order_id" not in e:
            return False
        if "quantity_delta" in e and not _quantity(e["quantity_delta"]):
            return False
        if "stock_quantity" in e:
            if e["stock_quantity"] is not None and not _quantity(e["stock_quantity"]):
                return False
        elif e["type"] == "stock.set":
            return False
    return True
