"""The plugin's side of the peer: event building and the signed, ordered sender.

Like the real plugin, the peer collects the events one request causes and sends them as one batch
after the response (the plugin sends on `shutdown`), from a queue so that REST answers never wait
for the sidecar; a batch that fails is retried before any later one, so order per SKU holds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

from .. import signing
from .product import Product

log = logging.getLogger("keycrm_bridge.woo_peer.plugin")

PLUGIN_VERSION = "peer-0.1.0"
MAX_EVENTS_PER_BATCH = 1000  # the schema's maxItems


def _num(value: str) -> float | None:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def product_snapshot(p: Product) -> dict[str, Any]:
    """The `product` object of a product.upsert event (numbers, not WooCommerce's strings)."""
    return {
        "name": p.name[:1024],
        "type": p.type,
        "status": p.status[:32],
        "description": p.description[:200_000],
        "price": _num(p.price),
        "regular_price": _num(p.regular_price),
        "sale_price": _num(p.sale_price),
        "weight": _num(p.weight),
        "length": _num(p.length),
        "width": _num(p.width),
        "height": _num(p.height),
        "manage_stock": p.manage_stock,
        "stock_quantity": p.stock_quantity if p.manage_stock else None,
    }




class EventFactory:
    """Builds schema-shaped events with ids unique across peer restarts."""

    def __init__(self, clock_now: Callable[[], float]) -> None:
        self._now = clock_now
        self._boot = os.urandom(4).hex()
        self._seq = itertools.count(1)

    def _base(self, etype: str, p: Product, cause: str) -> dict[str, Any]:
        return {
            "id": f"peer-{self._boot}-{next(self._seq):010d}",
            "type": etype,
            "occurred_at": round(self._now(), 6),
            "product_id": p.id,
            "parent_id": p.parent_id,
            "sku": p.sku[:191],
            "cause": cause,
        }

    def stock_set(
        self, p: Product, cause: str, *, order_id: int | None = None, delta: int | None = None
    ) -> dict[str, Any]:
        event = self._base("stock.set", p, cause)
        event["stock_quantity"] = p.stock_quantity if p.manage_stock else None
        if order_id is not None:
            event["order_id"] = order_id
        if delta is not None:
            event["quantity_delta"] = delta
        return event

    def upsert(self, p: Product, cause: str, *, old_sku: str | None = None) -> dict[str, Any]:
        event = self._base("product.upsert", p, cause)
        event["product"] = product_snapshot(p)
        if old_sku is not None and old_sku != p.sku:
            event["old_sku"] = old_sku[:191]
        return event

    def deleted(self, p: Product, cause: str) -> dict[str, Any]:
        return self._base("product.deleted", p, cause)


def events_for_change(
    factory: EventFactory, p: Product, changed: set[str], old_sku: str, cause: str
) -> list[dict[str, Any]]:
    """What the plugin's hooks produce for one saved product: set_stock fires only on a real change."""
    events: list[dict[str, Any]] = []
    if changed - {"stock_quantity", "stock_status"}:
        events.append(factory.upsert(p, cause, old_sku=old_sku if "sku" in changed else None))
    if "stock_quantity" in changed:
        events.append(factory.stock_set(p, cause))
    return events


class EventSender:
    """Ordered outbox: one background thread POSTs batches to {sidecar_url}/v1/events."""

    def __init__(self, clock_now: Callable[[], float], site: str = "") -> None:
        self._now = clock_now
        self.site = site
        self.sidecar_url: str | None = None
        self.shared_secret: str | None = None
        self._queue: deque[list[dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.stats: dict[str, Any] = {
            "queued_batches": 0,
            "sent_batches": 0,
            "sent_events": 0,
            "failed_attempts": 0,
            "rejected_batches": 0,
            "not_configured_events": 0,
            "last_error": None,
            "last_status": None,
        }
        self.rejected: deque[dict[str, Any]] = deque(maxlen=100)
        self.sent: deque[dict[str, Any]] = deque(maxlen=2000)
        self._session = requests.Session()
        self._generation = 0  # bumped by clear(), so an in-flight batch is not popped twice
        self._thread = threading.Thread(target=self._run, name="woo-peer-events", daemon=True)
        self._thread.start()

    @property
    def enabled(self) -> bool:
        return bool(self.sidecar_url and self.shared_secret)

    def enqueue(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        with self._cond:
            if not self.enabled:
                # The plugin records nothing until it is configured.
                self.stats["not_configured_events"] += len(events)
                return
            for start in range(0, len(events), MAX_EVENTS_PER_BATCH):
                self._queue.append(events[start : start + MAX_EVENTS_PER_BATCH])
                self.stats["queued_batches"] += 1
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            # The batch being sent stays at the head of the queue until it is acknowledged.
            return len(self._queue)

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()
            self._generation += 1
            self.sent.clear()
            self.rejected.clear()

    def retry_now(self) -> None:
        """Cut a backoff short (a test's 'the sidecar is back')."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _next(self) -> tuple[int, list[dict[str, Any]]] | None:
        with self._cond:
            while not self._queue and not self._stop.is_set():
                self._cond.wait(timeout=1.0)
            if self._stop.is_set():
                return None
            return self._generation, self._queue[0]

    def _done(self, generation: int) -> None:
        with self._cond:
            if self._queue and generation == self._generation:
                self._queue.popleft()

    def _run(self) -> None:
        failures = 0
        while True:
            head = self._next()
            if head is None:
                return
            generation, batch = head
            outcome = self._send(batch)
            if outcome in ("sent", "rejected"):
                failures = 0
                self._done(generation)
                continue
            failures += 1
            # The peer's own backoff (real time: it stands in for a PHP cron, not for bridge logic).
            self._wake.clear()
            self._wake.wait(min(0.05 * (2 ** min(failures, 6)), 2.0))

    def _send(self, events: list[dict[str, Any]]) -> str:
        url, secret = self.sidecar_url, self.shared_secret
        if not url or not secret:
            return "failed"
        body = json.dumps(
            {"site": self.site, "plugin_version": PLUGIN_VERSION, "events": events},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(self._now()))
        headers = {
            "Content-Type": "application/json",
            "X-Bridge-Timestamp": timestamp,
            "X-Bridge-Signature": signing.sign(secret, "POST", "/v1/events", timestamp, body),
            "User-Agent": f"keycrm-bridge-plugin/{PLUGIN_VERSION}",
        }
        try:
            resp = self._session.post(url.rstrip("/") + "/v1/events", data=body, headers=headers, timeout=10)
        except requests.RequestException as exc:
            self.stats["failed_attempts"] += 1
            self.stats["last_error"] = type(exc).__name__
            return "failed"
        self.stats["last_status"] = resp.status_code
        if 200 <= resp.status_code < 300 and not _acknowledges(resp, len(events), body):
            # As the plugin: a 2xx that does not name this batch leaves it queued.
            self.stats["failed_attempts"] += 1
            self.stats["last_error"] = f"HTTP {resp.status_code} that does not acknowledge this batch"
            return "failed"
        if 200 <= resp.status_code < 300:
            self.stats["sent_batches"] += 1
            self.stats["sent_events"] += len(events)
            for event in events:
                self.sent.append(
                    {
                        "id": event["id"],
                        "type": event["type"],
                        "sku": event["sku"],
                        "cause": event["cause"],
                        "product_id": event["product_id"],
                    }
                )
            return "sent"
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            self.stats["failed_attempts"] += 1
            self.stats["last_error"] = f"HTTP {resp.status_code}"
            return "failed"
        # A batch the sidecar refuses for good (401/413/422...) would block every later one.
        self.stats["rejected_batches"] += 1
        self.rejected.append({"status": resp.status_code, "body": resp.text[:2000], "events": len(events)})
        log.warning("event batch rejected", extra={"status": resp.status_code, "events": len(events)})
        return "rejected"


def _acknowledges(resp: requests.Response, count: int, body: bytes) -> bool:
    """The sidecar's 202 for exactly this batch: its event count and the SHA-256 of its body."""
    try:
        data = resp.json()
    except ValueError:
        return False
    return (resp.status_code == 202 and isinstance(data, dict) and data.get("accepted") == count
            and data.get("batch_sha256") == hashlib.sha256(body).hexdigest())
