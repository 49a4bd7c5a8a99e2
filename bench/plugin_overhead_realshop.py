#!/usr/bin/env python3
"""What the plugin adds to a real shop's requests: WordPress 7.0 + WooCommerce 11.0 (the real-shop suite's
rig), a shopper's paid checkout through the Store API and a REST stock PUT, with the plugin inactive, and
active with the sidecar up, stopped (connection refused) and accepting-but-never-answering.

Rounds interleave the four setups (the plugin is switched by its entry in active_plugins, the sidecar by
the plugin's URL), so the machine's drift falls on all of them alike; each timed request comes after a
short pause in which the previous step's background requests finish. Prints a summary on stderr and ONE
JSON line: medians in ms and the added ms against inactive (``real_checkout_added_ms_up`` …, the median
of the rounds' differences). Prints ``{"real_shop": "skipped: …"}`` when the rig cannot be built here.
Env: KCB_BENCH_REAL_ROUNDS (30), KCB_BENCH_REAL_SETTLE_S (0.5).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "realshop"))

import rig  # noqa: E402

ROUNDS = int(os.environ.get("KCB_BENCH_REAL_ROUNDS", "30"))
# A pause before each timed request, the same in every setup: the background requests of the step before
# (the plugin's flush request, WooCommerce's own loopbacks) finish first, so a figure is the request's own
# cost rather than its share of a busy 2-core machine. What the flush request costs the server is its own
# figure (docs/development.md).
SETTLE_S = float(os.environ.get("KCB_BENCH_REAL_SETTLE_S", "0.5"))
SETUPS = ("inactive", "up", "down", "hang")
PLUGIN = "keycrm-bridge/keycrm-bridge.php"
REMOVE_PLUGIN = rig.REMOVE_PLUGIN
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


def main() -> int:
    reason = rig.why_not()
    if reason:
        print(json.dumps({"real_shop": f"skipped: {reason}"}))
        return 0
    rig.prepare()
    import owner
    from rigclient import WC, StoreAPI, WPAdmin
    from shop import Sidecar

    tmp = Path(tempfile.mkdtemp(prefix="kcb-bench-realshop-"))
    probe = rig.RIG_DIR / "www" / "wp-content" / "mu-plugins" / "kcb-bench-cpu.php"
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
        ops = ("checkout", "put", "checkout_cpu", "put_cpu")
        timings: dict[str, dict[str, list[float]]] = {op: {s: [] for s in SETUPS} for op in ops}
        wc.s.headers["X-Kcb-Bench"] = "1"
        stock = 1000
        started = time.monotonic()
        load_start = os.getloadavg()[0]  # the 1-minute load when the rounds began and when they ended
        for n in range(ROUNDS + 1):  # round 0 warms every setup's caches and is not counted
            order = SETUPS if n % 2 else tuple(reversed(SETUPS))
            for setup in order:
                switch(setup, urls)
                store = StoreAPI()
                store.s.headers["X-Kcb-Bench"] = "1"
                answers: list[object] = []
                store.s.hooks["response"].append(lambda r, *_a, seen=answers, **_k: seen.append(r))
                store.cart()
                store.add_item(buy_id, 1)
                time.sleep(SETTLE_S)
                t0 = time.perf_counter()
                store.checkout()
                checkout_ms = (time.perf_counter() - t0) * 1000
                checkout_cpu = float(answers[-1].headers["X-Kcb-Bench-Cpu-Ms"])  # type: ignore[attr-defined]
                stock -= 1
                time.sleep(SETTLE_S)
                t0 = time.perf_counter()
                wc.put(f"products/{put_id}", {"stock_quantity": stock})
                put_ms = (time.perf_counter() - t0) * 1000
                put_cpu = float(wc.last_response.headers["X-Kcb-Bench-Cpu-Ms"])
                if n:
                    for op, value in (("checkout", checkout_ms), ("put", put_ms), ("checkout_cpu", checkout_cpu),
                                      ("put_cpu", put_cpu)):
                        timings[op][setup].append(value)
        switch("up", urls)
        medians = {op: {s: statistics.median(v) for s, v in by.items()} for op, by in timings.items()}
        out: dict[str, object] = {"real_shop_rounds": ROUNDS, "real_shop": rig.versions(),
                                  "real_shop_load_avg": [round(load_start, 2), round(os.getloadavg()[0], 2)]}
        for op in ops:
            # "checkout_cpu" → real_checkout_cpu_ms_up, real_checkout_added_cpu_ms_up
            name, cpu = op.removesuffix("_cpu"), "cpu_" if op.endswith("_cpu") else ""
            for setup in SETUPS:
                out[f"real_{name}_{cpu}ms_{setup}"] = round(medians[op][setup], 2 if cpu else 1)
            for setup in SETUPS[1:]:
                # The median of each round's difference: a round's four requests ran back to back, so the
                # machine's load at that moment cancels out.
                paired = [a - b for a, b in zip(timings[op][setup], timings[op]["inactive"], strict=True)]
                out[f"real_{name}_added_{cpu}ms_{setup}"] = round(statistics.median(paired), 2 if cpu else 1)
        print(f"real shop: {ROUNDS} rounds of 4 setups x (checkout + PUT) in {time.monotonic() - started:.0f} s, "
              f"load average {load_start:.2f} → {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for op in ops:
            print("  " + op + ": " + ", ".join(f"{s} {medians[op][s]:.1f} ms" for s in SETUPS), file=sys.stderr)
        print(json.dumps(out))
        return 0
    finally:
        probe.unlink(missing_ok=True)
        hang_sock.close()
        sidecar.stop()


if __name__ == "__main__":
    sys.exit(main())
