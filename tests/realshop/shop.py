"""The sidecar beside the real shop: KeyCRM simulator, gunicorn and worker on loopback, pointed at the rig's
WooCommerce with its REST keys; and what the suite looks at (KeyCRM, the sidecar's events, the plugin's outbox)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import sys
from pathlib import Path
from typing import Any

import requests

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import rig  # noqa: E402

from keycrm_bridge.simulator.testing import SimulatorProcess  # noqa: E402

from bridge import Proc, Worker, bridge_env, free_port, wait_until  # noqa: E402

TOKEN = "realshop-webhook-token-0123456789"


class Sidecar:
    """Started once; ``stop_web``/``start_web`` take the events API away and back on the same port."""

    def __init__(self, tmp: Path) -> None:
        from rigclient import load_env

        keys = load_env()
        self.tmp = tmp
        self.secret = secrets.token_hex(32)
        self.sim = SimulatorProcess()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp / "sidecar.sqlite3"
        self.env: dict[str, str] = {}
        self.keys = keys
        self.web: Proc | None = None
        self.worker: Worker | None = None

    def start(self, offers: list[dict[str, Any]]) -> None:
        self.sim.start()
        self.sim.control.seed(offers=offers)
        self.env = bridge_env(self.db, self.sim.api_url, SYNC_MODE="woocommerce", BRIDGE_SHARED_SECRET=self.secret,
                              KEYCRM_WEBHOOK_TOKEN=TOKEN, PUSH_DEBOUNCE_S="0.2", PUSH_MAX_WAIT_S="1",
                              ORDER_POLL_INTERVAL_S="2", LOG_LEVEL="INFO", WOO_URL=self.keys["WC_URL"],
                              WOO_CONSUMER_KEY=self.keys["WC_CONSUMER_KEY"],
                              WOO_CONSUMER_SECRET=self.keys["WC_CONSUMER_SECRET"])
        self.start_web()
        self.sim.control.configure_webhook(url=f"{self.url}/v1/keycrm/webhook/{TOKEN}")
        self.worker = Worker(self.env, self.tmp / "worker.log").start()

    def start_web(self) -> None:
        self.web = Proc([sys.executable, "-m", "keycrm_bridge.cli", "web"],
                        {**self.env, "BIND": f"127.0.0.1:{self.port}", "WEB_WORKERS": "2"}, self.tmp / "web.log")
        self.web.start()

        def up() -> bool:
            try:
                return requests.get(self.url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, timeout=60, what="the sidecar's /healthz")

    def stop_web(self) -> None:
        if self.web:
            self.web.stop()

    def stop(self) -> None:
        for p in (self.worker, self.web):
            if p:
                p.stop()
        self.sim.stop()

    # -- observations --------------------------------------------------------------------------

    def events(self, sku: str) -> list[dict[str, Any]]:
        """What the plugin told the sidecar about one SKU, oldest first (the events table), each with the
        time the sidecar's events API accepted its batch (``received_at``, unix seconds, this machine's clock)."""
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db) as c:
            rows = c.execute("SELECT type, cause, received_at, payload FROM events WHERE sku = ? ORDER BY occurred_at",
                             (sku,)).fetchall()
        return [{"type": t, "cause": cause, **json.loads(payload), "received_at": received}
                for t, cause, received, payload in rows]

    def wait_event(self, sku: str, what: str, match: Any, timeout: float = 60) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in reversed(self.events(sku)) if match(e)), None)
        return wait_until(found, timeout=timeout, interval=0.3, what=f"{what} for {sku}")  # type: ignore[no-any-return]

    def kc_sellable(self, sku: str) -> float:
        return self.sim.control.sellable(sku)

    def wait_kc(self, sku: str, value: float, timeout: float = 60) -> None:
        wait_until(lambda: self.kc_sellable(sku) == value, timeout=timeout, interval=0.3,
                   what=f"KeyCRM sellable of {sku} = {value} (now {self.kc_sellable(sku)})")

    def kc_stock_writes(self, sku: str, since: int) -> list[dict[str, Any]]:
        """PUT /offers/stocks rows for ``sku`` since request ``since``."""
        rows = []
        for r in self.sim.control.requests(since, method="PUT", path="/offers/stocks"):
            body = r.get("body") or r.get("json") or {}
            for row in body.get("stocks", []) if isinstance(body, dict) else []:
                if row.get("sku") == sku:
                    rows.append(row)
        return rows


def outbox_count() -> int:
    """Rows waiting in the plugin's outbox on the real shop."""
    return int(rig.wp_eval("global $wpdb; echo (int) $wpdb->get_var('SELECT COUNT(*) FROM ' . $wpdb->prefix . 'kcb_outbox');"))


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.3) -> Any:
    return wait_until(predicate, timeout=timeout, interval=interval, what=what)
