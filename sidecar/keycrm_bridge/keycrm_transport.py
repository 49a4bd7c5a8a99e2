"""The transport under ``KeyCRMClient``: one ``requests.Session`` to KeyCRM's API, the shared rate
budget, retries and the error taxonomy, list paging.

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
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from keycrm_bridge import __version__
from keycrm_bridge.budget import Priority, RateBudget
from keycrm_bridge.clock import Clock
from keycrm_bridge.errors import PermanentError, RetryableError
from keycrm_bridge.logs import log_call

# The client's one logger, whichever of its modules logs (log lines name it as "logger").
log = logging.getLogger("keycrm_bridge.keycrm_client")

JSON = dict[str, Any]

PAGE_LIMIT = 50  # the spec's maximum `limit` for list routes
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
# A Retry-After longer than this is treated as this long: it blocks every process's calls.
RETRY_AFTER_CAP_S = 600.0

_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})
_ON_THE_WIRE = threading.Lock()  # per process: see KeyCRMTransport._request
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


class KeyCRMTransport:
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


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach KeyCRM (so even a POST may be repeated)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return type(reason).__name__ in {"NewConnectionError", "NameResolutionError"}
    return False
