"""The transport under ``WooClient``: REST wc/v3 calls through the `woocommerce` package, retries and
the error taxonomy, JSON decoding and list paging.

Every REST request carries ``kcb_origin=<ts>.<hmac>`` so that the plugin tags the hooks it causes with
cause ``sidecar`` (the package has no header argument, and over plain HTTP it signs query params
into its OAuth 1.0a URL, so the marker is covered by the consumer signature as well). Failures map
to the bridge's taxonomy: 5xx/429/timeouts are retried here with jittered backoff through the
clock and then raised as RetryableError; 400/401/403/404 are PermanentError (413 as ``_TooLarge``).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import requests
from woocommerce import API

from . import __version__
from .clock import Clock
from .errors import PermanentError, RetryableError, classify_status
from .logs import log_call
from .signing import origin_marker

# The client's one logger, whichever of its modules logs (log lines name it as "logger").
log = logging.getLogger("keycrm_bridge.woo_client")

USER_AGENT = f"keycrm-bridge-sidecar/{__version__}"
MARKER_PARAM = "kcb_origin"


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

@dataclass(frozen=True)
class WooPage:
    """One page of a wc/v3 list route (products or one product's variations), oldest id first."""

    items: list[dict[str, Any]]
    more: bool  # another page follows
    total: int | None  # X-WP-Total: items in the whole list, when WooCommerce sends it


class _TooLarge(PermanentError):
    """413: the batch must be split."""


class WooTransport:
    """Signed wc/v3 calls with retries; ``WooClient`` adds the routes the bridge uses."""

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
    ) -> None:
        self.url = url.rstrip("/")
        self._shared_secret = shared_secret
        self.clock = clock
        self.max_attempts = max(1, max_attempts)
        self.rng = rng or random.Random()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._plain_http = not self.url.lower().startswith("https")
        self._api = API(
            self.url, consumer_key, consumer_secret, version="wc/v3", timeout=timeout, user_agent=USER_AGENT
        )
        self._timeout = timeout
        self._session = requests.Session()

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
