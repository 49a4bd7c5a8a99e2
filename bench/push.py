"""Push benchmark: KeyCRM requests per 1,000 changes, ingest rate against a bare Flask+gunicorn
endpoint measured in the same run, and latency from POST to KeyCRM 2xx with a free budget.

    python bench/push.py [--quick]

The last line is one JSON object: requests_per_1000_changes, ingest_ratio_single, ingest_ratio_batch,
events_per_s_batch, p95_s (targets: ≤ 2, ≥ 0.7, ≥ 0.7, —, ≤ 2 s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from keycrm_bridge import signing
from keycrm_bridge.simulator.testing import SimulatorProcess, generated_sku

from _procs import Proc, Web, Worker, bridge_env, event, free_port, post_events, wait_until

HERE = Path(__file__).resolve().parent


def ingest_rate(url: str, batch_size: int, seconds: float, threads: int = 4) -> float:
    """Events/s accepted over `seconds` by `threads` clients posting signed batches of `batch_size`."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        s = requests.Session()
        n = 0
        while time.monotonic() < stop:
            evs = [event(f"B{k}-{n}-{i}", i) for i in range(batch_size)]
            n += 1
            body = json.dumps({"events": evs}).encode()
            r = s.post(url + "/v1/events", data=body, headers=signing.signed_headers(
                "bench-shared-secret-0123456789"[:32], "POST", "/v1/events", body, time.time()), timeout=30)
            if r.status_code == 202:
                counts[k] += batch_size

    ts = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def bare_web(tmp: Path, workers: int) -> Proc:
    port = free_port()
    p = Proc([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
              "--chdir", str(HERE), "bare_app:app"], {**bridge_env(tmp / "x"), "PYTHONPATH": str(HERE)},
             tmp / "bare.log").start()
    p.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    wait_until(lambda: _up(p.url + "/v1/events"), what="bare gunicorn")  # type: ignore[attr-defined]
    return p


def _up(url: str) -> bool:
    try:
        requests.post(url, data=b'{"events": []}', timeout=1)
        return True
    except requests.RequestException:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish in under a minute")
    args = ap.parse_args()
    seconds = 3.0 if args.quick else 10.0
    samples = 15 if args.quick else 60
    tmp = Path(tempfile.mkdtemp(prefix="bench-push-"))
    out: dict[str, float] = {}
    secret = "bench-shared-secret-0123456789"[:32]

    # 1. Ingest: ours against the bare endpoint, same gunicorn settings, same machine, same run.
    env = bridge_env(tmp / "ingest.sqlite3", SYNC_MODE="woocommerce", BRIDGE_SHARED_SECRET=secret)
    ours = Web(env, tmp / "web-ingest.log", workers=2).start()
    bare = bare_web(tmp, workers=2)
    try:
        for size, key in ((1, "single"), (100, "batch")):
            ingest_rate(bare.url, size, 0.5)  # type: ignore[attr-defined]  # warm both up
            ingest_rate(ours.url, size, 0.5)
            b = ingest_rate(bare.url, size, seconds)  # type: ignore[attr-defined]
            o = ingest_rate(ours.url, size, seconds)
            print(f"ingest {key:6}: ours {o:9.0f} events/s, bare Flask+gunicorn {b:9.0f} events/s, ratio {o / b:.2f}")
            out[f"ingest_ratio_{key}"] = round(o / b, 3)
            out[f"events_per_s_{key}"] = round(o, 1)
    finally:
        ours.stop()
        bare.stop()

    # 2. KeyCRM requests per 1,000 changes, and 3. latency, against the simulator.
    n = 1000
    skus = [generated_sku(i) for i in range(1, n + 1)]
    with SimulatorProcess() as sim:
        sim.control.seed(offers=[{"sku": s, "quantity": 5, "reserve": 1} for s in skus])
        # The sweep and the order poll are the pull direction's idle cost (bench/pull.py); off here so
        # that the count is what pushing costs.
        env = bridge_env(tmp / "push.sqlite3", sim.api_url, SYNC_MODE="woocommerce", BRIDGE_SHARED_SECRET=secret,
                         SWEEP_PAGE_INTERVAL_S="0", ORDER_POLL_INTERVAL_S="3600")
        web = Web(env, tmp / "web.log").start()
        worker = Worker(env, tmp / "worker.log").start()
        try:
            rounds = []
            for r in range(2):
                since = sim.control.last_seq()
                targets = {s: 10 + r * 7 + i % 5 for i, s in enumerate(skus)}
                for k in range(0, n, 100):
                    post_events(web.url, [event(s, targets[s]) for s in skus[k:k + 100]], secret=secret)
                wait_until(lambda t=targets: sim.control.sellable_map(skus) == t, timeout=120, what="push")
                reqs = sim.control.requests(since, bodies=False)
                rounds.append(len(reqs))
                print(f"round {r + 1} ({'cold: reads the SKUs first' if r == 0 else 'warm mirror'}): "
                      f"{len(reqs)} KeyCRM requests for {n} changes "
                      f"({sum(1 for q in reqs if q['method'] == 'PUT')} PUT, {sum(1 for q in reqs if q['method'] == 'GET')} GET)")
            out["requests_per_1000_changes"] = rounds[1]
            out["requests_per_1000_changes_cold"] = rounds[0]
            lat = []
            for i in range(samples):
                sku = skus[i]
                value = 100 + i
                t0 = time.monotonic()
                post_events(web.url, [event(sku, value)], secret=secret)
                wait_until(lambda s=sku, v=value: sim.control.sellable(s) == v, timeout=30, interval=0.01,
                           what="latency sample")
                lat.append(time.monotonic() - t0)
            lat.sort()
            out["p50_s"] = round(statistics.median(lat), 3)
            out["p95_s"] = round(lat[max(0, int(len(lat) * 0.95) - 1)], 3)
            print(f"POST → KeyCRM 2xx, free budget, {samples} samples: p50 {out['p50_s']} s, p95 {out['p95_s']} s "
                  "(includes the 0.3 s debounce that turns a burst into one request)")
        finally:
            worker.stop()
            web.stop()
    keys = ["requests_per_1000_changes", "ingest_ratio_single", "ingest_ratio_batch", "events_per_s_batch", "p95_s"]
    print(json.dumps({k: out[k] for k in keys} | {"p50_s": out["p50_s"],
                     "requests_per_1000_changes_cold": out["requests_per_1000_changes_cold"],
                     "events_per_s_single": out["events_per_s_single"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
