"""The sidecar's WooCommerce client: reads through REST wc/v3 (the `woocommerce` package), stock
writes through the plugin's conditional route.

Stock is never written as a bare absolute value: a sale landing between the sidecar's decision and
its write would be erased by it. ``set_stock`` posts to the plugin's signed
``POST /wp-json/keycrm-bridge/v1/stock``, which sets each product's stock only where the shop still
shows the value the decision was made on (``StockWrite.expect``) and otherwise answers the current
value (a conflict: the caller decides again). REST wc/v3 has no conditional update, so it is used for
reads only.

Every REST request carries ``kcb_origin=<ts>.<hmac>`` so that the plugin tags the hooks it causes with
cause ``sidecar`` (the package has no header argument, and over plain HTTP it signs query params
into its OAuth 1.0a URL, so the marker is covered by the consumer signature as well). Failures map
to the bridge's taxonomy: 5xx/429/timeouts are retried here with jittered backoff through the
clock and then raised as RetryableError; 400/401/403/404 are PermanentError; a batch answered 413
is split; per-item errors in a batch answer become per-item results.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import requests
from woocommerce import API

from . import __version__, signing
from .clock import Clock
from .errors import PermanentError, RetryableError, SkipError, classify_status
from .logs import log_call
from .signing import origin_marker

log = logging.getLogger("keycrm_bridge.woo_client")

USER_AGENT = f"keycrm-bridge-sidecar/{__version__}"
MARKER_PARAM = "kcb_origin"
BATCH_LIMIT = 100  # WooCommerce's woocommerce_rest_batch_items_limit
_COLLAPSED_WS = re.compile(r"[\r\n\t]| {2}")
SKU_QUERY_MAX_CHARS = 1500  # keeps the signed URL well under common 8 KiB request-line limits


def wc_date(value: float | datetime | str) -> str:
    """A GMT date as wc/v3 takes it in ``modified_after`` (with ``dates_are_gmt=true``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        value = value.timestamp() if value.tzinfo else value.replace(tzinfo=UTC).timestamp()
    return datetime.fromtimestamp(math.floor(value), UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_wc_date(text: str | None) -> float | None:
    """``date_modified_gmt`` ("2026-01-01T12:00:00", no zone) to unix seconds."""
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def oauth_signable(value: str) -> bool:
    """Whether the package's OAuth signature of this query value matches WooCommerce's check.

    The package normalises a value with ``quote(unquote(v))`` (keeps '/', decodes '%XX') where
    WooCommerce uses PHP ``rawurlencode(v)``; values where they differ get 401 over plain HTTP.
    """
    return quote(unquote(value)) == quote(value, safe="")


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


@dataclass(frozen=True)
class WooPage:
    """One page of a wc/v3 list route (products or one product's variations), oldest id first."""

    items: list[dict[str, Any]]
    more: bool  # another page follows
    total: int | None  # X-WP-Total: items in the whole list, when WooCommerce sends it


class _TooLarge(PermanentError):
    """413: the batch must be split."""


class WooClient:
    def __init__(
        self,
        url: str,
        consumer_key: str,
        consumer_secret: str,
        shared_secret: str,
        clock: Clock,
        *,
        timeout: float = 30,
        max_attempts: int = 5,
        rng: random.Random | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        batch_size: int = BATCH_LIMIT,
        sku_chunk: int = 50,
    ) -> None:
        if not 1 <= batch_size <= BATCH_LIMIT:
            raise ValueError(f"batch_size must be 1..{BATCH_LIMIT}")
        self.url = url.rstrip("/")
        self._shared_secret = shared_secret
        self.clock = clock
        self.max_attempts = max(1, max_attempts)
        self.rng = rng or random.Random()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.batch_size = batch_size
        self.sku_chunk = sku_chunk
        self._plain_http = not self.url.lower().startswith("https")
        self._api = API(
            self.url, consumer_key, consumer_secret, version="wc/v3", timeout=timeout, user_agent=USER_AGENT
        )
        self._timeout = timeout
        self._session = requests.Session()

    # -- transport ---------------------------------------------------------------------------
    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return delay / 2 + self.rng.random() * delay / 2

    def _attempt(self, method: str, endpoint: str, params: dict[str, Any], data: Any) -> requests.Response:
        # A fresh marker per attempt: a retry minutes later must still fall inside the window.
        signed = {**params, MARKER_PARAM: origin_marker(self._shared_secret, self.clock.now())}
        if method == "GET":
            return self._api.get(endpoint, params=signed)
        if method == "POST":
            return self._api.post(endpoint, data, params=signed)
        if method == "PUT":
            return self._api.put(endpoint, data, params=signed)
        if method == "DELETE":
            return self._api.delete(endpoint, params=signed)
        raise ValueError(method)

    def _call(
        self, method: str, endpoint: str, *, params: dict[str, Any] | None = None, data: Any = None,
        send: Callable[[], requests.Response] | None = None,
    ) -> requests.Response:
        """One call with retries (wc/v3, or ``send`` for the plugin's route). POSTs are retried
        too: the only write is the conditional stock write, which is safe to repeat."""
        error: RetryableError | None = None
        for attempt in range(1, self.max_attempts + 1):
            started = time.perf_counter()  # for the log only
            try:
                resp = send() if send is not None else self._attempt(method, endpoint, params or {}, data)
            except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                self._log(method, endpoint, None, attempt, started, error=type(exc).__name__)
                error = RetryableError(f"WooCommerce {method} {endpoint}: {type(exc).__name__}", endpoint=endpoint)
            except requests.RequestException as exc:
                self._log(method, endpoint, None, attempt, started, error=type(exc).__name__)
                raise PermanentError(
                    f"WooCommerce {method} {endpoint}: {type(exc).__name__}", endpoint=endpoint
                ) from exc
            else:
                status = resp.status_code
                kind = classify_status(status)
                self._log(method, endpoint, status, attempt, started)
                if kind is None:
                    return resp
                message = f"WooCommerce {method} {endpoint} -> {status} {_error_detail(resp)}".strip()
                if status == 413:
                    raise _TooLarge(message, status=status, endpoint=endpoint)
                if kind is not RetryableError:
                    raise PermanentError(message, status=status, endpoint=endpoint)
                error = RetryableError(
                    message, status=status, endpoint=endpoint, retry_after=_retry_after(resp.headers.get("Retry-After"))
                )
            if attempt < self.max_attempts:
                self.clock.sleep(self._backoff(attempt, error.retry_after))
        assert error is not None
        if error.retry_after is None:
            error.retry_after = self._backoff(self.max_attempts, None)
        raise error

    @staticmethod
    def _log(method: str, endpoint: str, status: int | None, attempt: int, started: float, *, error: str = "") -> None:
        log_call(log, "woo", method, endpoint, status, attempt, started, error)

    @staticmethod
    def _json(resp: requests.Response, endpoint: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            # PHP notices printed before the JSON are common on real shops: skip to the JSON.
            text = resp.text
            starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
            if starts:
                try:
                    return json.loads(text[min(starts) :])
                except ValueError:
                    pass
            raise RetryableError(
                f"WooCommerce {endpoint}: answer is not JSON", status=resp.status_code, endpoint=endpoint
            ) from None

    def _get_page(
        self, endpoint: str, params: dict[str, Any], per_page: int, page: int
    ) -> tuple[Any, bool, str | None]:
        """One GET of a list route: the decoded answer, whether another page follows, X-WP-Total."""
        if not 1 <= per_page <= 100:
            raise ValueError("per_page must be 1..100")
        resp = self._call("GET", endpoint, params={**params, "per_page": per_page, "page": page})
        items = self._json(resp, endpoint)
        more = isinstance(items, list) and bool(items)
        total_pages = resp.headers.get("X-WP-TotalPages")
        if more and total_pages is not None:
            more = page < int(total_pages)
        elif more:
            more = len(items) >= per_page
        return items, more, resp.headers.get("X-WP-Total")

    def _pages(self, endpoint: str, params: dict[str, Any], per_page: int) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            items, more, _ = self._get_page(endpoint, params, per_page, page)
            if not isinstance(items, list):
                raise PermanentError(f"WooCommerce {endpoint}: expected a list", endpoint=endpoint)
            yield from items
            if not more:
                return
            page += 1

    def _one_page(self, endpoint: str, params: dict[str, Any], per_page: int, page: int) -> WooPage:
        items, more, total = self._get_page(endpoint, params, per_page, page)
        if not isinstance(items, list):
            # A page-at-a-time caller keeps its cursor and asks again later.
            raise RetryableError(f"WooCommerce {endpoint}: answered a list page without a list", endpoint=endpoint)
        return WooPage(items, more, _header_int(total))

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


def _header_int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_detail(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and "code" in body:
        return f"{body.get('code')}: {body.get('message', '')}"
    return ""
