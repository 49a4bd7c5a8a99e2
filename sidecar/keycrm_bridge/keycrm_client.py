"""KeyCRM REST client: exactly the routes of KeyCRM's OpenAPI 1.2.0 that the bridge needs.

Every request first takes a slot from the shared ``RateBudget`` (writes as WRITE, reads as READ),
so all processes together stay within KeyCRM's 60 requests a minute. Failures are sorted into the
error taxonomy of ``keycrm_bridge.errors``:

* 429 — the whole budget is blocked for ``Retry-After`` (or an exponential backoff), then retried;
* 5xx, 408, timeouts, connection errors — retried with exponential backoff and full jitter;
* other 4xx — ``PermanentError`` at once, carrying KeyCRM's message (never the API key).

After ``max_attempts`` a ``RetryableError`` is raised and the worker keeps the change for later.
All waiting goes through the injected clock.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote_plus

import requests

from keycrm_bridge import __version__
from keycrm_bridge.budget import Priority, RateBudget
from keycrm_bridge.clock import Clock
from keycrm_bridge.errors import PermanentError, RetryableError
from keycrm_bridge.logs import log_call

log = logging.getLogger(__name__)

JSON = dict[str, Any]

PAGE_LIMIT = 50  # the spec's maximum `limit` for list routes
STOCKS_PUT_MAX_ROWS = 10_000  # PUT /offers/stocks
OFFERS_PUT_MAX_ROWS = 10_000  # PUT /offers
OFFERS_POST_MAX = 100  # POST /products/{id}/offers
# Longest encoded value of one filter[...] list; keeps the whole URL far below the 2,000-8,000
# characters where proxies and servers start refusing. Cyrillic SKUs encode to 6 chars per letter.
MAX_FILTER_CHARS = 1500
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
# A Retry-After longer than this is treated as this long: it blocks every process's calls.
RETRY_AFTER_CAP_S = 600.0
KEYCRM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # UTC, as in the spec's filter examples

_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})
_ON_THE_WIRE = threading.Lock()  # per process: see KeyCRMClient._request
_blocked: dict[str, float] = {}  # budget database -> until when this process's last 429 blocks calls
_CONFIG_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


@dataclass(frozen=True)
class Page:
    """One page (at most 50 rows) of a KeyCRM list route.

    Unpacks as ``rows, is_last`` for callers that need no more than that.
    """

    rows: list[JSON]
    is_last: bool
    total: int | None = None  # rows in the whole list, when KeyCRM's page says (``total``)

    def __iter__(self) -> Iterator[Any]:
        yield self.rows
        yield self.is_last


class KeyCRMClient:
    """One ``requests.Session`` to KeyCRM's API (``base_url`` ends in ``/v1``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        budget: RateBudget,
        clock: Clock,
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = (3.05, 30),
        max_attempts: int = 5,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.last_ok_at: float | None = None
        self._api_key = api_key
        self.budget = budget
        self.clock = clock
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.rng = rng or random.Random()

    def close(self) -> None:
        self.session.close()

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

    # -- transport -------------------------------------------------------------------------------
    def _paginate(self, path: str, params: dict[str, str]) -> Iterator[JSON]:
        page = 1
        while True:
            result = self._list_page(path, params, page)
            yield from result.rows
            if result.is_last:
                return
            page += 1

    def _list_page(self, path: str, params: dict[str, str], page: int) -> Page:
        body = self._request("GET", path, f"GET {path}", params={**params, "limit": PAGE_LIMIT, "page": page})
        data = _page_data(body)
        total = body.get("total") if isinstance(body, dict) else None
        return Page(data, _is_last_page(body, data, page), total if isinstance(total, int) else None)

    def _request(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: JSON | None = None,
        priority: Priority | None = None,
    ) -> Any:
        if priority is None:
            # The order poll is what keeps a site order from being sold twice: like a write it may use the
            # write reserve, so a sweep or a resync filling the reads never delays it.
            priority = Priority.READ if method == "GET" and endpoint != "GET /order" else Priority.WRITE
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "application/json",
            "User-Agent": f"keycrm-bridge-sidecar/{__version__}",
        }
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        url = self.base_url + path
        last_error: RetryableError | None = None
        for attempt in range(1, self.max_attempts + 1):
            self.budget.acquire(priority, endpoint)
            started = time.perf_counter()  # measures duration for the log only
            status: int | None = None
            try:
                with _ON_THE_WIRE:
                    # The worker's lanes share this process: one KeyCRM request on the wire at a time,
                    # so a 429 one lane meets is honoured by the next one's request, never raced by it.
                    self._wait_out_block()
                    response = self.session.request(
                        method,
                        url,
                        params=params,
                        data=None if json_body is None else json.dumps(json_body, ensure_ascii=False).encode(),
                        headers=headers,
                        timeout=self.timeout,
                    )
                    if response.status_code == 429:
                        # Blocks every process (and lane) before the next request may go out.
                        until = self.budget.penalize(self._retry_after(response, attempt))
                        _blocked[self.budget.db_path] = max(_blocked.get(self.budget.db_path, 0.0), until)
                status = response.status_code
            except _CONFIG_ERRORS as exc:
                # A malformed base URL is a setting to fix, not an outage to wait out.
                raise PermanentError(
                    f"{endpoint}: {type(exc).__name__}: check KEYCRM base URL", endpoint=endpoint
                ) from exc
            except requests.RequestException as exc:
                self._log(method, endpoint, None, attempt, started, error=type(exc).__name__)
                last_error = RetryableError(f"{endpoint}: {type(exc).__name__}", endpoint=endpoint, retry_after=None)
                if method not in _IDEMPOTENT and not _never_sent(exc):
                    # A POST that may have reached KeyCRM is not repeated blindly (it could create
                    # a duplicate); the caller looks first, then retries.
                    raise last_error from exc
                delay = self._backoff(attempt)
            else:
                self._log(method, endpoint, status, attempt, started)
                if 200 <= status < 300:
                    try:
                        return _json_or_empty(response)
                    except ValueError:
                        last_error = RetryableError(f"{endpoint}: answer is not JSON", status=status, endpoint=endpoint)
                        if method not in _IDEMPOTENT:
                            raise last_error from None
                        delay = self._backoff(attempt)
                elif status == 429:
                    retry_after = self._retry_after(response, attempt)  # (penalized above, on the wire)
                    last_error = RetryableError(
                        f"{endpoint}: rate limited (429)", status=429, endpoint=endpoint, retry_after=retry_after
                    )
                    delay = 0.0
                elif status >= 500 or status == 408:
                    last_error = RetryableError(
                        f"{endpoint}: HTTP {status}: {self._message(response)}", status=status, endpoint=endpoint
                    )
                    if method not in _IDEMPOTENT and status != 503:
                        raise last_error
                    delay = self._backoff(attempt)
                else:
                    raise PermanentError(
                        f"{endpoint}: HTTP {status}: {self._message(response)}", status=status, endpoint=endpoint
                    )
            if attempt == self.max_attempts:
                break
            if delay > 0:
                self.clock.sleep(delay)
        assert last_error is not None
        if last_error.retry_after is None:
            # A hint for the worker: the next backoff step without jitter.
            last_error.retry_after = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**self.max_attempts)
        raise last_error

    def _wait_out_block(self) -> None:
        # Another lane's 429 after this one's acquire(): acquire() saw no block then (other
        # processes' blocks are seen by acquire(); this process's are known here without a read).
        wait = _blocked.get(self.budget.db_path, 0.0) - self.clock.now()
        if wait > 0:
            self.clock.sleep(wait)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        return self.rng.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))

    def _retry_after(self, response: requests.Response, attempt: int) -> float:
        value = response.headers.get("Retry-After")
        seconds: float | None = None
        if value:
            try:
                seconds = float(value)
                if not math.isfinite(seconds):
                    seconds = None
            except ValueError:
                try:
                    seconds = parsedate_to_datetime(value).timestamp() - self.clock.now()
                except (TypeError, ValueError):
                    seconds = None
        if seconds is None:
            # No usable Retry-After: back off exponentially, without jitter, since the window is full.
            seconds = min(BACKOFF_CAP_S, 2 * BACKOFF_BASE_S * 2 ** (attempt - 1))
        return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)

    def _message(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            text = response.text.strip()[:300]
        else:
            if isinstance(body, dict):
                parts = [str(body.get("message") or body.get("error") or "")]
                if body.get("errors"):
                    parts.append(json.dumps(body["errors"], ensure_ascii=False)[:500])
                text = " ".join(p for p in parts if p)
            else:
                text = json.dumps(body, ensure_ascii=False)[:300]
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text or response.reason or ""

    def _log(self, method: str, endpoint: str, status: int | None, attempt: int, started: float, *,
             error: str | None = None) -> None:
        log_call(log, "keycrm", method, endpoint, status, attempt, started, error)
        if status is not None and status < 400:
            self.last_ok_at = self.clock.now()  # reads count: status shows when KeyCRM last answered


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


def _page_data(body: Any) -> list[JSON]:
    if isinstance(body, list):
        return [r for r in body if isinstance(r, dict)]
    if isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, list):
            return [r for r in data if isinstance(r, dict)]
    return []


def _is_last_page(body: Any, data: list[JSON], page: int) -> bool:
    if not isinstance(body, dict) or len(data) < PAGE_LIMIT:
        return True
    if "next_page_url" in body and not body["next_page_url"]:
        return True
    last_page = body.get("last_page")
    if isinstance(last_page, int):
        current = body.get("current_page")
        return (current if isinstance(current, int) else page) >= last_page
    return False


def _json_or_empty(response: requests.Response) -> Any:
    if not response.content.strip():
        return {}
    return response.json()


def _keycrm_time(value: datetime | float) -> str:
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(value, tz=UTC)
    return moment.strftime(KEYCRM_TIME_FORMAT)


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach KeyCRM (so even a POST may be repeated)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return type(reason).__name__ in {"NewConnectionError", "NameResolutionError"}
    return False
