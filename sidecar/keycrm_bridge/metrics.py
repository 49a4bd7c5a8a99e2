"""Prometheus metrics at ``GET /metrics``, read from the SQLite store on every scrape.

gunicorn runs several web processes and the worker is another process, so counters kept in one
process's memory would each tell a different part of the story. Everything exported here is read
from the one SQLite file instead (queue, budget, meta keys, call totals), which makes any web
process give the same answer. Labels never carry SKUs: they are unbounded and belong in the logs.

KeyCRM calls by status need one write per call. ``RecordingSession`` is a ``requests.Session`` the
KeyCRM client can be given (``KeyCRMClient(..., session=RecordingSession(db_path, base_url))``):
it adds one to ``keycrm_call_totals`` per HTTP attempt, labelled like the budget's endpoints.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

import requests
from flask import Flask, Response
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from . import __version__, latency
from .budget import WINDOW_S, RateBudget
from .clock import Clock
from .config import Settings
from .erp.report import erp_metrics
from .lanes import lane_states
from .quarantine import STAGES, Quarantine
from .store import Store

log = logging.getLogger("keycrm_bridge.metrics")

PREFIX = "keycrm_bridge_"
EXTENSION_KEY = "keycrm_bridge.metrics"
# The classic text format every Prometheus version reads (prometheus_client 0.22+ defaults to
# 1.0.0, which only Prometheus 3 knows; our metric names need nothing newer).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CALL_TOTALS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keycrm_call_totals ("
    " endpoint TEXT NOT NULL, status TEXT NOT NULL, calls INTEGER NOT NULL, PRIMARY KEY (endpoint, status))"
)
# Modes in which KeyCRM stock is copied into WooCommerce, so a pull is expected to happen.
PULLING_MODES = ("keycrm", "two-way", "erp")
_NUMERIC_SEGMENT = re.compile(r"/\d+(?=/|$)")


# -- recording KeyCRM calls ---------------------------------------------------------------------


class CallRecorder:
    """Adds up KeyCRM calls by endpoint and status in the SQLite file (a running total per pair)."""

    def __init__(self, db_path: str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(CALL_TOTALS_SCHEMA)

    def record(self, endpoint: str, status: str) -> None:
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO keycrm_call_totals (endpoint, status, calls) VALUES (?, ?, 1)"
                    " ON CONFLICT (endpoint, status) DO UPDATE SET calls = calls + 1",
                    (endpoint, status),
                )
        except sqlite3.Error as exc:
            # Counting must never stop a sync: a lost count is better than a lost push.
            log.warning("could not record a KeyCRM call", extra={"endpoint": endpoint, "error": str(exc)})

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def endpoint_name(method: str, url: str, base_url: str) -> str:
    """``GET /products/{id}`` for ``GET {base}/products/17?…``: the names the budget table uses."""
    path = urlparse(url).path
    base = urlparse(base_url).path.rstrip("/")
    if base and path.startswith(base):
        path = path[len(base):]
    return f"{method.upper()} {_NUMERIC_SEGMENT.sub('/{id}', path) or '/'}"


def failure_status(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection_error"
    return "error"


class RecordingSession(requests.Session):
    """A session that counts every request it sends in ``keycrm_call_totals``."""

    def __init__(self, db_path: str, base_url: str, recorder: CallRecorder | None = None) -> None:
        super().__init__()
        self.base_url = base_url
        self.recorder = recorder or CallRecorder(db_path)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        m = method.decode() if isinstance(method, bytes) else method
        u = url.decode() if isinstance(url, bytes) else url
        name = endpoint_name(m, u, self.base_url)
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            self.recorder.record(name, failure_status(exc))
            raise
        self.recorder.record(name, str(response.status_code))
        return response


# -- reading ------------------------------------------------------------------------------------


def _timestamp(value: Any) -> float | None:
    """A meta timestamp: a number, or ``{"at": number}``."""
    if isinstance(value, dict):
        value = value.get("at")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def _gauge(name: str, doc: str, value: float | None = None, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    if value is not None:
        return GaugeMetricFamily(PREFIX + name, doc, value=value)
    return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))


class StoreCollector:
    """A prometheus_client collector: every ``collect()`` reads the store afresh."""

    def __init__(self, store_factory: Callable[[], Store], settings: Settings, clock: Clock) -> None:
        self.store_factory = store_factory
        self.settings = settings
        self.clock = clock
        self._budgets: dict[int, RateBudget] = {}
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        # Registering must not touch the database; the names are checked at scrape time instead.
        return []

    def _budget(self) -> RateBudget:
        # One budget reader per process (gunicorn forks; a connection must not cross a fork).
        with self._lock:
            pid = os.getpid()
            budget = self._budgets.get(pid)
            if budget is None:
                budget = RateBudget(self.settings.database_path, self.clock, per_minute=self.settings.rate_per_minute)
                self._budgets = {pid: budget}
            return budget

    def collect(self) -> Iterator[Metric]:
        budget = self._budget().snapshot()
        store = self.store_factory()
        conn = store.conn
        # One read transaction: every number below describes the same moment.
        conn.execute("BEGIN")
        try:
            now = self.clock.now()
            families = list(self._from_store(store, now))
        finally:
            conn.execute("COMMIT")
        yield from families
        yield from self._budget_families(conn, budget, now)

    def _from_store(self, store: Store, now: float) -> Iterator[Metric]:
        s = self.settings
        info = GaugeMetricFamily(PREFIX + "info", "Version and sync mode of the sidecar.", labels=["version", "mode"])
        info.add_metric([__version__, s.sync_mode], 1)
        yield info

        queue = store.queue_stats(now)
        oldest = queue["oldest_pending_age_s"] or 0.0
        yield _gauge("queue_depth", "Changes waiting to be pushed (received events included).", queue["queue_depth"])
        yield _gauge("oldest_pending_age_seconds", "Age of the oldest change still waiting; 0 when none.", oldest)

        changes = _gauge("changes", "Rows of the change queue by status.", labels=["status"])
        for status, n in sorted(store.changes_by_status().items()):
            changes.add_metric([status], n)
        yield changes

        unmatched = _gauge("unmatched_skus", "SKUs that could not be matched, by the side they exist on.",
                           labels=["side"])
        for side, n in store.conn.execute("SELECT side, count(*) FROM unmatched GROUP BY side ORDER BY side"):
            unmatched.add_metric([side], n)
        yield unmatched

        events = CounterMetricFamily(PREFIX + "events_received", "Distinct events received from the plugin.")
        events.add_metric([], store.count_events())
        yield events

        last_push = _timestamp(store.get_meta("last_push_at"))
        last_pull = _timestamp(store.get_meta("last_pull_at"))
        lag = _gauge("sync_lag_seconds", "push: age of the oldest change not yet in KeyCRM; pull: age of the "
                     "stalest KeyCRM value the shop shows (+Inf: none read yet, in a mode that pulls).",
                     labels=["direction"])
        lag.add_metric(["push"], oldest)
        stalest = latency.pull_staleness(store.conn, now) if s.sync_mode in PULLING_MODES else 0.0
        lag.add_metric(["pull"], math.inf if stalest is None else stalest)
        yield lag
        for direction, what in (("push", "a shop change (the plugin's event) to KeyCRM's 2xx for its write"),
                                ("pull", "a KeyCRM change being seen (webhook, order read, sweep) to WooCommerce's "
                                         "answer that the write was applied")):
            buckets, total = latency.histogram(store.conn, direction)
            hist = HistogramMetricFamily(PREFIX + f"{direction}_latency_seconds", f"Seconds from {what}, per SKU.")
            hist.add_metric([], buckets, total)
            yield hist
        last = _gauge("last_sync_timestamp_seconds", "Unix time of the last successful sync each way; 0: never.",
                      labels=["direction"])
        last.add_metric(["push"], last_push or 0.0)
        last.add_metric(["pull"], last_pull or 0.0)
        yield last

        resync = store.get_meta("resync")
        resync = resync if isinstance(resync, dict) else {}
        done, total = _number(resync.get("done")), _number(resync.get("total"))
        yield _gauge("resync_done_items", "Items the running (or last) full resync has handled.", done)
        yield _gauge("resync_total_items", "Items the running (or last) full resync will handle.", total)
        yield _gauge("resync_progress_ratio", "done / total of the full resync; 0 when none.",
                     done / total if total > 0 else 0.0)
        phase = _gauge("resync_phase", "1 for the full resync's current phase ('none' when no resync ran).",
                       labels=["phase"])
        phase.add_metric([str(resync.get("phase") or "none")], 1)
        yield phase

        held = store.conn.execute("SELECT count(*) FROM guard_holds WHERE status = 'held'").fetchone()[0] \
            if _table_exists(store.conn, "guard_holds") else 0
        yield _gauge("guard_held_cycles", "Poll cycles held back by the mass-change guard, awaiting confirmation.",
                     float(held))

        quarantined = _gauge("quarantined_items", "Items set aside after admission, by the stage that could not "
                             "process them (`keycrm-bridge quarantine list`).", labels=["stage"])
        counts = Quarantine(store, self.clock).counts()
        for stage in STAGES:
            quarantined.add_metric([stage], counts.get(stage, 0))
        yield quarantined
        beats = _gauge("lane_heartbeat_age_seconds", "Seconds since each worker lane last reported.", labels=["lane"])
        failing = _gauge("lane_step_failing", "1 while a worker step's last run failed, by lane and step.",
                         labels=["lane", "step"])
        for lane, state in sorted(lane_states(store).items()):
            beats.add_metric([lane], max(0.0, now - _number(state.get("beat_at"))))
            for step, st in sorted((state.get("steps") or {}).items()):
                failing.add_metric([lane, step], 1 if st.get("failures") else 0)
        yield beats
        yield failing

        calls = CounterMetricFamily(PREFIX + "keycrm_calls", "KeyCRM HTTP requests by endpoint and status "
                                    "(status is the HTTP code, or timeout / connection_error / error).",
                                    labels=["endpoint", "status"])
        if _table_exists(store.conn, "keycrm_call_totals"):
            for endpoint, status, n in store.conn.execute(
                "SELECT endpoint, status, calls FROM keycrm_call_totals ORDER BY endpoint, status"
            ):
                calls.add_metric([endpoint, status], n)
        yield calls
        yield from erp_metrics(store, PREFIX)

    def _budget_families(self, conn: sqlite3.Connection, budget: Any, now: float) -> Iterator[Metric]:
        yield _gauge("keycrm_budget_per_minute", "KeyCRM requests allowed per minute for this key.",
                     budget.per_minute)
        left = _gauge("keycrm_budget_left", "KeyCRM requests that could start now (0 while a 429 blocks).",
                      labels=["priority"])
        left.add_metric(["write"], budget.left_write)
        left.add_metric(["read"], budget.left_read)
        yield left
        yield _gauge("keycrm_budget_used_last_minute", "KeyCRM requests started in the last 60 s.",
                     budget.used_last_minute)
        blocked = budget.blocked_until
        yield _gauge("keycrm_blocked_seconds", "Seconds until a KeyCRM 429 stops blocking every call; 0: not blocked.",
                     max(0.0, blocked - now) if blocked else 0.0)
        recent = _gauge("keycrm_calls_last_minute", "KeyCRM requests started in the last 60 s, by endpoint and "
                        "budget priority (from the shared rate budget).", labels=["endpoint", "priority"])
        for endpoint, priority, n in conn.execute(
            "SELECT endpoint, priority, count(*) FROM keycrm_calls WHERE ts > ?"
            " GROUP BY endpoint, priority ORDER BY endpoint, priority", (now - WINDOW_S,)
        ):
            recent.add_metric([endpoint, priority], n)
        yield recent


def register_metrics(app: Flask, store_factory: Callable[[], Store], settings: Settings, clock: Clock) -> None:
    """Add ``GET /metrics`` (Prometheus text format) to ``app``; calling it twice changes nothing."""
    if EXTENSION_KEY in app.extensions:
        return
    registry = CollectorRegistry(auto_describe=False)
    collector = StoreCollector(store_factory, settings, clock)
    registry.register(collector)
    app.extensions[EXTENSION_KEY] = {"registry": registry, "collector": collector}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE)
