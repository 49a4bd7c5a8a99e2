"""What the KeyCRM Bridge plugin adds to a stock-changing request on real WordPress.

Three scenarios, interleaved in rounds within one run so that drift hits them alike:
  inactive  the plugin deactivated (baseline)
  up        the plugin active, the sidecar stand-in (wp-plugin/tests/receiver.py) answering 202
  down      the plugin active, the sidecar stopped (connection refused; events go to the outbox)
Each request is PUT /wc/v3/products/{id} {"stock_quantity": n} through nginx + PHP-FPM.

Two figures per scenario:
  response  what the client waits for (the shopper's time): the plugin sends after fastcgi_finish_request
  worker    how long the PHP-FPM worker is busy, including the send after the response (bench mu-plugin)
added_ms_* in the last line are the median response-time differences against "inactive"; the worker
differences are printed beside them. Figures only: nothing here asserts timing.

Run through bench/plugin_overhead.sh (brings WordPress up); this module expects $KCB_ENV_DIR/env.json.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "wp-plugin"
SECRET = "5ec7e7" * 10 + "abcd"
SCENARIOS = ("inactive", "up", "down")


def wpctl(env_dir: str, *args: str) -> str:
    out = subprocess.run(
        ["php", str(PLUGIN / "tests" / "lib" / "wpctl.php"), env_dir, *args],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


class ReceiverProcess:
    def __init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        schema = ROOT / "sidecar" / "keycrm_bridge" / "schema" / "events.schema.json"
        self.proc = subprocess.Popen(
            [sys.executable, str(PLUGIN / "tests" / "receiver.py"), "--secret", SECRET, "--schema", str(schema),
             "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def accepted(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_batches", timeout=10) as reply:
            return sum(len(b["batch"]["events"]) for b in json.load(reply)["batches"] if b["valid"])


def put_stock(url: urllib.parse.SplitResult, product_id: int, quantity: int, tag: str) -> float:
    body = json.dumps({"stock_quantity": quantity})
    path = "/?" + urllib.parse.urlencode({"rest_route": f"/wc/v3/products/{product_id}"})
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    started = time.perf_counter()
    conn.request("PUT", path, body=body, headers={"Content-Type": "application/json", "X-Kcb-Bench": tag})
    response = conn.getresponse()
    payload = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    conn.close()
    if response.status != 200 or json.loads(payload)["stock_quantity"] != quantity:
        raise RuntimeError(f"request failed: {response.status} {payload[:200]!r}")
    return elapsed


def main() -> int:
    env_dir = os.environ.get("KCB_ENV_DIR", "/tmp/kcb-wp-env")
    env = json.loads(Path(env_dir, "env.json").read_text())
    rounds = int(os.environ.get("KCB_BENCH_ROUNDS", "8"))
    per_round = int(os.environ.get("KCB_BENCH_REQUESTS", "25"))
    url = urllib.parse.urlsplit(env["wp_url"])
    worker_log = Path(env["wp_dir"], "wp-content", "kcb-bench-worker.log")
    mu_timer = Path(env["wp_dir"], "wp-content", "mu-plugins", "kcb-bench-timer.php")
    shutil.copy(PLUGIN / "tests" / "lib" / "bench-timer.php", mu_timer)
    worker_log.unlink(missing_ok=True)

    receiver = ReceiverProcess()
    receiver.start()
    wpctl(env_dir, "activate")
    wpctl(env_dir, "configure", f"http://127.0.0.1:{receiver.port}", SECRET)
    product_id = int(wpctl(env_dir, "product", f"BENCH-{int(time.time())}", "100000"))
    response_ms: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    quantity = 100000
    try:
        for _ in range(10):  # warm opcache and the database
            quantity -= 1
            put_stock(url, product_id, quantity, "warmup")
        for _round in range(rounds):
            for scenario in SCENARIOS:
                if scenario == "inactive":
                    wpctl(env_dir, "deactivate")
                else:
                    wpctl(env_dir, "activate")
                    if scenario == "up":
                        if receiver.proc is None:
                            receiver.start()
                        # Leave "down" behind: clear the back-off and flag so "up" sends at once.
                        wpctl(env_dir, "configure", f"http://127.0.0.1:{receiver.port}", SECRET)
                    else:
                        receiver.stop()
                for _ in range(per_round):
                    quantity -= 1
                    response_ms[scenario].append(put_stock(url, product_id, quantity, scenario))
        if receiver.proc is None:
            receiver.start()
        wpctl(env_dir, "activate")
        outbox = int(wpctl(env_dir, "outbox"))
    finally:
        receiver.stop()
        mu_timer.unlink(missing_ok=True)

    worker_ms: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    for line in worker_log.read_text().splitlines():
        tag, ms = line.split()
        if tag in worker_ms:
            worker_ms[tag].append(float(ms))
    worker_log.unlink(missing_ok=True)

    med = {s: statistics.median(response_ms[s]) for s in SCENARIOS}
    wmed = {s: statistics.median(worker_ms[s]) if worker_ms[s] else float("nan") for s in SCENARIOS}
    n = len(response_ms["inactive"])
    print(f"plugin overhead on real WordPress ({rounds} rounds x {per_round} requests per scenario, n={n} each)")
    print(f"{'scenario':<10} {'response p50':>13} {'response p90':>13} {'worker p50':>11}")
    for s in SCENARIOS:
        p90 = statistics.quantiles(response_ms[s], n=10)[-1]
        print(f"{s:<10} {med[s]:>10.2f} ms {p90:>10.2f} ms {wmed[s]:>8.2f} ms")
    print(f"added response time: up {med['up'] - med['inactive']:+.2f} ms, down {med['down'] - med['inactive']:+.2f} ms")
    print(f"added worker time:   up {wmed['up'] - wmed['inactive']:+.2f} ms, down {wmed['down'] - wmed['inactive']:+.2f} ms "
          "(includes the send after the response)")
    print(f"outbox rows after the run: {outbox} (events kept while the sidecar was down)")
    print(json.dumps({
        "added_ms_up": round(med["up"] - med["inactive"], 3),
        "added_ms_down": round(med["down"] - med["inactive"], 3),
        "added_worker_ms_up": round(wmed["up"] - wmed["inactive"], 3),
        "added_worker_ms_down": round(wmed["down"] - wmed["inactive"], 3),
        "median_ms_inactive": round(med["inactive"], 3),
        "samples_per_scenario": n,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
