"""KeyCRM REST client: exactly the routes of KeyCRM's OpenAPI 1.2.0 that the bridge needs.

The budget, retries and the error taxonomy every route goes through are ``keycrm_transport``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import quote_plus

from keycrm_bridge.budget import Priority
from keycrm_bridge.keycrm_transport import JSON, PAGE_LIMIT, KeyCRMTransport, Page, log

STOCKS_PUT_MAX_ROWS = 10_000  # PUT /offers/stocks
OFFERS_PUT_MAX_ROWS = 10_000  # PUT /offers
OFFERS_POST_MAX = 100  # POST /products/{id}/offers
# Longest encoded value of one filter[...] list; keeps the whole URL far below the 2,000-8,000
# characters where proxies and servers start refusing. Cyrillic SKUs encode to 6 chars per letter.
MAX_FILTER_CHARS = 1500
KEYCRM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # UTC, as in the spec's filter examples


class KeyCRMClient(KeyCRMTransport):
    """The routes, over ``KeyCRMTransport`` (``base_url`` ends in ``/v1``)."""

    # -- stocks ----------------------------------------------------------------------------------
    def iter_stocks(
        self,
        skus: Sequence[str] | None = None,
        offer_ids: Sequence[int] | None = None,
        details: bool = True,
    ) -> Iterator[JSON]:
        """Stock rows of ``GET /offers/stocks`` (per warehouse in ``warehouse`` when ``details``).

        With ``skus`` (or ``offer_ids``) the list is split so that each request names at most 50
        and its filter stays short; every chunk is normally one page.
        """
        base: dict[str, str] = {}
        if details:
            base["filter[details]"] = "true"
        if skus is None and offer_ids is None:
            yield from self._paginate("/offers/stocks", base)
            return
        for chunk in _filter_chunks(skus or []):
            yield from self._paginate("/offers/stocks", {**base, "filter[offers_sku]": ",".join(chunk)})
        for chunk in _filter_chunks([str(i) for i in offer_ids or []]):
            yield from self._paginate("/offers/stocks", {**base, "filter[offers_id]": ",".join(chunk)})

    def put_stocks(self, warehouse_id: int, rows: Sequence[JSON]) -> list[JSON]:
        """Set absolute on-hand quantities in one warehouse: ``rows`` are ``{"sku", "quantity"}``."""
        return [
            self._request(
                "PUT", "/offers/stocks", "PUT /offers/stocks", json_body={"warehouse_id": warehouse_id, "stocks": chunk}
            )
            for chunk in _chunks(rows, STOCKS_PUT_MAX_ROWS)
        ]

    def stocks_page(self, page: int, details: bool = True) -> Page:
        """Page ``page`` (from 1) of the whole ``GET /offers/stocks`` list: one request.

        For callers that keep their own cursor (the sweep, the resync), so each step reads one page.
        ``rows, is_last = client.stocks_page(n)``; ``.total`` is the list's size when KeyCRM says.
        """
        return self._list_page("/offers/stocks", {"filter[details]": "true"} if details else {}, page)

    def warehouse_ids(self) -> list[int]:
        """Warehouse ids seen on the first page of detailed stocks (KeyCRM has no warehouses route)."""
        ids: set[int] = set()
        for row in self.stocks_page(1, details=True).rows:
            for wh in row.get("warehouse") or []:
                if isinstance(wh, dict) and wh.get("id") is not None:
                    ids.add(int(wh["id"]))
        return sorted(ids)

    # -- offers ----------------------------------------------------------------------------------
    def iter_offers(self, skus: Sequence[str] | None = None, include_product: bool = False) -> Iterator[JSON]:
        """Offers (variants) of ``GET /offers``, optionally only the given SKUs, with their product."""
        base: dict[str, str] = {"include": "product"} if include_product else {}
        if skus is None:
            yield from self._paginate("/offers", base)
            return
        for chunk in _filter_chunks(skus):
            yield from self._paginate("/offers", {**base, "filter[sku]": ",".join(chunk)})

    def offers_page(self, page: int, include_product: bool = False) -> Page:
        """Page ``page`` (from 1) of the whole ``GET /offers`` list: one request (see ``stocks_page``).

        Each offer carries its ``product_id``; ``include_product`` adds the ``product`` object too.
        """
        return self._list_page("/offers", {"include": "product"} if include_product else {}, page)

    def put_offers(self, offers: Sequence[JSON]) -> list[JSON]:
        """Update offers' price, purchased_price, weight, dimensions, image (each by ``id`` or ``sku``)."""
        return [
            self._request("PUT", "/offers", "PUT /offers", json_body={"offers": chunk}, priority=Priority.FIELDS)
            for chunk in _chunks(offers, OFFERS_PUT_MAX_ROWS)
        ]

    # -- products --------------------------------------------------------------------------------
    def get_product(self, product_id: int, include: str | None = None) -> JSON:
        params = {"include": include} if include else None
        return self._request("GET", f"/products/{int(product_id)}", "GET /products/{id}", params=params)

    def update_product(self, product_id: int, fields: JSON) -> JSON:
        return self._request("PUT", f"/products/{int(product_id)}", "PUT /products/{id}", json_body=dict(fields),
                             priority=Priority.FIELDS)

    def create_product(self, payload: JSON) -> JSON:
        """``POST /products``: a product without variants (``name`` is required; ``sku`` names its offer)."""
        return self._request("POST", "/products", "POST /products", json_body=dict(payload))

    def create_offers(self, product_id: int, offers: Sequence[JSON], *, product_name: str) -> list[JSON]:
        """``POST /products/{id}/offers``, at most 100 offers a request.

        The published spec lists ``name`` as required in this body (next to ``offers``), so a
        validator built from it refuses a body without it; we send the product's name.
        """
        return [
            self._request(
                "POST",
                f"/products/{int(product_id)}/offers",
                "POST /products/{id}/offers",
                json_body={"name": product_name, "offers": chunk},
            )
            for chunk in _chunks(offers, OFFERS_POST_MAX)
        ]

    # -- orders ----------------------------------------------------------------------------------
    def iter_orders(
        self,
        updated_from: datetime | float | None,
        updated_to: datetime | float | None,
        source_uuids: Iterable[str] | None = None,
        include: str | None = "products.offer",
    ) -> Iterator[JSON]:
        """Orders of ``GET /order`` updated in ``[updated_from, updated_to]`` (UTC).

        The spec documents ``filter[source_uuid]`` with one value, so each uuid is its own query;
        for many orders prefer the time filter alone and match ``source_uuid`` locally.
        """
        base: dict[str, str] = {}
        if include:
            base["include"] = include
        if updated_from is not None or updated_to is not None:
            start = _keycrm_time(updated_from if updated_from is not None else 0.0)
            end = _keycrm_time(updated_to if updated_to is not None else self.clock.now())
            base["filter[updated_between]"] = f"{start}, {end}"
        if source_uuids is None:
            yield from self._paginate("/order", base)
            return
        for uuid in dict.fromkeys(source_uuids):
            yield from self._paginate("/order", {**base, "filter[source_uuid]": uuid})


# -- helpers -------------------------------------------------------------------------------------
def _chunks(items: Sequence[JSON], size: int) -> Iterator[list[JSON]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _filter_chunks(values: Iterable[str]) -> Iterator[list[str]]:
    """Split ``values`` for a comma-separated ``filter[...]``: ≤ 50 each, encoded ≤ MAX_FILTER_CHARS."""
    chunk: list[str] = []
    length = 0
    for value in dict.fromkeys(values):
        if not value or "," in value:
            # A comma would split the value on KeyCRM's side; such SKUs cannot be looked up.
            log.warning("skipping SKU that cannot be filtered by", extra={"event": "keycrm_bad_filter", "sku": value})
            continue
        cost = len(quote_plus(value)) + (len(quote_plus(",")) if chunk else 0)
        if chunk and (len(chunk) >= PAGE_LIMIT or length + cost > MAX_FILTER_CHARS):
            yield chunk
            chunk, length = [], 0
            cost = len(quote_plus(value))
        chunk.append(value)
        length += cost
    if chunk:
        yield chunk


def _keycrm_time(value: datetime | float) -> str:
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(value, tz=UTC)
    return moment.strftime(KEYCRM_TIME_FORMAT)
