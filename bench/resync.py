"""Full resync benchmark: requests and time for 10,000 SKUs beside the theoretical minimum, and peak
RSS of the worker at 100,000 SKUs.

    python bench/resync.py [--quick] [--mode keycrm|woocommerce]

Both runs go over real HTTP: the KeyCRM simulator (60 requests a minute, its own rate limiter), the
WooCommerce peer, gunicorn and the worker. Simulator, peer and bridge share one accelerated clock
(KEYCRM_BRIDGE_CLOCK=accelerated:F:ORIGIN, the simulator's and the peer's --clock), so minutes of
KeyCRM budget pass in seconds; times below are in that clock's seconds.

Theoretical minimum at the same budget, for N SKUs and D drifted:
  requests: ⌈offers/50⌉ stock reads + ⌈offers/50⌉ offer reads + ⌈N/100⌉ WooCommerce reads
            + the writes the drift needs (keycrm mode: ⌈D/100⌉ WooCommerce batches; woocommerce mode:
            ⌈D/10000⌉ PUT /offers/stocks)
  time:     KeyCRM allows 60 calls in any 60 s (a sliding window, as the simulator and the bridge's budget
            count): the first 60 go at once, calls 61-120 when the first ones are 60 s old, and so on,
            so the last of R calls starts at 60 * ⌊(R-1)/60⌋ s; WooCommerce calls are not rate limited
            and count 0 s. Measured: from the job's creation to its end (reads, plan, writes, ledger).
The last line is one JSON object: request_ratio, time_ratio, peak_rss_mb_100k (targets ≤ 1.05, ≤ 1.1, ≤ 150).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from keycrm_bridge.clock import AcceleratedClock
from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.woo_peer.testing import WooPeerProcess

from _procs import SECRET, Processes, Web, Worker, bridge_env, wait_until

PER_MINUTE = 60


class Bench(Processes):
    def __init__(self, tmp: Path, n: int, drift: int, factor: float, mode: str, rate: int = PER_MINUTE) -> None:
        self.tmp, self.n, self.drift, self.mode, self.rate = tmp, n, drift, mode, rate
        tmp.mkdir(parents=True, exist_ok=True)
        origin = time.time()
        self.spec = f"accelerated:{factor}:{origin}"
        self.clock = AcceleratedClock(factor, origin)
        super().__init__(SimulatorProcess(rate=rate, clock=self.spec))

    def start(self) -> Bench:
        t0 = time.monotonic()
        self.sim.start()
        self.sim.control.seed(self.n, quantity=10)
        self.peer = WooPeerProcess(extra_args=["--clock", self.spec, "--log-cap", "50000"]).start()
        self.peer.control.seed(simple=self.n, stock=10)
        # The drift: KeyCRM received 3 more of every (N/D)-th SKU, which the bridge has not seen.
        step = self.n // self.drift if self.drift else 1
        self.drifted = [f"SKU-{i:06d}" for i in range(1, self.n + 1, step)][: self.drift]
        for k in range(0, len(self.drifted), 5000):
            self.sim.control.adjust([{"sku": s, "delta": 3} for s in self.drifted[k:k + 5000]])
        env = bridge_env(self.tmp / "db.sqlite3", self.sim.api_url, SYNC_MODE=self.mode, BRIDGE_SHARED_SECRET=SECRET,
                         KEYCRM_BRIDGE_CLOCK=self.spec, KEYCRM_RATE_PER_MINUTE=str(self.rate),
                         SWEEP_PAGE_INTERVAL_S="0", ORDER_POLL_INTERVAL_S="3600", WOO_SKUMAP_REFRESH_S="0",
                         WOO_URL=self.peer.url, WOO_CONSUMER_KEY="ck_test", WOO_CONSUMER_SECRET="cs_test",
                         LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
        self.web = Web(env, self.tmp / "web.log").start()
        self.worker = Worker(env, self.tmp / "worker.log").start()
        print(f"  {self.n} SKUs seeded and the bridge started in {time.monotonic() - t0:.1f} s", flush=True)
        return self

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = self.signed(method, path, body, now=self.clock.now())  # the sidecar's accelerated clock
        r.raise_for_status()
        return r.json()

    def run(self, dry_run: bool) -> dict[str, Any]:
        # The worker is up (its first order check is done), and the budget window is empty, as the
        # theoretical minimum assumes.
        wait_until(lambda: self.call("GET", "/v1/status")["orders_checked_at"], timeout=60, interval=0.05,
                   what="the worker's first round")
        wait_until(lambda: self.call("GET", "/v1/status")["budget"]["used_last_minute"] == 0, timeout=120,
                   interval=0.05, what="an empty KeyCRM window")
        assert self.peer is not None
        sim_mark, woo_mark = self.sim.control.last_seq(), self.peer.control.log_position()
        t0 = time.monotonic()
        job = self.call("POST", "/v1/resync", {"dry_run": dry_run})["id"]
        st = wait_until(lambda: (lambda j: j if j["phase"] in ("done", "failed") else None)(
            self.call("GET", f"/v1/resync/{job}")), timeout=900, interval=0.05, what="the resync")
        wall = time.monotonic() - t0
        assert st["phase"] == "done", st
        kc = self.sim.control.requests(sim_mark, bodies=False)
        woo = [e for e in self.peer.control.log(woo_mark) if e["method"] in ("GET", "POST", "PUT")]
        return {"status": st, "kc": kc, "woo": woo, "clock_s": st["finished_at"] - st["created_at"], "wall_s": wall}

    def rss_mb(self) -> float:
        assert self.worker is not None and self.worker.proc is not None
        for line in Path(f"/proc/{self.worker.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def theoretical(offers: int, n: int, drift: int, mode: str) -> tuple[int, int, float]:
    kc_reads = 2 * math.ceil(offers / 50)
    woo_reads = math.ceil(n / 100)
    kc_writes = math.ceil(drift / 10000) if mode == "woocommerce" else 0
    woo_writes = math.ceil(drift / 100) if mode == "keycrm" else 0
    kc = kc_reads + kc_writes
    # Call k (from 1) may start once call k - 60 is 60 s old: the last of R starts at 60 * ⌊(R-1)/60⌋.
    return kc, woo_reads + woo_writes, 60.0 * ((kc - 1) // PER_MINUTE)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish in under a minute")
    ap.add_argument("--mode", default="keycrm", choices=["keycrm", "woocommerce"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-resync-"))
    n, drift = 10_000, 500
    factor = 30.0 if args.quick else 10.0
    print(f"1. {n} SKUs, {drift} drifted, mode {args.mode}, KeyCRM {PER_MINUTE}/min, clock ×{factor:g}", flush=True)
    b = Bench(tmp / "10k", n, drift, factor, args.mode)
    try:
        b.start()
        dry = None if args.quick else b.run(dry_run=True)
        res = b.run(dry_run=False)
        action = "update_woocommerce" if args.mode == "keycrm" else "update_keycrm"
        assert res["status"]["counts"]["actions"][action] == drift, res["status"]["counts"]
    finally:
        b.stop()
    min_kc, min_woo, min_t = theoretical(n, n, drift, args.mode)
    kc_n, woo_n = len(res["kc"]), len(res["woo"])
    limited = sum(1 for r in res["kc"] if r["status"] == 429)
    print(f"  apply: KeyCRM {kc_n} requests ({limited} answered 429), WooCommerce {woo_n}; "
          f"minimum {min_kc} + {min_woo}")
    print(f"  apply: {res['clock_s']:.0f} s of KeyCRM-budget time (wall {res['wall_s']:.1f} s); "
          f"minimum {min_t:.0f} s (the last of {min_kc} calls, {PER_MINUTE} in any 60 s)")
    if dry:
        print(f"  dry run: KeyCRM {len(dry['kc'])}, WooCommerce {len(dry['woo'])} requests, {dry['clock_s']:.0f} s")
    request_ratio = (kc_n + woo_n) / (min_kc + min_woo)
    time_ratio = res["clock_s"] / min_t

    big = 100_000
    print(f"2. {big} SKUs, dry run, peak RSS of the worker", flush=True)
    b = Bench(tmp / "100k", big, 1000, 200.0, args.mode, rate=6000)
    try:
        b.start()
        r = b.run(dry_run=True)
        rss = b.rss_mb()
        assert r["status"]["counts"]["skus"] == big, r["status"]["counts"]
    finally:
        b.stop()
    print(f"  {len(r['kc'])} KeyCRM + {len(r['woo'])} WooCommerce requests in {r['wall_s']:.1f} s wall; "
          f"worker peak RSS {rss:.1f} MB")
    print(json.dumps({"request_ratio": round(request_ratio, 3), "time_ratio": round(time_ratio, 3),
                      "peak_rss_mb_100k": round(rss, 1), "requests": kc_n + woo_n,
                      "requests_min": min_kc + min_woo, "time_s": round(res["clock_s"], 1),
                      "time_min_s": round(min_t, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
