"""The whole bridge over loopback: KeyCRM simulator, gunicorn, worker, and the WooCommerce peer
acting as the shop and its plugin (it POSTs signed event batches to the sidecar)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from keycrm_bridge import signing
from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.woo_peer.testing import WooPeerProcess

from bridge import SECRET, Web, Worker, bridge_env, get_status, wait_until

TOKEN = "webhook-token-0123456789abcdef"


def simple(sku: str, qty: int | None, **kw: Any) -> dict[str, Any]:
    """A simple WooCommerce product for the peer's seed (``qty`` None: stock not managed)."""
    return {"name": f"Product {sku}", "sku": sku, "regular_price": "100.00", "manage_stock": qty is not None,
            "stock_quantity": qty, **kw}


class Processes:
    """The four processes of a bridge test or bench; subclasses say how they start."""

    def __init__(self, sim: SimulatorProcess) -> None:
        self.sim = sim
        self.web: Web | None = None
        self.peer: WooPeerProcess | None = None
        self.worker: Worker | None = None

    def seed_keycrm(self, rows: list[dict[str, Any]]) -> None:
        """Offers (``{"sku", "quantity", …}``) or products with offers (``{"name", "offers": […]}``)."""
        if rows and "offers" in rows[0]:
            self.sim.control.seed(products=rows)
        elif rows:
            self.sim.control.seed(offers=rows)

    def signed(self, method: str, path: str, body: Any = None, *, secret: str = SECRET,
               now: float | None = None) -> requests.Response:
        """A call to the sidecar's API, signed as the plugin signs (``now``: the sidecar's clock)."""
        raw = b"" if body is None else json.dumps(body).encode()
        assert self.web is not None
        headers = signing.signed_headers(secret, method, path, raw, time.time() if now is None else now)
        return requests.request(method, self.web.url + path, data=raw or None, headers=headers, timeout=30)

    def woo_stock(self, sku: str) -> float | None:
        assert self.peer is not None
        p = self.peer.control.product(sku)
        return None if p is None else p["stock_quantity"]

    def stop(self) -> None:
        for p in (self.worker, self.web):
            if p:
                p.stop()
        if self.peer:
            self.peer.stop()
        self.sim.stop()


class Stack(Processes):
    def __init__(self, tmp: Path, mode: str, *, webhook: bool = True, reviewed: bool = True,
                 peer_faults: dict[str, Any] | None = None, **env: str) -> None:
        super().__init__(SimulatorProcess())
        self.tmp, self.mode, self.webhook, self.reviewed = tmp, mode, webhook, reviewed
        self.peer_faults = peer_faults  # set on the peer before the worker starts
        self.extra = env

    def start(self, keycrm: list[dict[str, Any]], woo: list[dict[str, Any]]) -> Stack:
        self.sim.start()
        self.seed_keycrm(keycrm)
        base = bridge_env(self.tmp / "db.sqlite3", self.sim.api_url, SYNC_MODE=self.mode,
                          KEYCRM_WEBHOOK_TOKEN=TOKEN, PUSH_DEBOUNCE_S="0.1", PUSH_MAX_WAIT_S="0.5",
                          ORDER_POLL_INTERVAL_S="2", SWEEP_PAGE_INTERVAL_S="0", LOG_LEVEL="INFO")
        base.update(self.extra)
        self.web = Web(base, self.tmp / "web.log").start()
        self.peer = WooPeerProcess(sidecar_url=self.web.url, secret=SECRET).start()
        self.peer.control.seed(products=woo)
        if self.peer_faults:
            self.peer.control.set_faults(**self.peer_faults)
        if self.webhook:
            self.sim.control.configure_webhook(url=f"{self.web.url}/v1/keycrm/webhook/{TOKEN}")
        self.env = {**base, "WOO_URL": self.peer.url, "WOO_CONSUMER_KEY": "ck_test", "WOO_CONSUMER_SECRET": "cs_test"}
        self.worker = Worker(self.env, self.tmp / "worker.log", reviewed=self.reviewed).start()
        return self

    # -- observations ------------------------------------------------------------------------

    def kc_sellable(self, sku: str) -> float:
        return self.sim.control.sellable(sku)

    def status(self) -> dict[str, Any]:
        return get_status(self.web.url)  # type: ignore[union-attr]

    def settle(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until nothing is left to do anywhere: every hook and webhook delivered, the sidecar's queues
        (plugin batches, changes, KeyCRM webhooks) empty and no SKU waiting for a decision.

        Each hand-over raises the next count before it lowers its own (the peer's outbox until the sidecar
        stored the batch, a claimed change until its SKU is marked dirty, a dirty SKU until its writes are
        answered, and a write's hook or webhook is queued before the write is answered), so one look at
        which all of them are zero means the bridge is at rest.
        """
        def idle() -> dict[str, Any] | None:
            ev = self.peer.control.events()  # type: ignore[union-attr]
            hooks = self.sim.control.webhook_status()["pending"]
            st = self.status()
            if ev["pending"] == 0 and hooks == 0 and st["queue_depth"] == 0 and st["dirty_skus"] == 0:
                return st
            return None
        return wait_until(idle, timeout=timeout, what="bridge idle")

    def woo_writes(self, since: int = 0) -> list[dict[str, Any]]:
        """Stock writes the bridge made to WooCommerce (marked REST writes)."""
        return [e for e in self.peer.control.log(since)  # type: ignore[union-attr]
                if e.get("marked") and e["method"] in ("PUT", "POST")]

    def keycrm_stock_writes(self, since: int = 0) -> list[dict[str, Any]]:
        return [r for r in self.sim.control.requests(since, method="PUT", path="/offers/stocks")]
