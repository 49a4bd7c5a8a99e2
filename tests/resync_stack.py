"""The bridge for resync tests: simulator, WooCommerce peer, gunicorn and worker over loopback, plus
the S12 catalogue (2,000 SKUs: 300 drifted, 20 on one side only, 5 duplicated) and signed API calls."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import requests

from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.woo_client import STOCK_ROUTE
from keycrm_bridge.woo_peer.testing import WooPeerProcess

from bridge import SECRET, Web, Worker, bridge_env, wait_until
from stack import Processes, simple

__all__ = ["ResyncStack", "S12Catalogue", "simple"]


class S12Catalogue:
    """2,000 distinct SKUs. Matched ones hold 5..14 on hand in KeyCRM, every 7th with 1 reserved."""

    def __init__(self, total: int = 2000, drifted: int = 300) -> None:
        self.woo_only = [f"W-{i:02d}" for i in range(1, 11)]
        self.kc_only = [f"K-{i:02d}" for i in range(1, 11)]
        self.dup_woo = ["D-1", "D-2", "D-3"]
        self.dup_kc = ["D-4", "D-5"]
        n_matched = total - len(self.woo_only) - len(self.kc_only) - len(self.dup_woo) - len(self.dup_kc)
        self.matched = [f"S-{i:04d}" for i in range(1, n_matched + 1)]
        self.quantity = {s: 5 + i % 10 for i, s in enumerate(self.matched)}
        self.reserve = {s: 1 if i % 7 == 0 else 0 for i, s in enumerate(self.matched)}
        self.sellable = {s: self.quantity[s] - self.reserve[s] for s in self.matched}
        step = len(self.matched) // drifted
        self.drifted = [self.matched[i * step] for i in range(drifted)]
        drift = set(self.drifted)
        self.woo_stock = {s: self.sellable[s] + (3 if s in drift else 0) for s in self.matched}

    @property
    def duplicated(self) -> list[str]:
        return self.dup_woo + self.dup_kc

    def keycrm_offers(self) -> list[dict[str, Any]]:
        rows = [{"sku": s, "quantity": self.quantity[s], "reserve": self.reserve[s]} for s in self.matched]
        rows += [{"sku": s, "quantity": 4} for s in self.kc_only + self.dup_woo]
        rows += [{"sku": s, "quantity": 6} for s in self.dup_kc for _ in range(2)]
        return rows

    def woo_products(self) -> list[dict[str, Any]]:
        rows = [simple(s, self.woo_stock[s]) for s in self.matched]
        rows += [simple(s, 7) for s in self.woo_only + self.dup_kc]
        rows += [simple(s, 6) for s in self.dup_woo for _ in range(2)]
        return rows


class ResyncStack(Processes):
    """``plugin=False``: the shop has no plugin yet (no events), which is how a first resync finds it."""

    def __init__(self, tmp: Path, mode: str = "keycrm", *, plugin: bool = False, rate: int = 6000,
                 reviewed: bool = True, **env: str) -> None:
        super().__init__(SimulatorProcess(rate=rate))
        self.tmp, self.mode, self.plugin, self.rate, self.reviewed = tmp, mode, plugin, rate, reviewed
        self.extra = env
        self.env: dict[str, str] = {}
        self.secret = env.get("BRIDGE_SHARED_SECRET", SECRET)

    def start(self, keycrm: list[dict[str, Any]], woo: list[dict[str, Any]], worker: bool = True) -> ResyncStack:
        self.sim.start()
        self.seed_keycrm(keycrm)
        base = bridge_env(self.tmp / "db.sqlite3", self.sim.api_url, SYNC_MODE=self.mode,
                          KEYCRM_RATE_PER_MINUTE=str(self.rate), SWEEP_PAGE_INTERVAL_S="0",
                          ORDER_POLL_INTERVAL_S="3600", KEYCRM_TIMEOUT_S="3", WOO_SKUMAP_REFRESH_S="0",
                          PUSH_DEBOUNCE_S="0.1", PUSH_MAX_WAIT_S="0.5", LOG_LEVEL="INFO")
        base.update(self.extra)
        self.web = Web(base, self.tmp / "web.log").start()
        self.peer = WooPeerProcess(sidecar_url=self.web.url if self.plugin else None, secret=self.secret).start()
        self.peer.control.seed(products=woo, allow_duplicate_skus=True)
        self.env = {**base, "WOO_URL": self.peer.url, "WOO_CONSUMER_KEY": "ck_test", "WOO_CONSUMER_SECRET": "cs_test"}
        if worker:
            self.start_worker()
        return self

    def start_worker(self) -> Worker:
        self.worker = Worker(self.env, self.tmp / "worker.log", reviewed=self.reviewed).start()
        return self.worker

    # -- the sidecar's API, signed like the plugin signs -----------------------------------------

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.signed(method, path, body, secret=self.secret)

    def start_resync(self, dry_run: bool, **flags: Any) -> str:
        r = self.call("POST", "/v1/resync", {"dry_run": dry_run, **flags})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.call("GET", f"/v1/resync/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        st = wait_until(lambda: (lambda j: j if j["phase"] in ("done", "failed") else None)(self.job(job_id)),
                        timeout=timeout, interval=0.1, what=f"resync {job_id}")
        assert st["phase"] == "done", st
        return st

    def plan(self, job_id: str) -> list[dict[str, Any]]:
        r = self.call("GET", f"/v1/resync/{job_id}/plan.json")
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    # -- observations ------------------------------------------------------------------------------


    def woo_stock_writes(self) -> Counter[int]:
        """How often each WooCommerce product id was in a stock write the peer applied (the plugin route's
        items answered "applied", also where the answer was then lost)."""
        assert self.peer is not None
        seen: Counter[int] = Counter()
        for e in self.peer.control.log():
            if e["path"] == STOCK_ROUTE:
                for item, answer in zip((e.get("body") or {}).get("items") or [], e.get("answers") or [], strict=False):
                    if answer.get("status") == "applied" and answer.get("stock_quantity") != item.get("expect"):
                        seen[int(item["product_id"])] += 1
        return seen

    def keycrm_stock_writes(self) -> Counter[str]:
        """How often each SKU was in a PUT /offers/stocks that KeyCRM accepted."""
        seen: Counter[str] = Counter()
        for r in self.sim.control.requests(method="PUT", path="/offers/stocks"):
            if 200 <= r["status"] < 300:
                for row in r["body"]["stocks"]:
                    seen[row["sku"]] += 1
        return seen


def by_sku(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["sku"]: i for i in items}


def with_problem(items: list[dict[str, Any]], problem: str) -> set[str]:
    return {i["sku"] for i in items if problem in i["problems"]}


def with_action(items: list[dict[str, Any]], *actions: str) -> set[str]:
    return {i["sku"] for i in items if i["action"] in actions}
