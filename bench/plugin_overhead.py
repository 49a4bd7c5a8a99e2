"""What the KeyCRM Bridge plugin adds to a stock-changing request on real WordPress.

One function per measured setup (the same WordPress, database and plugin behind each):
  fpm      nginx + PHP-FPM: the plugin sends after fastcgi_finish_request
  modphp   Apache 2.4 with mod_php (prefork), where PHP cannot answer early: the request stores its events
           and hands them to a non-blocking loopback request (AsyncFlush)
Four scenarios per setup, interleaved in rounds within one run so that drift hits them alike:
  inactive  the plugin deactivated (baseline)
  up        the plugin active, the sidecar stand-in (wp-plugin/tests/receiver.py) answering 202
  down      the plugin active, the sidecar stopped (connection refused; events go to the outbox)
  hang      the plugin active, the sidecar accepting connections and never answering
Each request is PUT /wc/v3/products/{id} {"stock_quantity": n}.

Two figures per scenario:
  response  what the client waits for (the shopper's time)
  worker    how long the PHP worker is busy, including what runs after the response (bench mu-plugin)
added_ms_* in the last line are, per setup, the median over rounds of each round's median response time
minus that round's "inactive" median (the PHP-FPM ones keep their first names: added_ms_up, added_ms_down). Figures only: nothing here
asserts timing. Another setup (a real shop, say) is one more measure_* function and its keys.

Run through bench/plugin_overhead.sh (brings WordPress and Apache up); this module expects
$KCB_ENV_DIR/env.json and KCB_APACHE_URL.
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
SCENARIOS = ("inactive", "up", "down", "hang")
HANG_S = 600  # the stand-in holds each request this long (or until the scenario ends)


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

    def mode(self, mode: str) -> None:
        body = json.dumps({"mode": mode, "hang_s": HANG_S}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/_control", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10):
            pass

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


class Bench:
    """What every setup shares: the WordPress environment, the receiver, the product, the worker log."""

    def __init__(self) -> None:
        self.env_dir = os.environ.get("KCB_ENV_DIR", "/tmp/kcb-wp-env")
        self.env = json.loads(Path(self.env_dir, "env.json").read_text())
        self.rounds = int(os.environ.get("KCB_BENCH_ROUNDS", "8"))
        self.per_round = int(os.environ.get("KCB_BENCH_REQUESTS", "25"))
        self.worker_log = Path(self.env["wp_dir"], "wp-content", "kcb-bench-worker.log")
        self.mu_timer = Path(self.env["wp_dir"], "wp-content", "mu-plugins", "kcb-bench-timer.php")
        self.receiver = ReceiverProcess()
        self.quantity = 100000
        self.product_id = 0

    def __enter__(self) -> Bench:
        shutil.copy(PLUGIN / "tests" / "lib" / "bench-timer.php", self.mu_timer)
        self.worker_log.unlink(missing_ok=True)
        self.worker_log.touch()
        self.worker_log.chmod(0o666)  # Apache's children (www-data) append to it too
        self.receiver.start()
        wpctl(self.env_dir, "activate")
        self.configure()
        self.product_id = int(wpctl(self.env_dir, "product", f"BENCH-{int(time.time())}", str(self.quantity)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()
        self.mu_timer.unlink(missing_ok=True)

    def configure(self) -> None:
        # Also clears the back-off and the outbox flag, so each scenario starts from the same state.
        wpctl(self.env_dir, "configure", f"http://127.0.0.1:{self.receiver.port}", SECRET)

    def enter(self, scenario: str) -> None:
        if scenario == "inactive":
            wpctl(self.env_dir, "deactivate")
            return
        wpctl(self.env_dir, "activate")
        if scenario == "down":
            self.receiver.stop()
            return
        if self.receiver.proc is None:
            self.receiver.start()
        self.receiver.mode("hang" if scenario == "hang" else "ok")
        self.configure()

    def measure(self, setup: str, base_url: str) -> dict[str, float]:
        """Rounds of every scenario against one server; median figures keyed by scenario."""
        url = urllib.parse.urlsplit(base_url)
        response_ms: dict[str, list[float]] = {s: [] for s in SCENARIOS}
        paired: dict[str, list[float]] = {s: [] for s in SCENARIOS[1:]}
        for _ in range(10):  # warm opcache and the database
            self.quantity -= 1
            put_stock(url, self.product_id, self.quantity, "warmup")
        for _round in range(self.rounds):
            this_round: dict[str, list[float]] = {}
            for scenario in SCENARIOS:
                self.enter(scenario)
                this_round[scenario] = []
                for _ in range(self.per_round):
                    self.quantity -= 1
                    this_round[scenario].append(put_stock(url, self.product_id, self.quantity, f"{setup}-{scenario}"))
                response_ms[scenario] += this_round[scenario]
            # Paired within the round: the machine's drift between rounds cancels out.
            base = statistics.median(this_round["inactive"])
            for scenario in SCENARIOS[1:]:
                paired[scenario].append(statistics.median(this_round[scenario]) - base)
        self.enter("up")
        worker_ms: dict[str, list[float]] = {s: [] for s in SCENARIOS}
        for line in self.worker_log.read_text().splitlines():
            tag, ms = line.split()
            if tag.startswith(setup + "-") and tag[len(setup) + 1:] in worker_ms:
                worker_ms[tag[len(setup) + 1:]].append(float(ms))
        med = {s: statistics.median(response_ms[s]) for s in SCENARIOS}
        wmed = {s: statistics.median(worker_ms[s]) if worker_ms[s] else float("nan") for s in SCENARIOS}
        print(f"\n{setup}: {self.rounds} rounds x {self.per_round} requests per scenario "
              f"(n={len(response_ms['inactive'])} each)")
        print(f"{'scenario':<10} {'response p50':>13} {'response p90':>13} {'worker p50':>11}")
        for s in SCENARIOS:
            p90 = statistics.quantiles(response_ms[s], n=10)[-1]
            print(f"{s:<10} {med[s]:>10.2f} ms {p90:>10.2f} ms {wmed[s]:>8.2f} ms")
        added = {s: statistics.median(paired[s]) for s in SCENARIOS[1:]}
        print("added response time: " + ", ".join(f"{s} {v:+.2f} ms" for s, v in added.items()))
        print("added worker time:   " + ", ".join(f"{s} {wmed[s] - wmed['inactive']:+.2f} ms" for s in SCENARIOS[1:])
              + " (includes what runs after the response)")
        return {**{f"added_ms_{s}": v for s, v in added.items()},
                **{f"added_worker_ms_{s}": wmed[s] - wmed["inactive"] for s in SCENARIOS[1:]},
                "median_ms_inactive": med["inactive"], "samples_per_scenario": float(len(response_ms["inactive"]))}


def measure_fpm(bench: Bench) -> dict[str, float]:
    return bench.measure("fpm", bench.env["wp_url"])


def measure_modphp(bench: Bench) -> dict[str, float]:
    return bench.measure("modphp", os.environ["KCB_APACHE_URL"])


def main() -> int:
    with Bench() as bench:
        fpm = measure_fpm(bench)
        modphp = measure_modphp(bench)
        outbox = int(wpctl(bench.env_dir, "outbox"))
    print(f"\noutbox rows after the run: {outbox} (events kept while the sidecar was down or hanging)")
    result = {
        "added_ms_up": fpm["added_ms_up"],
        "added_ms_down": fpm["added_ms_down"],
        "added_ms_hang_fpm": fpm["added_ms_hang"],
        "added_ms_hang_modphp": modphp["added_ms_hang"],
        "added_ms_up_modphp": modphp["added_ms_up"],
        "added_ms_down_modphp": modphp["added_ms_down"],
        "added_worker_ms_up": fpm["added_worker_ms_up"],
        "added_worker_ms_down": fpm["added_worker_ms_down"],
        "added_worker_ms_hang_fpm": fpm["added_worker_ms_hang"],
        "added_worker_ms_hang_modphp": modphp["added_worker_ms_hang"],
        "median_ms_inactive": fpm["median_ms_inactive"],
        "median_ms_inactive_modphp": modphp["median_ms_inactive"],
        "samples_per_scenario": int(fpm["samples_per_scenario"]),
    }
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
