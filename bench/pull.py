"""Pull benchmark: how soon a KeyCRM change shows in WooCommerce, and what an idle bridge spends.

    python bench/pull.py [--quick]

10,000 SKUs on both sides, KeyCRM at 60 requests a minute, `keycrm` mode with the default intervals.
(a) webhook latency is measured on the real clock (it is CPU and network, not waiting);
(b) order-driven latency, (c) a full sweep and the idle request rate are measured on an accelerated
clock shared by the simulator, the WooCommerce peer and the bridge, and reported in simulated seconds.
The last line is one JSON object: webhook_p95_s, order_p95_s, sweep_s, idle_requests_per_hour, skus.
Targets at 10,000 SKUs: webhook p95 ≤ 2 s, order-driven p95 ≤ 60 s, idle ≤ 50% of the budget (1,800/h).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from keycrm_bridge.clock import AcceleratedClock
from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.woo_peer.testing import WooPeerProcess

from _procs import SECRET, Processes, Web, Worker, bridge_env, wait_until

TOKEN = "bench-webhook-token-0123456789"


class Stack(Processes):
    def __init__(self, tmp: Path, n: int, clock_spec: str | None, **env: str) -> None:
        super().__init__(SimulatorProcess(clock=clock_spec, rate=60).start())
        self.sim.control.seed(count=n, quantity=10)
        e = bridge_env(tmp / "db.sqlite3", self.sim.api_url, SYNC_MODE="keycrm", KEYCRM_WEBHOOK_TOKEN=TOKEN,
                       LOG_LEVEL="WARNING", **env)
        if clock_spec:
            e["KEYCRM_BRIDGE_CLOCK"] = clock_spec
        self.web = Web(e, tmp / "web.log").start()
        extra = ["--clock", clock_spec] if clock_spec else []
        self.peer = WooPeerProcess(sidecar_url=self.web.url, secret=SECRET, extra_args=extra).start()
        self.peer.control.seed(simple=n, stock=10)
        e.update(WOO_URL=self.peer.url, WOO_CONSUMER_KEY="ck_test", WOO_CONSUMER_SECRET="cs_test")
        self.worker = Worker(e, tmp / "worker.log").start()

    def woo(self, sku: str) -> float:
        stock = self.woo_stock(sku)
        assert stock is not None, sku
        return stock


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return round(xs[max(0, int(len(xs) * 0.95 + 0.5) - 1)], 3)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish in under a minute")
    ap.add_argument("--skus", type=int, default=10_000)
    args = ap.parse_args()
    n = args.skus
    samples = 10 if args.quick else 40
    factor = 40.0 if args.quick else 20.0
    rng = random.Random(4)
    skus = [f"SKU-{i:06d}" for i in range(1, n + 1)]
    out: dict[str, float] = {"skus": n}

    # (a) webhook, real clock. The sweep is off so only the webhook can carry the change.
    s = Stack(Path(tempfile.mkdtemp(prefix="bench-pull-a-")), n, None, SWEEP_PAGE_INTERVAL_S="0",
              ORDER_POLL_INTERVAL_S="3600")
    try:
        s.sim.control.configure_webhook(url=f"{s.web.url}/v1/keycrm/webhook/{TOKEN}")
        lat = []
        for i in range(samples):
            sku = rng.choice(skus)
            want = s.woo(sku) + 1 + i
            t0 = time.monotonic()
            s.sim.control.receive(sku, 1 + i)
            wait_until(lambda k=sku, w=want: s.woo(k) == w, timeout=30, interval=0.01, what="webhook sample")
            lat.append(time.monotonic() - t0)
        out["webhook_p95_s"] = p95(lat)
        print(f"(a) webhook → WooCommerce, {samples} samples: p50 {sorted(lat)[len(lat) // 2]:.3f} s, p95 {out['webhook_p95_s']} s")
    finally:
        s.stop()

    # (b), (c) and idle on an accelerated clock, the default intervals (orders 10 s, sweep page 3 s).
    origin = time.time()
    spec = f"accelerated:{factor}:{origin}"
    clock = AcceleratedClock(factor, origin)
    s = Stack(Path(tempfile.mkdtemp(prefix="bench-pull-b-")), n, spec)
    try:
        mark, t_idle = s.sim.control.last_seq(), clock.now()
        # One full sweep pass while nothing changes: the idle cost, and (c)'s worst case.
        wait_until(lambda: _sweep_done(s, clock), timeout=300, interval=0.05, what="a full sweep")
        idle_s = clock.now() - t_idle
        reqs = len(s.sim.control.requests(mark, bodies=False))
        out["idle_requests_per_hour"] = round(reqs * 3600 / idle_s)
        sweep = _sweep_done(s, clock)
        out["sweep_s"] = round(sweep["duration_s"], 1)
        print(f"idle: {reqs} KeyCRM requests in {idle_s:.0f} simulated s → {out['idle_requests_per_hour']}/h "
              f"({out['idle_requests_per_hour'] / 36:.0f}% of 60/min)")
        print(f"(c) sweep only: a full pass over {n} SKUs ({sweep['pages']} pages) takes {out['sweep_s']} simulated s; "
              "a change waits at most that long")
        # (b) orders: KeyCRM reserves for an order (no webhook); the order poll finds it.
        lat = []
        for i in range(samples):
            sku = rng.choice(skus)
            want = s.woo(sku) - 1
            t0 = clock.now()
            s.sim.control.create_order({sku: 1}, source_uuid=f"bench-{i}")
            wait_until(lambda k=sku, w=want: s.woo(k) == w, timeout=120, interval=0.01, what="order sample")
            lat.append(clock.now() - t0)
        out["order_p95_s"] = p95(lat)
        print(f"(b) KeyCRM order → WooCommerce, {samples} samples: p95 {out['order_p95_s']} simulated s "
              "(poll every 10 s, then one stock read)")
    finally:
        s.stop()
    keys = ["webhook_p95_s", "order_p95_s", "sweep_s", "idle_requests_per_hour", "skus"]
    print(json.dumps({k: out[k] for k in keys}))
    return 0


def _sweep_done(s: Stack, clock: AcceleratedClock) -> dict | None:
    # The sidecar checks signatures against its (accelerated) clock.
    r = s.signed("GET", "/v1/status", now=clock.now())
    r.raise_for_status()
    return r.json().get("sweep")


if __name__ == "__main__":
    sys.exit(main())
