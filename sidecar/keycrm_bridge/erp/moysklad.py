"""MoySklad JSON API 1.2 client: the few routes the stock intake needs, inside the governor.

Bearer token; ``Accept-Encoding: gzip`` on every request (MoySklad refuses requests without it).
429 blocks every process for ``X-Lognex-Retry-After`` (ms), then retries; 5xx and timeouts back
off; 401/403 and other 4xx are permanent (a setting to fix). MoySklad writes times in Moscow
time (UTC+3, no daylight saving), which is what ``changedSince`` takes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

import requests

from .. import __version__
from ..clock import Clock
from ..errors import PermanentError, RetryableError
from ..logs import log_call
from .governor import Governor

log = logging.getLogger("keycrm_bridge.erp.moysklad")

MOSCOW = timezone(timedelta(hours=3))
REPORT_UNITS = 5          # stock reports cost more than other requests
PAGE = 1000               # MoySklad's largest page for entities and reports
MAX_ATTEMPTS = 5


def moscow_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")


def entity_id(href: str | None) -> str:
    """The id at the end of a MoySklad meta href (``…/entity/product/<id>?expand=…``)."""
    return (urlparse(href or "").path.rstrip("/").rsplit("/", 1) or [""])[-1]


class MoySkladClient:
    def __init__(self, base_url: str, token: str, governor: Governor, clock: Clock, *,
                 units_per_request: int = 4, timeout: float = 30.0, session: requests.Session | None = None,
                 rng: random.Random | None = None, attempts: int = MAX_ATTEMPTS) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.governor, self.clock = governor, clock
        self.units_per_request = units_per_request
        self.timeout = timeout
        self.session = session or requests.Session()
        self.rng = rng or random.Random()
        self.attempts = attempts

    def owns(self, url: str) -> bool:
        """True when ``url`` is one of this account's API routes (a webhook's reportUrl must be)."""
        return url.startswith(self.base_url + "/") and "@" not in urlparse(url).netloc

    def get(self, path_or_url: str, params: dict[str, Any] | None = None, *, report: bool = False) -> Any:
        url = path_or_url if path_or_url.startswith("http") else self.base_url + path_or_url
        if not self.owns(url):
            raise PermanentError(f"refusing to send the MoySklad token to {urlparse(url).netloc}")
        cost = max(self.units_per_request, REPORT_UNITS if report else 1)
        endpoint = urlparse(url).path.removeprefix(urlparse(self.base_url).path) or "/"
        headers = {"Authorization": f"Bearer {self._token}", "Accept-Encoding": "gzip",
                   "Accept": "application/json;charset=utf-8", "User-Agent": f"keycrm-bridge-sidecar/{__version__}"}
        for attempt in range(1, self.attempts + 1):
            slot = self.governor.acquire(cost)
            started = time.perf_counter()
            try:
                r = self.session.get(url, params=params, headers=headers, timeout=(3.05, self.timeout))
            except requests.RequestException as exc:
                log_call(log, "moysklad", "GET", endpoint, None, attempt, started, type(exc).__name__)
                if attempt < self.attempts:
                    self.clock.sleep(self.rng.uniform(0, min(30.0, 0.5 * 2 ** attempt)))
                continue
            finally:
                self.governor.release(slot)
            log_call(log, "moysklad", "GET", endpoint, r.status_code, attempt, started, None)
            if r.status_code == 200:
                return r.json()
            if r.status_code == 429:
                wait = _retry_after(r)
                self.governor.penalize(wait)  # every process waits it out: sustained 429s end in a ban
                continue
            if r.status_code >= 500:
                if attempt < self.attempts:
                    self.clock.sleep(self.rng.uniform(0, min(30.0, 0.5 * 2 ** attempt)))
                continue
            raise PermanentError(f"MoySklad {endpoint}: HTTP {r.status_code}: {_message(r)}"[:400],
                                 status=r.status_code, endpoint=endpoint)
        raise RetryableError(f"MoySklad {endpoint}: no answer after {self.attempts} attempt(s)", endpoint=endpoint,
                             retry_after=5.0)

    # -- the routes ------------------------------------------------------------------------------

    def current_stock(self, changed_since: float | None = None, url: str | None = None) -> list[dict[str, Any]]:
        """``/report/stock/bystore/current``: rows ``{assortmentId, storeId, stock}`` (zeros included)."""
        params: dict[str, Any] = {"include": "zeroLines", "stockType": "stock"}
        if url is None:
            url = "/report/stock/bystore/current"
            if changed_since is not None:
                params["changedSince"] = moscow_time(changed_since)
        elif "include=" in url:
            params.pop("include")
        body = self.get(url, params, report=True)
        return body if isinstance(body, list) else []

    def stock_by_store(self) -> Iterator[dict[str, Any]]:
        """The whole ``/report/stock/bystore``, page by page: ``{assortmentId, storeId, stock}``."""
        offset = 0
        while True:
            body = self.get("/report/stock/bystore", {"limit": PAGE, "offset": offset}, report=True)
            rows = body.get("rows") or [] if isinstance(body, dict) else []
            for row in rows:
                aid = entity_id((row.get("meta") or {}).get("href"))
                for s in row.get("stockByStore") or []:
                    yield {"assortmentId": aid, "storeId": entity_id((s.get("meta") or {}).get("href")),
                           "stock": s.get("stock")}
            if len(rows) < PAGE:
                return
            offset += PAGE

    def assortment(self) -> Iterator[dict[str, Any]]:
        """Products and variants with their ``article``/``code``/``name``/``salePrices``."""
        offset = 0
        while True:
            body = self.get("/entity/assortment", {"limit": PAGE, "offset": offset})
            rows = body.get("rows") or [] if isinstance(body, dict) else []
            yield from rows
            if len(rows) < PAGE:
                return
            offset += PAGE

    def stores(self) -> list[dict[str, Any]]:
        body = self.get("/entity/store", {"limit": PAGE})
        return list(body.get("rows") or []) if isinstance(body, dict) else []


def _retry_after(r: requests.Response) -> float:
    for key in ("X-Lognex-Retry-After", "X-Lognex-Retry-TimeInterval"):
        raw = r.headers.get(key)
        if raw and raw.isdigit():
            return int(raw) / 1000.0
    return 3.0


def _message(r: requests.Response) -> str:
    try:
        errors = r.json().get("errors") or []
        return "; ".join(str(e.get("error")) for e in errors if isinstance(e, dict)) or r.reason
    except (ValueError, AttributeError):
        return r.reason or ""
