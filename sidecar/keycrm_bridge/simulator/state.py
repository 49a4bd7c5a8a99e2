"""The simulated KeyCRM account: catalogue, stock per (offer, warehouse), orders.

One re-entrant lock guards everything. Route handlers hold ``state.lock`` while they select and
serialise, so a page is a consistent snapshot. Lookups are dict-indexed (by id, by SKU, by
product) and offer ids are kept in ascending order, so a page costs O(page), not O(catalogue):
benches run with 100,000 SKUs.

Stock arithmetic follows KeyCRM: per offer and warehouse ``quantity`` (on hand) and ``reserve``
(held by orders). An order reserves at one warehouse; cancelling releases the reserve; completing
ships the goods (``quantity`` and ``reserve`` both drop). Every stock change stamps the offer's
``updated_at`` and is reported to the stock listeners (the webhook dispatcher).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from keycrm_bridge.clock import Clock
from keycrm_bridge.simulator import order_flow, seeding
from keycrm_bridge.simulator.records import (
    OFFER_FIELDS,
    ORDER_STATUSES,
    PRODUCT_FIELDS,
    Number,
    Offer,
    Order,
    Product,
    SimError,
    StockCell,
    StockListener,
    StockWriteResult,
    Warehouse,
    generated_sku,
    num,
)

__all__ = ["ORDER_STATUSES", "Offer", "Order", "Product", "SimError", "SimState", "generated_sku"]


class SimState:
    """Thread-safe KeyCRM account. Read with ``state.lock`` held; mutate through the methods."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._listeners: list[StockListener] = []
        self.clear()

    # ----------------------------------------------------------------- setup
    def clear(self) -> None:
        with self.lock:
            self.warehouses: dict[int, Warehouse] = {}
            self.products: dict[int, Product] = {}
            self.offers: dict[int, Offer] = {}
            self.offer_ids: list[int] = []  # ascending, for O(page) pagination
            self.product_ids: list[int] = []
            self.sku_index: dict[str, list[int]] = {}
            self.product_offers: dict[int, list[int]] = {}
            self.stock: dict[int, dict[int, StockCell]] = {}
            self.orders: dict[int, Order] = {}
            self.order_ids: list[int] = []
            self.orders_by_uuid: dict[str, list[int]] = {}
            self._next_product = 1
            self._next_offer = 1
            self._next_order = 1

    def add_stock_listener(self, listener: StockListener) -> None:
        """``listener(offer_ids)`` runs with the lock held after each stock change: keep it quick."""
        self._listeners.append(listener)

    def _notify(self, offer_ids: list[int]) -> None:
        if offer_ids:
            for listener in self._listeners:
                listener(offer_ids)

    def add_warehouse(self, warehouse_id: int, name: str | None = None) -> Warehouse:
        with self.lock:
            wh = self.warehouses.get(warehouse_id)
            if wh is None:
                wh = Warehouse(warehouse_id, name or f"Склад {warehouse_id}")
                self.warehouses[warehouse_id] = wh
            elif name:
                wh.name = name
            return wh

    def warehouse_ids(self) -> list[int]:
        with self.lock:
            return sorted(self.warehouses)

    def default_warehouse(self) -> int:
        with self.lock:
            if not self.warehouses:
                self.add_warehouse(1)
            return min(self.warehouses)

    # ------------------------------------------------------------ catalogue
    def create_product(self, fields: Mapping[str, Any], *, offers: Iterable[Mapping[str, Any]] = ()) -> Product:
        """Create a product. A ``sku`` in ``fields`` makes its default offer (a product without
        variations); ``offers`` makes variations (``has_offers``)."""
        with self.lock:
            now = self.clock.now()
            product = Product(id=self._next_product, name=str(fields.get("name") or ""), created_at=now, updated_at=now)
            self._next_product += 1
            self._apply_product_fields(product, fields)
            self.products[product.id] = product
            self.product_ids.append(product.id)
            self.product_offers[product.id] = []
            if fields.get("sku") is not None:
                default = {
                    k: fields[k] for k in ("sku", "barcode", "price", "purchased_price", *OFFER_FIELDS) if k in fields
                }
                self._create_offer(product, default, now)
            variations = list(offers)
            if variations:
                self.add_offers(product.id, variations)
            return product

    def _apply_product_fields(self, product: Product, fields: Mapping[str, Any]) -> None:
        for name in PRODUCT_FIELDS:
            if name in fields and fields[name] is not None:
                value = fields[name]
                setattr(product, name, num(value) if name in OFFER_FIELDS or name == "category_id" else value)
        if "pictures" in fields and isinstance(fields["pictures"], list):
            product.pictures = [str(p) for p in fields["pictures"]][:6]
        if "custom_fields" in fields and isinstance(fields["custom_fields"], list):
            product.custom_fields = [dict(cf) for cf in fields["custom_fields"] if isinstance(cf, dict)]

    def update_product(self, product_id: int, fields: Mapping[str, Any]) -> Product:
        with self.lock:
            product = self.products.get(product_id)
            if product is None:
                raise SimError("Product not found.", 404)
            now = self.clock.now()
            self._apply_product_fields(product, fields)
            product.updated_at = now
            # A product without variations is edited through its one default offer.
            if not product.has_offers and self.product_offers[product_id]:
                offer = self.offers[self.product_offers[product_id][0]]
                self._apply_offer_fields(offer, fields, now)
            return product

    def add_offers(self, product_id: int, rows: Iterable[Mapping[str, Any]]) -> list[Offer]:
        with self.lock:
            product = self.products.get(product_id)
            if product is None:
                raise SimError("Product not found.", 404)
            now = self.clock.now()
            created = [self._create_offer(product, row, now) for row in rows]
            if created:
                product.has_offers = True
                product.updated_at = now
            return created

    def _create_offer(self, product: Product, row: Mapping[str, Any], now: float) -> Offer:
        offer = Offer(
            id=self._next_offer,
            product_id=product.id,
            sku=str(row.get("sku") or ""),
            created_at=now,
            updated_at=now,
        )
        self._next_offer += 1
        self._apply_offer_fields(offer, row, now, reindex=False)
        if isinstance(row.get("properties"), list):
            offer.properties = [
                {"name": str(p["name"]), "value": str(p["value"])}
                for p in row["properties"]
                if isinstance(p, dict) and "name" in p and "value" in p
            ]
        self.offers[offer.id] = offer
        self.offer_ids.append(offer.id)
        self.product_offers[product.id].append(offer.id)
        self.sku_index.setdefault(offer.sku, []).append(offer.id)
        self.stock[offer.id] = {}
        return offer

    def _apply_offer_fields(self, offer: Offer, row: Mapping[str, Any], now: float, *, reindex: bool = True) -> None:
        for name in OFFER_FIELDS:
            if row.get(name) is not None:
                setattr(offer, name, num(row[name]))
        if row.get("barcode") is not None:
            offer.barcode = str(row["barcode"])
        if row.get("image_url") is not None:
            offer.thumbnail_url = str(row["image_url"])
        if reindex and row.get("sku") is not None and str(row["sku"]) != offer.sku:
            self._reindex_sku(offer, str(row["sku"]))
        offer.updated_at = now

    def _reindex_sku(self, offer: Offer, new_sku: str) -> None:
        ids = self.sku_index.get(offer.sku, [])
        if offer.id in ids:
            ids.remove(offer.id)
            if not ids:
                del self.sku_index[offer.sku]
        offer.sku = new_sku
        bucket = self.sku_index.setdefault(new_sku, [])
        bucket.insert(bisect_left(bucket, offer.id), offer.id)

    def find_offer_ids(self, *, offer_id: Any = None, sku: Any = None) -> list[int]:
        """Offers a row addresses: by ``id`` when given, else by ``sku`` (duplicates all match)."""
        if offer_id is not None:
            return [offer_id] if offer_id in self.offers else []
        if sku is not None:
            return list(self.sku_index.get(str(sku), ()))
        return []

    def update_offers(self, rows: Iterable[Mapping[str, Any]], *, user_edit: bool = False) -> StockWriteResult:
        """``PUT /offers``: rows by id or by sku; unknown rows ignored.

        ``id`` or ``sku`` only *identifies* the offer (the spec changes price, purchased price, weight
        and dimensions and promises no SKU rename), so a row's ``sku`` is never applied as a new SKU —
        but for ``user_edit``: a person editing an offer (found by ``id``) in KeyCRM may rename it.
        """
        result = StockWriteResult()
        with self.lock:
            now = self.clock.now()
            for row in rows:
                ids = self.find_offer_ids(offer_id=row.get("id"), sku=row.get("sku"))
                if not ids:
                    result.ignored.append({"id": row.get("id"), "sku": row.get("sku"), "reason": "unknown offer"})
                    continue
                renames = user_edit and row.get("id") is not None
                fields = {k: v for k, v in row.items() if k != "id" and (k != "sku" or renames)}
                for oid in ids:
                    self._apply_offer_fields(self.offers[oid], fields, now)
                result.applied += 1
        return result

    # ---------------------------------------------------------------- stock
    def cell(self, offer_id: int, warehouse_id: int) -> StockCell:
        cells = self.stock[offer_id]
        cell = cells.get(warehouse_id)
        if cell is None:
            cell = cells[warehouse_id] = StockCell()
        return cell

    def totals(self, offer_id: int, warehouses: Iterable[int] | None = None) -> tuple[Number, Number]:
        cells = self.stock.get(offer_id, {})
        if warehouses is None:
            return sum(c.quantity for c in cells.values()), sum(c.reserve for c in cells.values())
        picked = [cells[w] for w in warehouses if w in cells]
        return sum(c.quantity for c in picked), sum(c.reserve for c in picked)

    def set_stocks(self, warehouse_id: int, rows: Iterable[Mapping[str, Any]]) -> StockWriteResult:
        """``PUT /offers/stocks``: absolute on-hand quantity at ONE warehouse; unknown rows ignored."""
        result = StockWriteResult()
        with self.lock:
            if warehouse_id not in self.warehouses:
                raise SimError("The selected warehouse id is invalid.")
            now = self.clock.now()
            changed: dict[int, None] = {}
            for row in rows:
                ids = self.find_offer_ids(offer_id=row.get("id"), sku=row.get("sku"))
                if not ids:
                    result.ignored.append({"id": row.get("id"), "sku": row.get("sku"), "reason": "unknown offer"})
                    continue
                quantity = num(row["quantity"])
                for oid in ids:
                    cell = self.cell(oid, warehouse_id)
                    if cell.quantity != quantity:
                        cell.quantity = quantity
                        self.offers[oid].updated_at = now
                        changed[oid] = None
                result.applied += 1
            result.changed_offer_ids = list(changed)
            self._notify(result.changed_offer_ids)
        return result

    def adjust_stock(self, items: Iterable[Mapping[str, Any]]) -> StockWriteResult:
        """Receivings, write-offs and manual edits: ``delta`` (+/-) or absolute ``quantity``/``reserve``
        per item ``{sku|offer_id, warehouse_id?}``. Fires the stock listeners like KeyCRM does."""
        result = StockWriteResult()
        with self.lock:
            now = self.clock.now()
            changed: dict[int, None] = {}
            for item in items:
                ids = self.find_offer_ids(offer_id=item.get("offer_id"), sku=item.get("sku"))
                if not ids:
                    raise SimError(f"unknown offer {item.get('sku') or item.get('offer_id')!r}", 404)
                wh = int(item.get("warehouse_id") or self.default_warehouse())
                self.add_warehouse(wh)
                for oid in ids:
                    cell = self.cell(oid, wh)
                    before = (cell.quantity, cell.reserve)
                    if item.get("delta") is not None:
                        cell.quantity = num(cell.quantity + num(item["delta"]))
                    if item.get("quantity") is not None:
                        cell.quantity = num(item["quantity"])
                    if item.get("reserve") is not None:
                        cell.reserve = num(item["reserve"])
                    if (cell.quantity, cell.reserve) != before:
                        self.offers[oid].updated_at = now
                        changed[oid] = None
                result.applied += 1
            result.changed_offer_ids = list(changed)
            self._notify(result.changed_offer_ids)
        return result

    # --------------------------------------------------------------- orders
    def create_order(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        source_uuid: str | None = None,
        source_id: int = 1,
        warehouse_id: int | None = None,
    ) -> Order:
        """A new order reserves each line's quantity at ``warehouse_id`` (default: the first)."""
        return order_flow.create_order(
            self, items, source_uuid=source_uuid, source_id=source_id, warehouse_id=warehouse_id
        )

    def cancel_order(self, order_id: int) -> Order:
        """Cancelling a new order releases its reserve."""
        return order_flow.cancel_order(self, order_id)

    def complete_order(self, order_id: int) -> Order:
        """Completing ships the goods: quantity and reserve both drop by each line's quantity."""
        return order_flow.complete_order(self, order_id)

    # ---------------------------------------------------- seeding and truth
    def seed(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Fill the catalogue for a test; see :func:`seeding.seed`."""
        return seeding.seed(self, spec)

    def truth(self, skus: Iterable[str] | None = None, warehouses: Iterable[int] | None = None) -> dict[str, Any]:
        """What KeyCRM really holds, for assertions; see :func:`seeding.truth`."""
        return seeding.truth(self, skus, warehouses)

    def webhook_rows(self, offer_ids: Iterable[int], warehouses: Iterable[int] | None) -> list[dict[str, Any]]:
        """KeyCRM's stock webhook rows: ``in_stock``/``in_reserve`` summed over ``warehouses``."""
        with self.lock:
            whs = list(warehouses) if warehouses is not None else None
            rows = []
            for oid in offer_ids:
                offer = self.offers.get(oid)
                if offer is None:
                    continue
                quantity, reserve = self.totals(oid, whs)
                rows.append({"offer_id": oid, "sku": offer.sku, "in_stock": quantity, "in_reserve": reserve})
            return rows
