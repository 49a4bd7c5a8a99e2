#!/usr/bin/env python3
"""What the plugin adds to a real shop's requests: WordPress 7.0 + WooCommerce 11.0 (the real-shop suite's
rig), a shopper's paid checkout through the Store API and a REST stock PUT, with the plugin inactive, and
active with the sidecar up, stopped (connection refused) and accepting-but-never-answering.

Setups are switched per request: the bench's mu-plugin (realshop_cpu.php, copied into the rig for the run)
reads X-Kcb-Bench-Setup and, for that request and the flush request it rings, takes the plugin out of
active_plugins ("inactive") or points it at the up / refused / hanging sidecar, each with its own delivery
state. A rotation sends one checkout per setup in a random order, then one PUT per setup in another; before
each timed request the same pause (SETTLE_S), then a wait until no request of the shop is in flight (the
previous requests' after-response work and the flush requests they rang end first). The added figure is the
median over rotations of (setup - inactive) in the same rotation, seconds apart, so the machine's drift
cancels; ``…_se`` is its standard error (bootstrap over rotations). Prints a summary on stderr and ONE JSON
line. Prints ``{"real_shop": "skipped: …"}`` when the rig cannot be built here.
Env: KCB_BENCH_REAL_ROTATIONS (60; 6 with --quick or KCB_BENCH_QUICK=1), KCB_BENCH_REAL_SETTLE_S (0.25),
KCB_BENCH_REAL_IDLE_CAP_S (8: the longest wait for an idle shop), KCB_BENCH_REAL_SEED (13: the orders),
KCB_BENCH_REAL_DUMP (a file to write every request's figures to).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "realshop"))

import rig  # noqa: E402

QUICK = "--quick" in sys.argv[1:] or os.environ.get("KCB_BENCH_QUICK") == "1"
ROTATIONS = int(os.environ.get("KCB_BENCH_REAL_ROTATIONS", "6" if QUICK else "60"))
SEED = int(os.environ.get("KCB_BENCH_REAL_SEED", "13"))
DUMP = os.environ.get("KCB_BENCH_REAL_DUMP", "")  # a file for every request's figures, by op and setup
# A pause before each timed request, the same in every setup: the background requests of the step before
# (the plugin's flush request, WooCommerce's own loopbacks) finish first, so a figure is the request's own
# cost rather than its share of a busy 2-core machine. What the flush request costs the server is its own
# figure (docs/development.md).
SETTLE_S = float(os.environ.get("KCB_BENCH_REAL_SETTLE_S", "0.25"))
SETUPS = ("inactive", "up", "down", "hang")
# A hanging sidecar holds a flush request for the send timeout (5 s); past this the bench goes on anyway.
IDLE_CAP_S = float(os.environ.get("KCB_BENCH_REAL_IDLE_CAP_S", "8"))
# Where each request of the rig marks itself in flight while the mu-plugin is there (see realshop_cpu.php).
INFLIGHT = Path("/tmp/kcb-bench-inflight")
PLUGIN = "keycrm-bridge/keycrm-bridge.php"
REMOVE_PLUGIN = rig.REMOVE_PLUGIN
RESET_BENCH_STATES = ("foreach (['up', 'down', 'hang'] as $s) { delete_option('kcb_delivery_state_bench_' . $s); }"
                      " echo 'ok';")
# The shop (nginx, PHP-FPM, MariaDB), the sidecar and this client run at this nice value for the rounds when
# we may raise priority (root): on a machine others load too, a request otherwise waits for their processes
# at random, which swamped a few ms in noise; every setup, the baseline included, runs the same way.
_NICE = os.environ.get("KCB_BENCH_REAL_NICE", "-10")  # "off": leave priorities alone
NICE = None if _NICE in ("", "off") else int(_NICE)
CPU_PROBE = HERE / "realshop_cpu.php"  # copied into the rig's mu-plugins for the run (see that file)


def hang_server() -> tuple[str, socket.socket]:
    """Accepts connections and never answers (reads and drops what it gets)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}", srv


def closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def switch(setup: str, urls: dict[str, str]) -> None:
    """One rigwp call: the plugin in or out of active_plugins (no activation hooks: a switch, not a
    reinstall), its sidecar URL, and a clean delivery state so "down" starts from a first failure."""
    php = f"$p = (array) get_option('active_plugins'); $p = array_values(array_diff($p, ['{PLUGIN}']));"
    if setup != "inactive":
        php += f"$p[] = '{PLUGIN}'; update_option('kcb_sidecar_url', '{urls[setup]}');"
    php += "update_option('active_plugins', $p); delete_option('kcb_delivery_state'); echo 'ok';"
    assert rig.wp_eval(php) == "ok"


def setup_headers(setup: str, urls: dict[str, str]) -> dict[str, str]:
    return {"X-Kcb-Bench-Setup": setup, "X-Kcb-Bench-Url": urls.get(setup, "")}


def shopper(store_api: type, setup: str, urls: dict[str, str]) -> tuple[Any, list[Any]]:
    """A Store API session whose every request runs in ``setup``, and the list of its responses."""
    store = store_api()
    store.s.headers["X-Kcb-Bench"] = "1"
    store.s.headers.update(setup_headers(setup, urls))
    answers: list[Any] = []
    store.s.hooks["response"].append(lambda r, *_a, seen=answers, **_k: seen.append(r))
    store.cart()
    return store, answers


def in_flight() -> int:
    """Requests of the shop running now (marks older than a minute are a killed worker's, not counted)."""
    now = time.time()
    count = 0
    for mark in INFLIGHT.iterdir():
        try:
            count += now - mark.stat().st_mtime < 60
        except FileNotFoundError:
            continue
    return count


def settle() -> float:
    """The same pause before every timed request, then until the shop has been idle for 100 ms (five looks:
    a flush request rung at the end of the previous one has started by then); returns the seconds waited
    past pause and quiet time."""
    time.sleep(SETTLE_S)
    start = time.monotonic()
    quiet = 0
    while quiet < 5 and time.monotonic() - start < IDLE_CAP_S:
        quiet = quiet + 1 if in_flight() == 0 else 0
        time.sleep(0.02)
    return time.monotonic() - start - 0.1


