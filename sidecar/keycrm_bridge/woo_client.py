"""The sidecar's WooCommerce client: reads through REST wc/v3 (the `woocommerce` package), stock
writes through the plugin's conditional route.

Stock is never written as a bare absolute value: a sale landing between the sidecar's decision and
its write would be erased by it. ``set_stock`` posts to the plugin's signed
``POST /wp-json/keycrm-bridge/v1/stock``, which sets each product's stock only where the shop still
shows the value the decision was made on (``StockWrite.expect``) and otherwise answers the current
value (a conflict: the caller decides again). REST wc/v3 has no conditional update, so it is used for
reads only. Signing, retries and the error taxonomy live in ``woo_transport``; per-item errors in a
stock answer become per-item results here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from . import signing
from .clock import Clock
from .errors import PermanentError, RetryableError, SkipError
from .woo_transport import USER_AGENT, WooPage, WooTransport, log, oauth_signable, parse_wc_date, wc_date

BATCH_LIMIT = 100  # WooCommerce's woocommerce_rest_batch_items_limit
_COLLAPSED_WS = re.compile(r"[\r\n\t]| {2}")
SKU_QUERY_MAX_CHARS = 1500  # keeps the signed URL well under common 8 KiB request-line limits

STOCK_ROUTE = "/wp-json/keycrm-bridge/v1/stock"
# What is signed: the REST route as WordPress routes on it, whatever the shop's URL layout or
# permalink form (a shop in a subdirectory, ?rest_route=).
STOCK_SIGNED_ROUTE = "/keycrm-bridge/v1/stock"


@dataclass(frozen=True)
class StockWrite:
    """Set WooCommerce stock of one product (``parent_id`` 0) or variation (its parent's id) to
    ``quantity``, where the shop still shows ``expect`` (None: unknown, which only reads it back)."""

    product_id: int
    parent_id: int
    quantity: float
    sku: str | None = None
    expect: float | None = None


@dataclass(frozen=True)
class StockResult:
    write: StockWrite
    ok: bool
    stock_quantity: int | None = None
    error: SkipError | None = None
    # The product's date_modified_gmt after the write, as unix seconds on WooCommerce's clock.
    date_modified: float | None = None
    # The shop no longer showed ``expect``: nothing was written; ``stock_quantity`` is what it shows.
    conflict: bool = False


class WooClient(WooTransport):
    def __init__(
        self, url: str, consumer_key: str, consumer_secret: str, shared_secret: str, clock: Clock, *,
        batch_size: int = BATCH_LIMIT, sku_chunk: int = 50, **transport: Any,
    ) -> None:
        """``transport``: ``WooTransport``'s timeout, retry and backoff settings."""
        if not 1 <= batch_size <= BATCH_LIMIT:
            raise ValueError(f"batch_size must be 1..{BATCH_LIMIT}")
        super().__init__(url, consumer_key, consumer_secret, shared_secret, clock, **transport)
        self.batch_size = batch_size
        self.sku_chunk = sku_chunk


    # -- reading -----------------------------------------------------------------------------
    def iter_products(
        self, modified_after: float | datetime | str | None = None, per_page: int = 100, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Every product (not variations), oldest id first, so paging is stable while the shop sells."""
        params: dict[str, Any] = {"orderby": "id", "order": "asc", **filters}
        if modified_after is not None:
            params.update(modified_after=wc_date(modified_after), dates_are_gmt="true")
        return self._pages("products", params, per_page)

    def iter_variations(
        self,
        parent_id: int,
        modified_after: float | datetime | str | None = None,
        per_page: int = 100,
        **filters: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every variation of one variable product, oldest id first (``filters``: e.g. ``include``)."""
        params: dict[str, Any] = {"orderby": "id", "order": "asc", **filters}
        if modified_after is not None:
            params.update(modified_after=wc_date(modified_after), dates_are_gmt="true")
        return self._pages(f"products/{int(parent_id)}/variations", params, per_page)

    def products_page(self, page: int, per_page: int = 100, **filters: Any) -> WooPage:
        """Page ``page`` (from 1) of the products (not variations), oldest id first: one request.

        For callers that keep their own cursor (the resync reads one page a step). A non-list answer
        raises ``RetryableError``.
        """
        return self._one_page("products", {"orderby": "id", "order": "asc", **filters}, per_page, page)

    def variations_page(self, parent_id: int, page: int, per_page: int = 100) -> WooPage:
        """Page ``page`` (from 1) of one variable product's variations, oldest id first: one request."""
        return self._one_page(
            f"products/{int(parent_id)}/variations", {"orderby": "id", "order": "asc"}, per_page, page
        )

    def newest_modified(self) -> float | None:
        """``date_modified_gmt`` of the most recently modified product, as unix seconds."""
        resp = self._call("GET", "products", params={"orderby": "modified", "order": "desc", "per_page": 1})
        items = self._json(resp, "products")
        if not isinstance(items, list) or not items:
            return None
        return parse_wc_date(items[0].get("date_modified_gmt"))

    def get_product(self, product_id: int, parent_id: int = 0) -> dict[str, Any]:
        endpoint = f"products/{parent_id}/variations/{product_id}" if parent_id else f"products/{product_id}"
        result = self._json(self._call("GET", endpoint), endpoint)
        if not isinstance(result, dict):
            raise PermanentError(f"WooCommerce {endpoint}: expected an object", endpoint=endpoint)
        return result

    def check_write_access(self) -> None:
        """POST an empty products/batch: changes nothing, but a read-only key gets 401/403."""
        self._call("POST", "products/batch", data={"update": []})

    def sku_searchable(self, sku: str) -> bool:
        """Whether ``find_by_skus`` can look this SKU up (else resolve it through the SKU map)."""
        if not sku or sku != sku.strip() or _COLLAPSED_WS.search(sku):
            return False  # sanitize_text_field trims the filter and collapses runs of whitespace
        return oauth_signable(sku) if self._plain_http else True

    def find_by_skus(self, skus: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Products and variations whose SKU equals one of ``skus`` exactly, by SKU.

        Uses the ``sku`` filter with comma-joined SKUs; a SKU with a comma goes alone (WooCommerce
        also tries the whole string). SKUs for which ``sku_searchable`` is False are skipped and
        logged. Duplicated SKUs return several products.
        """
        wanted = list(dict.fromkeys(s for s in skus if s))
        skipped = [s for s in wanted if not self.sku_searchable(s)]
        if skipped:
            log.warning(
                "skus not searchable through the REST sku filter",
                extra={"event": "woo_sku_unsearchable", "skus": skipped[:20], "count": len(skipped)},
            )
        found: dict[str, list[dict[str, Any]]] = {}
        skipped_set = set(skipped)
        for chunk in self._sku_chunks([s for s in wanted if s not in skipped_set]):
            want = set(chunk)
            for product in self._pages("products", {"sku": ",".join(chunk), "orderby": "id", "order": "asc"}, 100):
                sku = product.get("sku")
                if isinstance(sku, str) and sku in want:
                    found.setdefault(sku, []).append(product)
        return found

    def _sku_chunks(self, skus: list[str]) -> Iterator[list[str]]:
        chunk: list[str] = []
        size = 0
        for sku in skus:
            if "," in sku:
                yield [sku]
                continue
            if chunk and (len(chunk) >= self.sku_chunk or size + len(sku) + 1 > SKU_QUERY_MAX_CHARS):
                yield chunk
                chunk, size = [], 0
            chunk.append(sku)
            size += len(sku) + 1
        if chunk:
            yield chunk

    # -- writing -----------------------------------------------------------------------------
    def set_stock(self, items: Iterable[StockWrite]) -> list[StockResult]:
        """Conditional stock writes through the plugin's route, at most 100 items a request; one
        result per product id (a later write for the same id replaces an earlier one).

        Per item: ok (applied), ``conflict`` (the shop shows another value: nothing written, the
        current value in ``stock_quantity``) or a SkipError (unknown id, stock not managed). A
        replay after a lost answer is safe: the first attempt applied means the shop shows the
        target, which the replay's conflict answer says, and that counts as applied.
        """
        latest: dict[int, StockWrite] = {}
        for w in items:
            latest.pop(w.product_id, None)
            latest[w.product_id] = w
        writes = list(latest.values())
        results: dict[int, StockResult] = {}
        for start in range(0, len(writes), self.batch_size):
            self._write_chunk(writes[start : start + self.batch_size], results)
        return [results[pid] for pid in latest]

    def _stock_request(self, body: bytes) -> requests.Response:
        # The one place that signs the route's calls (the shared signing scheme of the plugin's calls).
        headers = {**signing.signed_headers(self._shared_secret, "POST", STOCK_SIGNED_ROUTE, body, self.clock.now()),
                   "User-Agent": USER_AGENT}
        return self._session.post(self.url + STOCK_ROUTE, data=body, headers=headers, timeout=self._timeout)

    def _write_chunk(self, chunk: list[StockWrite], results: dict[int, StockResult]) -> None:
        items = [{"product_id": w.product_id, "expect": None if w.expect is None else _whole(w.expect),
                  "set": _whole(w.quantity)} for w in chunk]
        body = json.dumps({"items": items}, separators=(",", ":")).encode()
        try:
            resp = self._call("POST", STOCK_ROUTE, send=lambda: self._stock_request(body))
        except PermanentError as exc:
            if exc.status == 404:
                exc = PermanentError(f"{exc} (is the KeyCRM Bridge plugin active and up to date?)",
                                     status=404, endpoint=STOCK_ROUTE)
            if exc.status in (400, 404):
                for w in chunk:
                    results[w.product_id] = StockResult(
                        w, False, error=SkipError(str(exc), sku=w.sku, status=exc.status, endpoint=STOCK_ROUTE)
                    )
                return
            raise
        answer = self._json(resp, STOCK_ROUTE)
        answers = answer.get("items") if isinstance(answer, dict) else None
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise RetryableError(f"WooCommerce {STOCK_ROUTE}: answer without one item per write", endpoint=STOCK_ROUTE)
        for w, item in zip(chunk, answers, strict=True):
            results[w.product_id] = _item_result(w, item if isinstance(item, dict) else None, STOCK_ROUTE)


def _item_result(w: StockWrite, item: dict[str, Any] | None, endpoint: str) -> StockResult:
    if item is None:
        return StockResult(w, False, error=SkipError("no answer for this item", sku=w.sku, endpoint=endpoint))
    status, quantity = item.get("status"), item.get("stock_quantity")
    modified = item.get("date_modified_gmt")
    at = parse_wc_date(modified if isinstance(modified, str) else None)
    if status == "applied" and isinstance(quantity, (int, float)):
        return StockResult(w, True, stock_quantity=int(quantity), date_modified=at)
    if status == "conflict" and isinstance(quantity, (int, float)):
        if int(quantity) == _whole(w.quantity):
            return StockResult(w, True, stock_quantity=int(quantity), date_modified=at)  # already there
        return StockResult(w, False, stock_quantity=int(quantity), conflict=True)
    reason = item.get("error") if status == "error" else f"unexpected answer {item!r}"[:200]
    if reason == "stock_not_managed" or (status == "conflict" and quantity is None):
        reason = "stock is not managed for this product in WooCommerce"
    return StockResult(w, False, error=SkipError(str(reason), sku=w.sku, endpoint=endpoint))


def _whole(quantity: float) -> int:
    """WooCommerce stores whole units; round down so the shop never lists a part unit it lacks."""
    return int(quantity) if float(quantity).is_integer() else math.floor(quantity)
