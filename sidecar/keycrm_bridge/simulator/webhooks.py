"""KeyCRM's stock webhook: after each stock change, POST ``[{offer_id, sku, in_stock, in_reserve}]``.

Rows are built when the change happens (a snapshot, like a real event) and delivered by a
background thread, so the API answer never waits for the receiver. A ``delay`` (clock seconds)
holds deliveries back until the injected clock has moved that far: a FakeClock test advances the
clock to release them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import requests

from keycrm_bridge.clock import Clock

log = logging.getLogger("keycrm_bridge.simulator.webhooks")

# KeyCRM does not document how it batches; one POST per change with at most this many rows.
MAX_ROWS_PER_POST = 1000


@dataclass
class WebhookConfig:
    url: str | None = None
    warehouses: list[int] | None = None  # None: summed over all warehouses
    delay: float = 0.0
    enabled: bool = True
    timeout: float = 5.0


@dataclass
class _Delivery:
    due: float
    rows: list[dict[str, Any]]
    url: str


@dataclass
class WebhookStats:
    sent: int = 0
    failed: int = 0
    rows_sent: int = 0
    last_error: str | None = None
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))


class WebhookDispatcher:
    def __init__(self, clock: Clock, config: WebhookConfig | None = None) -> None:
        self.clock = clock
        self.config = config or WebhookConfig()
        self.stats = WebhookStats()
        self._queue: deque[_Delivery] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._in_flight = 0
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="keycrm-sim-webhooks", daemon=True)
        self._thread.start()

    def configure(self, changes: dict[str, Any]) -> WebhookConfig:
        with self._cond:
            for key, value in changes.items():
                if not hasattr(self.config, key):
                    raise ValueError(f"unknown webhook setting {key!r}")
                if key == "warehouses" and value is not None:
                    value = [int(w) for w in value]
                setattr(self.config, key, value)
            self._cond.notify_all()
            return self.config

    def submit(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows for delivery (called with the state lock held: no I/O here)."""
        with self._cond:
            cfg = self.config
            if not cfg.enabled or not cfg.url or not rows:
                return
            due = self.clock.now() + cfg.delay
            for i in range(0, len(rows), MAX_ROWS_PER_POST):
                self._queue.append(_Delivery(due, rows[i : i + MAX_ROWS_PER_POST], cfg.url))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight

    def drop_pending(self) -> None:
        with self._cond:
            self._queue.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            cfg = self.config
            return {
                "url": cfg.url,
                "warehouses": cfg.warehouses,
                "delay": cfg.delay,
                "enabled": cfg.enabled,
                "timeout": cfg.timeout,
                "pending": len(self._queue) + self._in_flight,
                "sent": self.stats.sent,
                "failed": self.stats.failed,
                "rows_sent": self.stats.rows_sent,
                "last_error": self.stats.last_error,
            }

    def history(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.stats.history)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._session.close()

    def _next_due(self) -> _Delivery | None:
        """Wait for a delivery whose time has come. Deliveries go in order; a delayed head holds the
        rest back, like a queue would. With a delay the clock is re-read every 20 ms of real time
        (FakeClock and AcceleratedClock move without notifying anyone)."""
        with self._cond:
            while not self._stopped:
                if self._queue:
                    head = self._queue[0]
                    if head.due <= self.clock.now():
                        self._in_flight += 1
                        return self._queue.popleft()
                    self._cond.wait(0.02)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while True:
            delivery = self._next_due()
            if delivery is None:
                return
            try:
                self._post(delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _post(self, delivery: _Delivery) -> None:
        body = json.dumps(delivery.rows)
        try:
            resp = self._session.post(
                delivery.url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self.config.timeout,
            )
            ok = resp.status_code < 400
            status: int | None = resp.status_code
            error = None if ok else f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            ok, status, error = False, None, f"{type(exc).__name__}: {exc}"
        with self._cond:
            if ok:
                self.stats.sent += 1
                self.stats.rows_sent += len(delivery.rows)
            else:
                self.stats.failed += 1
                self.stats.last_error = error
            self.stats.history.append(
                {
                    "time": self.clock.now(),
                    "url": delivery.url,
                    "rows": len(delivery.rows),
                    "status": status,
                    "error": error,
                }
            )
        if not ok:
            log.warning("webhook delivery failed", extra={"url": delivery.url, "error": error})
