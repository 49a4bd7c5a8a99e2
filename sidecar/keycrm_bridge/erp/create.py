"""Offers the ERP has and KeyCRM lacks, created in KeyCRM (``ERP_CREATE_MISSING=true``).

An ERP item is a product (1C ``<Ид>`` without ``#``) or a variant of one (``product#variant``;
MoySklad's ``variant``). A product becomes a KeyCRM product with its SKU (``POST /products``). A
variant becomes a variation of its product (``POST /products/{id}/offers``, its characteristics —
colour, size — as the offer's ``properties``): of the KeyCRM product a sibling variant already has,
else of the one the bridge created for that ERP product, else of a new product named after the ERP's
product. Never twice: a created SKU is listed (quarantine,
``created:SKU``) until KeyCRM shows it, and is not created again while listed.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

from ..decide import json_number
from ..push import known_offers
from ..store import chunks, marks

log = logging.getLogger("keycrm_bridge.erp")

CREATED = "created in KeyCRM from the ERP; not found by its SKU since"


def create_missing(applier: Any, skus: list[str]) -> int:
    """Create what KeyCRM lacks of ``skus``; returns how many offers were asked for."""
    conn, aside, keycrm = applier.conn, applier.aside, applier.keycrm
    todo = [s for s in skus if not aside.has(f"created:{s}")]
    if not todo:
        return 0
    items = _items(conn, todo)
    simple = [s for s in todo if "#" not in items[s]["guid"]]
    variants: dict[str, list[str]] = defaultdict(list)
    for s in todo:
        if "#" in items[s]["guid"]:
            variants[items[s]["guid"].split("#", 1)[0]].append(s)
    made = 0
    for sku in simple:
        it = items[sku]
        aside.add([(f"created:{sku}", sku, CREATED, it["guid"] or None)], None)
        keycrm.create_product(_without_none({"name": it["name"] or sku, "sku": sku, "price": it["price"]}))
        made += 1
        log.info("product created in KeyCRM from the ERP", extra={"sku": sku})
    for product_guid, members in variants.items():
        name = _product_name(conn, product_guid) or items[members[0]]["name"] or members[0]
        product_id = _keycrm_product(applier, product_guid, todo)
        aside.add([(f"created:{s}", s, CREATED, items[s]["guid"]) for s in members], None)
        if product_id is None:
            product_id = int(keycrm.create_product({"name": name})["id"])
            applier.store.set_meta(_meta_key(applier, product_guid), product_id)
        keycrm.create_offers(product_id, [_without_none({"sku": s, "price": items[s]["price"],
                                                         "properties": items[s]["properties"]}) for s in members],
                             product_name=name)
        made += len(members)
        log.info("variations created in KeyCRM from the ERP", extra={"skus": members[:20], "product_id": product_id})
    now = applier.clock.now()
    conn.executemany("INSERT OR IGNORE INTO erp_to_read (sku, at) VALUES (?, ?)", [(s, now) for s in todo])
    return made


def _items(conn: Any, skus: list[str]) -> dict[str, dict[str, Any]]:
    """sku -> the ERP's id, name, price and properties for it (price from the product data the ERP sent;
    properties, a variant's characteristics, as KeyCRM's offer ``properties``: [{name, value}])."""
    out: dict[str, dict[str, Any]] = {s: {"guid": "", "name": None, "price": None, "properties": None} for s in skus}
    for part in chunks(skus):
        for sku, guid, name, props in conn.execute(
                f"SELECT sku, guid, name, properties FROM erp_guid_map WHERE sku IN ({marks(part)})"
                " ORDER BY instr(guid, '#') > 0, seen_at", part):  # a variant sharing its product's article wins
            out[sku].update(guid=guid, name=name or out[sku]["name"],
                            properties=json.loads(props) if props else out[sku]["properties"])
        for sku, wanted in conn.execute(f"SELECT sku, wanted FROM erp_fields WHERE sku IN ({marks(part)})", part):
            price = json.loads(wanted).get("price")
            out[sku]["price"] = json_number(price) if price is not None else None
    return out


def _product_name(conn: Any, product_guid: str) -> str | None:
    row = conn.execute("SELECT name FROM erp_guid_map WHERE guid = ?", (product_guid,)).fetchone()
    return row[0] if row and row[0] else None


def _meta_key(applier: Any, product_guid: str) -> str:
    return f"erp_created_product:{applier.source}:{product_guid}"


def _keycrm_product(applier: Any, product_guid: str, lacking: list[str]) -> int | None:
    """The KeyCRM product a variant of ``product_guid`` belongs to, if there is one yet: that of a
    sibling variant KeyCRM has (the mirror, else one read), else the one the bridge created."""
    siblings = [r[0] for r in applier.conn.execute(
        "SELECT DISTINCT sku FROM erp_guid_map WHERE guid >= ? AND guid < ? LIMIT 50",
        (product_guid + "#", product_guid + "$"))  # '$' follows '#': every "product#…" id
        if r[0] not in lacking]
    if siblings:
        offers = known_offers(applier.store, applier.keycrm, applier.clock.now(), siblings)
        ids = [int(o["product_id"]) for o in offers.values() if o.get("product_id")]
        if ids:
            return max(ids)
    made = applier.store.get_meta(_meta_key(applier, product_guid))
    return int(made) if made else None


def _without_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
