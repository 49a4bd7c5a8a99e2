"""A bridge in SYNC_MODE=erp over loopback: KeyCRM simulator (2 warehouses), gunicorn, worker,
the WooCommerce peer, and the ERP's double (a 1C client, or the MoySklad simulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keycrm_bridge.erp.doubles.onec_client import OneCClient
from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.woo_peer.testing import WooPeerProcess

from bridge import SECRET, Web, Worker, bridge_env, get_status, wait_until
from stack import Processes, simple

USER, PASSWORD = "1c-exchange", "correct-horse-battery"
WAREHOUSES = {"wh-main": "Основной склад", "wh-shop": "Магазин"}
WAREHOUSE_MAP = "wh-main:1,wh-shop:2"


class ErpStack(Processes):
    def __init__(self, tmp: Path, erp: str = "1c", **env: str) -> None:
        super().__init__(SimulatorProcess(warehouses=(1, 2), rate=6000))
        self.tmp, self.erp, self.extra = tmp, erp, env

    def start(self, keycrm_count: int, woo_skus: list[str], prefix: str = "ERP-", reviewed: bool = True) -> ErpStack:
        try:
            return self._start(keycrm_count, woo_skus, prefix, reviewed)
        except BaseException:
            self.stop()  # a stack that failed to start leaves no process behind
            raise

    def _start(self, keycrm_count: int, woo_skus: list[str], prefix: str, reviewed: bool) -> ErpStack:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.sim.start()
        if keycrm_count:
            self.sim.control.seed(keycrm_count, prefix=prefix, warehouses=[1, 2], quantity={1: 0, 2: 0})
        self.env = bridge_env(self.tmp / "db.sqlite3", self.sim.api_url, SYNC_MODE="erp", ERP=self.erp,
                              KEYCRM_READ_WAREHOUSE_IDS="1,2", KEYCRM_RATE_PER_MINUTE="6000",
                              ERP_WAREHOUSE_MAP=WAREHOUSE_MAP, ERP_1C_USER=USER, ERP_1C_PASSWORD=PASSWORD,
                              ERP_FILE_LIMIT_MB="1", ERP_MAX_UPLOAD_MB="64", PUSH_DEBOUNCE_S="0.1", PUSH_MAX_WAIT_S="0.5",
                              ORDER_POLL_INTERVAL_S="30", SWEEP_PAGE_INTERVAL_S="0", LOG_LEVEL="INFO")
        self.env.update(self.extra)
        self.web = Web(self.env, self.tmp / "web.log").start()
        self.peer = WooPeerProcess(sidecar_url=self.web.url, secret=SECRET).start()
        self.peer.control.seed(products=[simple(s, 0) for s in woo_skus])
        self.env.update(WOO_URL=self.peer.url, WOO_CONSUMER_KEY="ck_test", WOO_CONSUMER_SECRET="cs_test")
        self.worker = Worker(self.env, self.tmp / "worker.log", reviewed=reviewed).start()
        return self

    def restart_web(self, kill_only: bool = False) -> None:
        """Kill gunicorn (-9) and start it again on the same port, as a crash and a supervisor would."""
        old = self.web
        assert old is not None
        old.kill()
        if kill_only:
            return
        new = Web(self.env, self.tmp / "web.log")
        new.port, new.url = old.port, old.url
        new.env = {**new.env, "BIND": f"127.0.0.1:{old.port}"}
        self.web = new.start()

    def onec(self, **kw: Any) -> OneCClient:
        assert self.web is not None
        return OneCClient(self.web.url + "/v1/erp/1c/exchange", USER, PASSWORD, **kw)

    def status(self) -> dict[str, Any]:
        return get_status(self.web.url)  # type: ignore[union-attr]

    def truth(self, skus: list[str]) -> dict[str, dict[int, float]]:
        """sku -> KeyCRM warehouse -> quantity."""
        t = self.sim.control.truth(skus)
        return {s: {int(w): v["quantity"] for w, v in (row or {}).get("warehouses", {}).items()} for s, row in t.items()}

    def stock_puts(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.sim.control.requests(since, method="PUT", path="/offers/stocks"))

    def wait_erp_idle(self, timeout: float = 60.0) -> dict[str, Any]:
        def idle() -> dict[str, Any] | None:
            st = self.status()
            e = st["erp"]
            return st if e["jobs_waiting"] == 0 and e["keycrm_lookups_waiting"] == 0 and st["dirty_skus"] == 0 \
                else None
        return wait_until(idle, timeout=timeout, what="ERP jobs done")
