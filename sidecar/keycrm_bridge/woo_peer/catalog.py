"""The peer's products: a thread-safe, in-memory WooCommerce catalogue.

Indexed by id and by SKU so that 100,000 products stay fast; list queries are cached per catalogue
version, because a client paging through 1,000 pages would otherwise re-filter and re-sort the
whole catalogue for every page. What one product is, and the rules of a write, are ``product``'s.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from .product import PRODUCT_FIELDS, PRODUCT_TYPES, FieldError, Product, apply_fields, as_str, derive_stock_status


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
                ptype = as_str("type", fields.get("type", "simple"))
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
            derive_stock_status(p)
            self._touch(p)
            return p

    def clear(self) -> None:
        with self.lock:
            self._products.clear()
            self._by_sku.clear()
            self._next_id = 1
            self.version += 1
            self._query_cache.clear()

    def _apply(self, p: Product, fields: dict[str, Any], *, unique_sku: bool) -> None:
        def sku_taken(sku: str) -> bool:
            return unique_sku and any(i != p.id for i in self._by_sku.get(sku, ()))

        apply_fields(p, fields, sku_taken=sku_taken)
