"""Pull benchmark: how soon a KeyCRM change shows in WooCommerce, and what each pull path spends.

    python bench/pull.py [--quick] [--skus N] [latency flags, see bench/_procs.py]

`keycrm` mode, the defaults of docs/configuration.md (order poll every 10 s, the sweep paced by the
budget left), WOO_URL set against the WooCommerce peer, both latency models on.
(a) webhook → WooCommerce on the real clock, 10,000 SKUs; and with 100,000 SKUs in the first minute
    after the worker starts (while it builds its first SKU map).
(b) idle, (c) one sweep pass, (d) orders: on an accelerated clock shared by the simulator, the peer and
    the bridge (their latencies are in that clock's seconds too; the bridge's own CPU is not sped up, which
    can only make the figures worse). Reported in simulated seconds.
    sweep_ratio: the sweep period ÷ ⌈N/50⌉ pages at the reads left free (the bridge's share of 60 a
    minute, less the write reserve, in which the order poll's GET /order every 10 s runs).
    At 60 KeyCRM orders a minute: order → WooCommerce latency, order rows read per order change, and
    sweep pages a minute against idle (sweep_keep_60_orders).
The last line is one JSON object (targets: webhook p95 ≤ 2 s both, order p95 ≤ 15 s, ≤ 1.2 order reads
per change, sweep_ratio ≤ 1.25, sweep_keep_60_orders ≥ 0.8, idle_budget_share ≤ the bridge's share).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from keycrm_bridge.budget import default_write_reserve
from keycrm_bridge.clock import AcceleratedClock
from keycrm_bridge.config import Settings
from keycrm_bridge.pacing import bridge_reads_per_minute
from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.woo_peer.testing import WooPeerProcess

from _procs import SECRET, Latency, Processes, Web, Worker, add_latency_flags, bridge_env, latency_of, p95, wait_until

TOKEN = "bench-webhook-token-0123456789"
DEFAULTS = Settings(shared_secret="x" * 16, keycrm_api_key="x")


class Stack(Processes):
    def __init__(self, tmp: Path, n: int, lat: Latency, clock_spec: str | None, **env: str) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(SimulatorProcess(clock=clock_spec, rate=60, latency=lat.keycrm).start())
        self.sim.control.seed(count=n, quantity=10)
        e = bridge_env(tmp / "db.sqlite3", self.sim.api_url, SYNC_MODE="keycrm", KEYCRM_WEBHOOK_TOKEN=TOKEN,
                       LOG_LEVEL="WARNING", **env)
        if clock_spec:
            e["KEYCRM_BRIDGE_CLOCK"] = clock_spec
        self.web = Web(e, tmp / "web.log").start()
        extra = (["--clock", clock_spec] if clock_spec else []) + lat.peer_args() + ["--log-cap", "1000"]
        self.peer = WooPeerProcess(sidecar_url=self.web.url, secret=SECRET, extra_args=extra).start()
        self.peer.control.seed(simple=n, stock=10)
        e.update(WOO_URL=self.peer.url, WOO_CONSUMER_KEY="ck_test", WOO_CONSUMER_SECRET="cs_test")
        self.env = e
        self.worker = Worker(e, tmp / "worker.log").start()

    def woo(self, sku: str) -> float:
        stock = self.woo_stock(sku)
        assert stock is not None, sku
        return stock


def webhook_latency(tmp: Path, n: int, lat: Latency, samples: int, within_s: float | None = None) -> list[float]:
    """Real clock. The sweep is off so only the webhook can carry the change. Steady state (the
    worker's first round done, one sample unrecorded) unless ``within_s``: then from the worker's start."""
    t_start = time.monotonic()
    s = Stack(tmp, n, lat, None, SWEEP_PAGE_INTERVAL_S="0")
    started = time.monotonic()
    try:
        s.sim.control.configure_webhook(url=f"{s.web.url}/v1/keycrm/webhook/{TOKEN}")
        rng = random.Random(4)
        out = []
        if within_s is None:
            wait_until(lambda: s.signed("GET", "/v1/status").json().get("orders_checked_at"), timeout=120,
                       what="the worker's first round")
            samples += 1
        for i in range(samples):
            if within_s is not None and time.monotonic() - started > within_s:
                break
            sku = f"SKU-{rng.randrange(1, n + 1):06d}"
            want = s.woo(sku) + 1 + i
            t0 = time.monotonic()
            s.sim.control.receive(sku, 1 + i)
            wait_until(lambda k=sku, w=want: s.woo(k) == w, timeout=120, interval=0.01, what="webhook sample")
            out.append(time.monotonic() - t0)
        if within_s is None:
            out = out[1:]  # the warm-up sample
        print(f"  {n} SKUs (stack up in {started - t_start:.0f} s): {len(out)} samples, p95 {p95(out)} s", flush=True)
        return out
    finally:
        s.stop()


def status(s: Stack, clock: AcceleratedClock) -> dict[str, Any]:
    r = s.signed("GET", "/v1/status", now=clock.now())  # the sidecar checks signatures on its clock
    r.raise_for_status()
    return dict(r.json())


def sweep_pages(reqs: list[dict[str, Any]]) -> int:
    # The sweep lists pages; reads for given SKUs filter by SKU.
    return sum(1 for q in reqs if q["path"] == "/offers/stocks" and "filter[offers_sku]" not in q["query"]
               and q["method"] == "GET")


def accelerated(tmp: Path, n: int, lat: Latency, factor: float, orders_per_min: int, order_window_s: float
                ) -> dict[str, Any]:
    origin = time.time()
    spec = f"accelerated:{factor}:{origin}"
    clock = AcceleratedClock(factor, origin)
    s = Stack(tmp, n, lat, spec)
    out: dict[str, Any] = {}
    try:
        # One full pass, from the worker's first page, while nothing changes: the idle cost.
        wait_until(lambda: status(s, clock).get("sweep"), timeout=900, interval=0.05, what="a full sweep")
        mark, t_idle = s.sim.control.last_seq(), clock.now()
        wait_until(lambda: (status(s, clock).get("sweep") or {}).get("at", 0) > t_idle, timeout=900,
                   interval=0.05, what="a second full sweep")
        sweep = status(s, clock)["sweep"]
        idle_s = clock.now() - t_idle
        reqs = s.sim.control.requests(mark, bodies=False)
        out["sweep_s"] = round(sweep["duration_s"], 1)
        out["idle_requests_per_min"] = round(len(reqs) * 60 / idle_s, 1)
        out["sweep_pages_per_min_idle"] = round(sweep_pages(reqs) * 60 / idle_s, 1)
        print(f"(b) idle: {len(reqs)} KeyCRM requests in {idle_s:.0f} simulated s → "
              f"{out['idle_requests_per_min']} a minute", flush=True)
        print(f"(c) one sweep pass over {n} SKUs ({sweep['pages']} pages): {out['sweep_s']} simulated s, "
              f"{out['sweep_pages_per_min_idle']} pages a minute", flush=True)
        # (d) orders in KeyCRM (no webhook) at orders_per_min, each reserving one unit of a random SKU.
        rng = random.Random(9)
        mark, t0 = s.sim.control.last_seq(), clock.now()
        gap = 60.0 / orders_per_min
        pending: list[tuple[str, float, float]] = []
        lat_s: list[float] = []
        expected: dict[str, float] = {}
        made = 0
        while clock.now() - t0 < order_window_s:
            due = t0 + made * gap
            if clock.now() >= due:
                sku = f"SKU-{rng.randrange(1, n + 1):06d}"
                before = expected.get(sku, s.woo(sku))
                s.sim.control.create_order({sku: 1}, source_uuid=f"bench-{made}")
                expected[sku] = before - 1
                pending.append((sku, expected[sku], due))
                made += 1
            pending = _landed(s, clock, pending, lat_s)
            time.sleep(0.02)
        window = clock.now() - t0
        reqs = s.sim.control.requests(mark, bodies=False)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            pending = _landed(s, clock, pending, lat_s)
            time.sleep(0.01)
        assert not pending, f"{len(pending)} orders never reached WooCommerce"
        out["order_p95_s"] = p95(lat_s)
        out["orders"] = made
        out["order_reads_per_order_change"] = round(_orders_read(s) / max(1, made), 3)
        stock_reads = sum(1 for q in reqs if q["path"] == "/offers/stocks" and "filter[offers_sku]" in q["query"])
        out["sweep_pages_per_min_60_orders"] = round(sweep_pages(reqs) * 60 / window, 1)
        out["requests_per_min_60_orders"] = round(len(reqs) * 60 / window, 1)
        print(f"(d) {made} KeyCRM orders at {orders_per_min} a minute over {window:.0f} simulated s: order → "
              f"WooCommerce p95 {out['order_p95_s']} s; {out['order_reads_per_order_change']} order rows read per "
              f"order change, {stock_reads} stock reads; sweep {out['sweep_pages_per_min_60_orders']} pages a "
              f"minute (idle {out['sweep_pages_per_min_idle']}); {out['requests_per_min_60_orders']} requests a "
              "minute", flush=True)
    finally:
        s.stop()
    return out


def _landed(s: Stack, clock: AcceleratedClock, pending: list[tuple[str, float, float]],
            lat_s: list[float]) -> list[tuple[str, float, float]]:
    """Record the orders whose reserve shows in WooCommerce; return those still waiting."""
    still = []
    for sku, want, at in pending:
        if s.woo(sku) <= want:
            lat_s.append(clock.now() - at)
        else:
            still.append((sku, want, at))
    return still


def _orders_read(s: Stack) -> int:
    import sqlite3

    db = sqlite3.connect(s.env["DATABASE_PATH"])
    row = db.execute("SELECT value FROM meta WHERE key = 'orders_read'").fetchone()
    db.close()
    return int(json.loads(row[0])) if row else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish in under a minute (a smaller catalogue)")
    ap.add_argument("--skus", type=int, default=None)
    add_latency_flags(ap)
    args = ap.parse_args()
    lat = latency_of(args)
    q = args.quick
    n = args.skus or (1_000 if q else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    out: dict[str, Any] = {"skus": n, "quick": q}
    print("(a) webhook → WooCommerce, real clock", flush=True)
    out["webhook_p95_s"] = p95(webhook_latency(tmp / "a", n, lat, 8 if q else 40))
    if not q:
        out["webhook_p95_s_100k_start"] = p95(webhook_latency(tmp / "a100k", 100_000, lat, 60, within_s=60.0))
    # Slow enough that the bridge's own CPU (not sped up) stays small beside a simulated second.
    factor = 6.0 if q else 4.0
    out |= accelerated(tmp / "b", n, lat, factor, orders_per_min=60, order_window_s=60.0 if q else 300.0)
    out["clock_factor"] = factor
    per_minute = DEFAULTS.rate_per_minute
    reserve = default_write_reserve(per_minute)
    share = DEFAULTS.budget_share_others
    # The order poll counts as a write and sits in the write reserve: every read of the share is free.
    free = bridge_reads_per_minute(per_minute, reserve, share)
    ideal_s = math.ceil(n / 50) / free * 60
    out["sweep_ratio"] = round(out["sweep_s"] / ideal_s, 3)
    out["sweep_keep_60_orders"] = round(out["sweep_pages_per_min_60_orders"] / out["sweep_pages_per_min_idle"], 3)
    out["idle_budget_share"] = round(out["idle_requests_per_min"] / per_minute, 3)
    out["configured_share"] = round(1 - share, 3)
    print(f"sweep: {out['sweep_s']} s against {ideal_s:.0f} s ({math.ceil(n / 50)} pages at {free:.0f} free reads a "
          f"minute) → ratio {out['sweep_ratio']}; idle share {out['idle_budget_share']} of the budget "
          f"(the bridge may use {out['configured_share']})", flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
