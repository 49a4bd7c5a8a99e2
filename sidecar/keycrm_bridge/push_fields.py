"""Product fields WooCommerce → KeyCRM (the push's ``product`` changes, ``PushEngine._products``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .budget import Priority
from .decide import json_number
from .pacing import product_slots
from .store import Change

if TYPE_CHECKING:
    from .push import PushEngine, PushResult

log = logging.getLogger("keycrm_bridge.push")

PRODUCT_RETRY_S = 1.0  # a product-field push deferred for the budget is tried again this soon


def number_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def push_products(e: PushEngine, token: str, group: list[Change], result: PushResult) -> None:
    """Price, weight and dimensions by ``PUT /offers`` (10,000 a request), name and description by
    ``PUT /products/{id}`` (one a product, paced behind stock), only where they differ from KeyCRM."""
    newest = e._coalesce(token, "product", group, result)
    if not newest:
        return
    fields_on = e.settings.product_fields_from_woo
    offer_skus = [s for s, ch in newest.items() if ch.payload["product"].get("type") != "variable"]
    parents = {s: ch for s, ch in newest.items() if ch.payload["product"].get("type") == "variable"}
    parent_offer_sku = {s: _a_variation_sku(e, ch.payload["product_id"]) for s, ch in parents.items()}
    offers = e._offers(offer_skus + [v for v in parent_offer_sku.values() if v])
    offer_rows: list[dict[str, Any]] = []
    product_updates: dict[int, dict[str, Any]] = {}
    owners: dict[int, list[Change]] = {}
    done: list[Change] = []
    missing: list[Change] = []
    for sku, ch in newest.items():
        p = ch.payload["product"]
        kind = p.get("type")
        offer = offers.get(parent_offer_sku.get(sku) or "") if kind == "variable" else offers.get(sku)
        if offer is None:
            missing.append(ch)
            continue
        have = offer["fields"]
        if kind != "variable":
            row: dict[str, Any] = {}
            wanted = {}
            if "price" in fields_on:
                wanted["price"] = number_or_none(p.get("price"))
            if "weight" in fields_on:
                wanted["weight"] = number_or_none(p.get("weight"))
            if "dimensions" in fields_on:
                wanted.update({k: number_or_none(p.get(k)) for k in ("length", "width", "height")})
            for k, v in wanted.items():
                if v is not None and v != have.get(k):
                    row[k] = json_number(v)
            if row:
                offer_rows.append({"sku": sku, **row})
        if kind != "variation" and offer.get("product_id"):
            upd: dict[str, Any] = {k: p[k] for k in ("name", "description")
                   if k in fields_on and p.get(k) is not None and p[k] != have.get(k)}
            if upd:
                product_updates[int(offer["product_id"])] = upd
                owners.setdefault(int(offer["product_id"]), []).append(ch)
        done.append(ch)
    if missing:
        e._skip(token, missing, result, "SKU not found in KeyCRM")
    product_updates, done = _pace_products(e, token, product_updates, owners, done, bool(offer_rows))
    if offer_rows:
        e.keycrm.put_offers(offer_rows)
        result.pushed_offers += len(offer_rows)
    for product_id, upd in product_updates.items():
        e.keycrm.update_product(product_id, upd)
        result.pushed_products += 1
    now = e.clock.now()
    if offer_rows or product_updates:
        e._succeeded()
    _remember_offer_fields(e, offers, offer_rows, product_updates, parent_offer_sku, done)
    e.store.record_pushed("product", [(c.sku, c.occurred_at, None) for c in done], now)
    e._done(token, done)

def _pace_products(e: PushEngine, token: str, updates: dict[int, dict[str, Any]], owners: dict[int, list[Change]],
                   done: list[Change], offers_too: bool) -> tuple[dict[int, dict[str, Any]], list[Change]]:
    """Stock first: ``PUT /products/{id}`` (one a product) takes only write slots that leave stock
    its headroom, a few a round; the rest go back to the queue untried (``pacing.py``)."""
    budget = getattr(e.keycrm, "budget", None)
    if budget is None or not updates:
        return updates, done
    slots = product_slots(budget.left(Priority.WRITE)) - int(offers_too)
    if len(updates) <= max(0, slots):
        return updates, done
    keep = dict(list(updates.items())[:max(0, slots)])
    later = {id(ch) for pid in updates if pid not in keep for ch in owners[pid]}
    deferred = [ch for ch in done if id(ch) in later]
    e.store.defer(token, [ch.id for ch in deferred], e.clock.now() + PRODUCT_RETRY_S)
    log.info("product fields wait for budget; stock goes first",
             extra={"deferred": len(deferred), "sent_now": len(keep), "sku": deferred[0].sku})
    return keep, [ch for ch in done if id(ch) not in later]

def _remember_offer_fields(e: PushEngine, offers: dict[str, dict[str, Any]], offer_rows: list[dict[str, Any]],
                           product_updates: dict[int, dict[str, Any]], parent_offer_sku: dict[str, str | None],
                           done: list[Change]) -> None:
    sent = {r["sku"]: r for r in offer_rows}
    rows = []
    for sku, offer in offers.items():
        fields = dict(offer["fields"])
        fields.update({k: v for k, v in sent.get(sku, {}).items() if k != "sku"})
        if offer.get("product_id") in product_updates:
            fields.update(product_updates[int(offer["product_id"])])
        rows.append((sku, offer["offer_id"], offer.get("product_id"), fields))
    e.store.save_keycrm_offers(rows, e.clock.now())

def _a_variation_sku(e: PushEngine, parent_product_id: int) -> str | None:
    """Any variation's SKU of a variable product: its KeyCRM offer names the KeyCRM product."""
    if e.skumap is not None:
        for entry in e.skumap.variations_of(parent_product_id):
            if entry.sku:
                return str(entry.sku)
    row = e.store.conn.execute(
        "SELECT sku FROM events WHERE sku != '' AND json_extract(payload, '$.parent_id') = ?"
        " ORDER BY occurred_at DESC LIMIT 1", (parent_product_id,)
    ).fetchone()
    return row[0] if row else None
