"""Full resync benchmark: KeyCRM reads and time for 10,000 SKUs against the physical minimum, and peak
RSS of the worker at 100,000 SKUs.

    python bench/resync.py [--quick] [--mode keycrm|woocommerce] [latency flags, see bench/_procs.py]

Everything over real HTTP: the KeyCRM simulator (60 requests a minute, its own limiter, 150 ms an
answer), the WooCommerce peer (its latency model), gunicorn and the worker, with the defaults of
docs/configuration.md (the order poll on, every 10 s), but the sweep off: it would fill the window
before the job starts (the job pauses it). The full mode runs on the real clock: a 10,000-SKU
resync at KeyCRM's limit takes at least three minutes. --quick scales the catalogue down to 5,000 SKUs
and runs the shared clock 4× faster (the latencies are in that clock's seconds), and reports the memory
of that run's worker instead of a 100,000-SKU one; its JSON says so (``quick``, ``peak_rss_mb_5k``).

Physical minimum for N SKUs, D drifted, from the limit and not from this design:
  KeyCRM:      ⌈N/50⌉ stock reads (+ ⌈D/10,000⌉ PUT /offers/stocks in woocommerce mode); 60 may start in
               any 60 s, so the last of R starts at 60·⌊(R−1)/60⌋ s and ends one answer later.
  WooCommerce: ⌈N/100⌉ read pages + ⌈D/100⌉ batches (keycrm mode), at the peer's latency model, one at a time.
  minimum = max(KeyCRM-bound, WooCommerce-bound): the two may overlap completely.
kc_read_ratio = the resync's KeyCRM reads ÷ ⌈N/50⌉ (the order poll's GET /order is counted apart);
time_ratio = the job's time (creation to done) ÷ the minimum.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from keycrm_bridge.clock import AcceleratedClock, Clock, SystemClock
from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.woo_peer.testing import WooPeerProcess

from _procs import SECRET, Latency, Processes, Web, Worker, add_latency_flags, bridge_env, latency_of, wait_until

PER_MINUTE = 60


class Bench(Processes):
    def __init__(self, tmp: Path, n: int, drift: int, factor: float, mode: str, lat: Latency,
                 rate: int = PER_MINUTE) -> None:
        self.tmp, self.n, self.drift, self.mode, self.rate, self.lat = tmp, n, drift, mode, rate, lat
        tmp.mkdir(parents=True, exist_ok=True)
        origin = time.time()
        self.spec = f"accelerated:{factor}:{origin}" if factor != 1 else None
        self.clock: Clock = AcceleratedClock(factor, origin) if factor != 1 else SystemClock()
        super().__init__(SimulatorProcess(rate=rate, clock=self.spec, latency=lat.keycrm))

    def start(self) -> Bench:
        t0 = time.monotonic()
        self.sim.start()
        self.sim.control.seed(self.n, quantity=10)
        clock_args = ["--clock", self.spec] if self.spec else []
        self.peer = WooPeerProcess(secret=SECRET, extra_args=[*clock_args, "--log-cap", "50000", *self.lat.peer_args()]).start()
        self.peer.control.seed(simple=self.n, stock=10)
        # The drift: KeyCRM received 3 more of every (N/D)-th SKU, which the bridge has not seen.
        step = self.n // self.drift if self.drift else 1
        self.drifted = [f"SKU-{i:06d}" for i in range(1, self.n + 1, step)][: self.drift]
        for k in range(0, len(self.drifted), 5000):
            self.sim.control.adjust([{"sku": s, "delta": 3} for s in self.drifted[k:k + 5000]])
        env = bridge_env(self.tmp / "db.sqlite3", self.sim.api_url, SYNC_MODE=self.mode, BRIDGE_SHARED_SECRET=SECRET,
                         KEYCRM_RATE_PER_MINUTE=str(self.rate), WOO_URL=self.peer.url, WOO_CONSUMER_KEY="ck_test",
                         WOO_CONSUMER_SECRET="cs_test", LOG_LEVEL="WARNING",
                         # The sweep would fill the window before the job starts (the job pauses it):
                         # off, so the job starts on the budget the minimum assumes. The order poll stays on.
                         SWEEP_PAGE_INTERVAL_S="0")
        if self.spec:
            env["KEYCRM_BRIDGE_CLOCK"] = self.spec
        self.web = Web(env, self.tmp / "web.log").start()
        self.worker = Worker(env, self.tmp / "worker.log").start()
        print(f"  {self.n} SKUs seeded and the bridge started in {time.monotonic() - t0:.1f} s", flush=True)
        return self

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = self.signed(method, path, body, now=self.clock.now())  # the sidecar's clock
        r.raise_for_status()
        return r.json()

    def run(self, dry_run: bool) -> dict[str, Any]:
        # The worker is up (its first order check is done) and the budget window holds only order polls.
        wait_until(lambda: self.call("GET", "/v1/status")["orders_checked_at"], timeout=120, interval=0.05,
                   what="the worker's first round")
        wait_until(self._skumap_built, timeout=300, interval=0.2, what="the worker's first SKU map")
        wait_until(lambda: self.call("GET", "/v1/status")["budget"]["used_last_minute"] <= 6, timeout=180,
                   interval=0.05, what="a KeyCRM window holding only the order polls")
        assert self.peer is not None
        sim_mark, woo_mark = self.sim.control.last_seq(), self.peer.control.log_position()
        job = self.call("POST", "/v1/resync", {"dry_run": dry_run})["id"]
        st = wait_until(lambda: (lambda j: j if j["phase"] in ("done", "failed") else None)(
            self.call("GET", f"/v1/resync/{job}")), timeout=1800, interval=0.05, what="the resync")
        assert st["phase"] == "done", st
        kc = self.sim.control.requests(sim_mark, bodies=False)
        woo = [e for e in self.peer.control.log(woo_mark) if e["method"] in ("GET", "POST", "PUT")]
        return {"status": st, "kc": kc, "woo": woo, "time_s": st["finished_at"] - st["created_at"]}

    def _skumap_built(self) -> bool:
        import sqlite3

        db = sqlite3.connect(self.tmp / "db.sqlite3", timeout=30)
        try:
            return bool(db.execute("SELECT 1 FROM sqlite_master WHERE name = 'woo_skumap_state'").fetchone()
                        and db.execute("SELECT 1 FROM woo_skumap_state").fetchone())
        finally:
            db.close()

    def rss_mb(self) -> float:
        assert self.worker is not None and self.worker.proc is not None
        for line in Path(f"/proc/{self.worker.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def minimum(n: int, drift: int, mode: str, lat: Latency) -> tuple[int, float, float]:
    """(KeyCRM requests, KeyCRM-bound s, WooCommerce-bound s) at the physical limit."""
    kc = math.ceil(n / 50) + (math.ceil(drift / 10000) if mode == "woocommerce" else 0)
    kc_s = PER_MINUTE * ((kc - 1) // PER_MINUTE) + lat.keycrm
    batches = math.ceil(drift / 100) if mode == "keycrm" else 0
    woo_s = math.ceil(n / 100) * lat.woo_read + batches * (lat.woo_write + 100 * lat.woo_item)
    return kc, kc_s, woo_s


def resync_reads(kc: list[dict[str, Any]]) -> int:
    return sum(1 for r in kc if r["method"] == "GET" and r["path"] in ("/offers/stocks", "/offers")
               and "filter[offers_sku]" not in r["query"] and "filter[sku]" not in r["query"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="under a minute: 5,000 SKUs on a 4× clock")
    ap.add_argument("--mode", default="keycrm", choices=["keycrm", "woocommerce"])
    add_latency_flags(ap)
    args = ap.parse_args()
    lat = latency_of(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench-resync-"))
    n = 5_000 if args.quick else 10_000
    drift = n // 20
    factor = 4.0 if args.quick else 1.0
    print(f"1. {n} SKUs, {drift} drifted, mode {args.mode}, KeyCRM {PER_MINUTE}/min, clock ×{factor:g}", flush=True)
    b = Bench(tmp / "10k", n, drift, factor, args.mode, lat)
    try:
        b.start()
        res = b.run(dry_run=False)
        action = "update_woocommerce" if args.mode == "keycrm" else "update_keycrm"
        assert res["status"]["counts"]["actions"][action] == drift, res["status"]["counts"]
        big, rss = n, b.rss_mb()  # --quick reports this worker's memory: a second, larger stack takes over a minute
    finally:
        b.stop()
    min_kc, kc_s, woo_s = minimum(n, drift, args.mode, lat)
    reads = resync_reads(res["kc"])
    polls = sum(1 for r in res["kc"] if r["path"] == "/order")
    limited = sum(1 for r in res["kc"] if r["status"] == 429)
    floor_s = max(kc_s, woo_s)
    print(f"  KeyCRM: {reads} resync reads (minimum ⌈N/50⌉ = {math.ceil(n / 50)}), {polls} order polls beside it, "
          f"{len(res['kc'])} requests in all ({limited} answered 429); WooCommerce {len(res['woo'])} requests")
    print(f"  time: {res['time_s']:.1f} s; physical minimum {floor_s:.1f} s (KeyCRM-bound {kc_s:.1f} s, "
          f"WooCommerce-bound {woo_s:.1f} s)", flush=True)

    if not args.quick:
        big = 100_000
        print(f"2. {big} SKUs, dry run, peak RSS of the worker", flush=True)
        b = Bench(tmp / "100k", big, 1000, 200.0, args.mode, lat, rate=6000)
        try:
            b.start()
            r = b.run(dry_run=True)
            rss = b.rss_mb()
            assert r["status"]["counts"]["skus"] == big, r["status"]["counts"]
        finally:
            b.stop()
        print(f"  {len(r['kc'])} KeyCRM + {len(r['woo'])} WooCommerce requests; worker peak RSS {rss:.1f} MB")
    else:
        print(f"  worker peak RSS {rss:.1f} MB ({big} SKUs, the run above)")
    print(json.dumps({"kc_read_ratio": round(reads / math.ceil(n / 50), 3), "time_ratio": round(res["time_s"] / floor_s, 3),
                      f"peak_rss_mb_{big // 1000}k": round(rss, 1), "time_s": round(res["time_s"], 1),
                      "time_min_s": round(floor_s, 1), "kc_reads": reads, "order_polls": polls, "skus": n,
                      "quick": args.quick, "clock_factor": factor, "mode": args.mode}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