def rig_tasks() -> list[int]:
    """Every thread of the rig's servers (from their pid files) and of their children."""
    roots = set()
    for pidfile in (rig.RIG_DIR / "run").rglob("*.pid"):
        try:
            roots.add(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    pids = {p for p in parents if p in roots or parents[p] in roots}
    return [int(t.name) for p in pids for t in Path(f"/proc/{p}/task").glob("[0-9]*")]


def set_priority(nice: int | None) -> dict[int, int]:
    """Put the rig's threads (and this process, whose children the sidecar's are) at ``nice``; returns what
    each had, for restore_priority. Nothing when not allowed (not root) or asked not to."""
    if nice is None or os.geteuid() != 0:
        return {}
    before: dict[int, int] = {}
    for tid in [os.getpid(), *rig_tasks()]:
        try:
            before[tid] = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:
            continue
    return before


def restore_priority(before: dict[int, int]) -> None:
    """Back to what set_priority found; threads and workers started meanwhile (they inherited the bench's
    value) get the value their servers had."""
    if not before:
        return
    usual = statistics.mode(before.values())
    for tid in rig_tasks():
        try:
            os.setpriority(os.PRIO_PROCESS, tid, before.get(tid, usual))
        except OSError:
            continue


def bootstrap_se(values: list[float], draws: int = 2000) -> float:
    """Standard error of the median of ``values``: the spread of the medians of resamples (seeded, so a
    run's figure does not move between two prints of it)."""
    rng = random.Random(13)
    medians = [statistics.median(rng.choices(values, k=len(values))) for _ in range(draws)]
    return statistics.stdev(medians)


def summarise(timings: dict[str, dict[str, list[list[float]]]], ops: tuple[str, ...]) -> dict[str, object]:
    """Per op and setup: the median of all its requests; per active setup: the median over rotations of the
    rotation's difference against inactive, and that figure's standard error. The time
    spent inside the plugin (``…_plugin``) needs no baseline: real_checkout_plugin_ms_up …"""
    out: dict[str, object] = {}
    for op in ops:
        # "checkout_cpu" → real_checkout_cpu_ms_up, real_checkout_added_cpu_ms_up
        name, kind = op.split("_", 1) if "_" in op else (op, "")
        digits = 1 if kind == "" else 2
        by_round = {s: [statistics.median(v) for v in timings[op][s]] for s in SETUPS}
        if kind == "plugin":
            for setup in SETUPS[1:]:
                out[f"real_{name}_plugin_ms_{setup}"] = round(statistics.median(
                    [x for visit in timings[op][setup] for x in visit]), 3)
                out[f"real_{name}_plugin_ms_{setup}_se"] = round(bootstrap_se(by_round[setup]), 3)
            continue
        unit = f"{kind}_" if kind else ""
        for setup in SETUPS:
            out[f"real_{name}_{unit}ms_{setup}"] = round(statistics.median(
                [x for visit in timings[op][setup] for x in visit]), digits)
        for setup in SETUPS[1:]:
            paired = [a - b for a, b in zip(by_round[setup], by_round["inactive"], strict=True)]
            out[f"real_{name}_added_{unit}ms_{setup}"] = round(statistics.median(paired), digits)
            out[f"real_{name}_added_{unit}ms_{setup}_se"] = round(bootstrap_se(paired), digits) if len(paired) > 1 else None
    return out

def main() -> int:
    reason = rig.why_not()
    if reason:
        print(json.dumps({"real_shop": f"skipped: {reason}"}))
        return 0
    rig.prepare()
    import owner
    from rigclient import WC, StoreAPI, WPAdmin
    from shop import Sidecar

    priorities = set_priority(NICE)
    tmp = Path(tempfile.mkdtemp(prefix="kcb-bench-realshop-"))
    probe = rig.RIG_DIR / "www" / "wp-content" / "mu-plugins" / "kcb-bench-cpu.php"
    INFLIGHT.mkdir(exist_ok=True)
    INFLIGHT.chmod(0o1777)
    probe.write_bytes(CPU_PROBE.read_bytes())
    probe.chmod(0o644)
    admin = WPAdmin().login()
    wc = WC("http")
    prefix = f"BENCH{int(time.time()) % 1000000}"
    sidecar = Sidecar(tmp)
    sidecar.start([{"sku": f"{prefix}-PUT", "quantity": 1000}, {"sku": f"{prefix}-BUY", "quantity": 1000000}])
    hang_url, hang_sock = hang_server()
    urls = {"up": sidecar.url, "down": closed_port(), "hang": hang_url}
    try:
        # This checkout's plugin, installed from its zip as the real-shop suite does.
        subprocess.run(["make", "-s", "dist"], cwd=HERE.parent, check=True, stdout=subprocess.DEVNULL)
        rig.wp_eval(REMOVE_PLUGIN)
        owner.install_zip(admin, HERE.parent / "wp-plugin" / "dist" / "keycrm-bridge.zip")
        owner.configure(admin, sidecar.url, sidecar.secret)
        made = wc.post("products/batch", {"create": [
            {"name": "bench PUT", "sku": f"{prefix}-PUT", "regular_price": "5", "manage_stock": True, "stock_quantity": 1000},
            {"name": "bench BUY", "sku": f"{prefix}-BUY", "regular_price": "5", "manage_stock": True,
             "stock_quantity": 1000000}]})["create"]
        put_id, buy_id = made[0]["id"], made[1]["id"]
        ops = ("checkout", "put", "checkout_cpu", "put_cpu", "checkout_plugin", "put_plugin")
        # timings[op][setup][rotation] = [that request's value]
        timings: dict[str, dict[str, list[list[float]]]] = {op: {s: [] for s in SETUPS} for op in ops}
        switch("up", urls)  # what requests without the bench's header (WP-Cron …) see
        rig.wp_eval(RESET_BENCH_STATES)
        wc.s.headers["X-Kcb-Bench"] = "1"
        shoppers = {setup: shopper(StoreAPI, setup, urls) for setup in SETUPS}
        rng = random.Random(SEED)
        waits: list[float] = []
        stock = 1000
        started = time.monotonic()
        load_start = os.getloadavg()[0]  # the 1-minute load when the rotations began and when they ended
        for n in range(ROTATIONS + 1):  # rotation 0 warms every setup's caches and is not counted
            row: dict[str, dict[str, float]] = {op: {} for op in ops}
            for setup in rng.sample(SETUPS, len(SETUPS)):
                store, answers = shoppers[setup]
                store.add_item(buy_id, 1)
                waits.append(settle())
                t0 = time.perf_counter()
                store.checkout()
                row["checkout"][setup] = (time.perf_counter() - t0) * 1000
                headers = answers[-1].headers
                row["checkout_cpu"][setup] = float(headers["X-Kcb-Bench-Cpu-Ms"])
                row["checkout_plugin"][setup] = float(headers["X-Kcb-Bench-Plugin-Ms"])
            for setup in rng.sample(SETUPS, len(SETUPS)):
                stock -= 1
                wc.s.headers.update(setup_headers(setup, urls))
                waits.append(settle())
                t0 = time.perf_counter()
                wc.put(f"products/{put_id}", {"stock_quantity": stock})
                row["put"][setup] = (time.perf_counter() - t0) * 1000
                row["put_cpu"][setup] = float(wc.last_response.headers["X-Kcb-Bench-Cpu-Ms"])
                row["put_plugin"][setup] = float(wc.last_response.headers["X-Kcb-Bench-Plugin-Ms"])
            if n:
                for op in ops:
                    for setup in SETUPS:
                        timings[op][setup].append([row[op][setup]])
        # Evidence the per-request switch took: the bridge ran in no "inactive" request and in every other one,
        # and each setup's sends ended as that sidecar would make them.
        for op in ("checkout_plugin", "put_plugin"):
            ran = {s: sum(v[0] > 0 for v in timings[op][s]) for s in SETUPS}
            if ran["inactive"] or min(ran[s] for s in SETUPS[1:]) < ROTATIONS:
                raise SystemExit(f"the per-request setups did not take ({op}: requests the bridge ran in {ran})")
        failures = json.loads(rig.wp_eval("echo wp_json_encode(array_map(fn($s) => (int) (get_option("
                                          "'kcb_delivery_state_bench_' . $s, [])['failures'] ?? -1), "
                                          "['up' => 'up', 'down' => 'down', 'hang' => 'hang']));"))
        rig.wp_eval(RESET_BENCH_STATES)
        if DUMP:
            Path(DUMP).write_text(json.dumps(timings))
        seconds = time.monotonic() - started
        out = summarise(timings, ops)
        waits.sort()
        out.update({"real_shop_rotations": ROTATIONS, "real_shop_settle_s": SETTLE_S,
                    # how long the shop stayed busy past the pause (flush requests, a hanging send)
                    "real_shop_idle_wait_ms_median": round(statistics.median(waits) * 1000, 1),
                    "real_shop_idle_wait_ms_max": round(waits[-1] * 1000, 1),
                    "real_shop_idle_wait_over_10ms": sum(w > 0.01 for w in waits),
                    "real_shop_consecutive_failures": failures,
                    "real_shop_nice": NICE if priorities else 0,
                    "real_shop": rig.versions(), "real_shop_seconds": round(seconds),
                    "real_shop_load_avg": [round(load_start, 2), round(os.getloadavg()[0], 2)]})
        print(f"real shop: {ROTATIONS} rotations of 4 setups x (checkout + PUT) in {seconds:.0f} s, "
              f"load average {load_start:.2f} → {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for op in ops:
            name, kind = op.split("_", 1) if "_" in op else (op, "")
            if kind == "plugin":
                print(f"  {op} (inside the plugin): " + ", ".join(
                    f"{s} {out[f'real_{name}_plugin_ms_{s}']} ms" for s in SETUPS[1:]), file=sys.stderr)
                continue
            unit = f"{kind}_" if kind else ""
            print(f"  {op}: " + ", ".join(f"{s} {out[f'real_{name}_{unit}ms_{s}']} ms" for s in SETUPS)
                  + "; added " + ", ".join(f"{s} {out[f'real_{name}_added_{unit}ms_{s}']} ± "
                                           f"{out[f'real_{name}_added_{unit}ms_{s}_se']}" for s in SETUPS[1:]),
                  file=sys.stderr)
        print(json.dumps(out))
        return 0
    finally:
        restore_priority(priorities)
        probe.unlink(missing_ok=True)
        shutil.rmtree(INFLIGHT, ignore_errors=True)
        hang_sock.close()
        sidecar.stop()


if __name__ == "__main__":
    sys.exit(main())
