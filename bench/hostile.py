"""Hostile-caller benchmark: what an attacker on the shop's network can do to the sidecar, measured.

    python bench/hostile.py [--quick]

- fuzz_cases / five_xx: generated batches and webhooks inside the bounds and just outside them,
  in-process against the API on a real SQLite file (target: five_xx 0);
- stalled_after_poison: poison classes (signed batches and webhooks) after which a good change did
  not reach KeyCRM within 10 s (target 0);
- forged_webhook_stock_changes: SKUs whose stock changed on either side after webhooks that disagree
  with KeyCRM, summed over the three modes (target 0);
- slow_clients_p95_s: p95 of the plugin's signed batch (20 events) with 50 slowloris connections
  open (target ≤ 1 s), beside slow_clients_baseline_p95_s without them, same run;
- replay_rows_stored: inbox rows stored for 200 replays of one signed batch (target 1).

The last line is one JSON object with those keys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from keycrm_bridge import signing  # noqa: E402

from _procs import SECRET, event, wait_until  # noqa: E402
from door import DoorBridge, Slowloris, batch  # noqa: E402
from hostile_cases import BATCH_POISON, WEBHOOK_POISON, Door, batch_bodies, webhook_bodies  # noqa: E402
from stack import TOKEN as STACK_TOKEN  # noqa: E402
from stack import Stack, simple  # noqa: E402


def fuzz(tmp: Path, n: int) -> tuple[int, int]:
    door = Door(tmp)
    opts = settings(max_examples=n // 2, deadline=None, suppress_health_check=list(HealthCheck), database=None)

    @opts
    @given(body=batch_bodies())
    def events_case(body: bytes) -> None:
        try:
            door.post("events", body)
        except AssertionError:
            pass  # counted in door.five_xx (or a stored refusal, which expand_admitted would show)

    @opts
    @given(body=webhook_bodies())
    def webhook_case(body: bytes) -> None:
        try:
            door.post("webhook", body)
        except AssertionError:
            pass

    events_case()
    webhook_case()
    door.expand_admitted()
    return door.cases, door.five_xx


def poison(bridge: DoorBridge) -> int:
    stalled = 0
    for body in BATCH_POISON.values():
        bridge.signed("POST", "/v1/events", body)
        stalled += not _arrives(bridge)
    for body in WEBHOOK_POISON.values():
        bridge.webhook(body)
        stalled += not _arrives(bridge)
    return stalled


def _arrives(bridge: DoorBridge) -> bool:
    try:
        bridge.good_change_arrives(timeout=10)
        return True
    except AssertionError:
        return False


def batch_latencies(bridge: DoorBridge, n: int) -> list[float]:
    out = []
    with requests.Session() as s:
        for k in range(n):
            body = batch(*[event(f"SLOW-{k}-{i}", i) for i in range(20)])
            t0 = time.monotonic()
            r = s.post(bridge.url + "/v1/events", data=body, timeout=30,
                       headers=signing.signed_headers(SECRET, "POST", "/v1/events", body, time.time()))
            out.append(time.monotonic() - t0 if r.status_code == 202 else 30.0)
    return out


def p95(xs: list[float]) -> float:
    return round(statistics.quantiles(xs, n=20)[-1], 3) if len(xs) >= 2 else xs[0]


def replay(bridge: DoorBridge) -> int:
    body = batch(*[event(f"REPLAY-{i}", i) for i in range(200)])
    headers = signing.signed_headers(SECRET, "POST", "/v1/events", body, time.time())
    before = bridge.rows()["inbox"]
    with requests.Session() as s:
        for _ in range(200):
            s.post(bridge.url + "/v1/events", data=body, headers=headers, timeout=30)
    return bridge.rows()["inbox"] - before


def forged_webhooks(tmp: Path) -> int:
    """Webhooks that disagree with KeyCRM, in each mode: SKUs whose stock then differs from 10 anywhere."""
    changed = 0
    skus = [f"F-{i}" for i in range(6)]
    forged = [
        [{"sku": skus[0], "in_stock": 0, "in_reserve": 0}],
        [{"sku": skus[1], "in_stock": 0, "in_reserve": 0}, {"sku": skus[2], "in_stock": 500, "in_reserve": 0}],
        [{"sku": skus[3], "in_stock": 10, "in_reserve": 10}],
        [{"sku": skus[4], "in_stock": 1e300, "in_reserve": 0}],
        [{"sku": skus[5], "in_stock": 3, "in_reserve": 0}],
    ]
    for mode in ("woocommerce", "keycrm", "two-way"):
        (tmp / mode).mkdir()
        stack = Stack(tmp / mode, mode, webhook=False)
        try:
            stack.start([{"sku": s, "quantity": 10} for s in skus], [simple(s, 10) for s in skus])
            stack.settle()
            ids = {s: stack.sim.control.truth([s])[s]["offer_id"] for s in skus}
            for rows in forged:
                body = [{**r, "offer_id": ids[r["sku"]]} for r in rows]
                requests.post(f"{stack.web.url}/v1/keycrm/webhook/{STACK_TOKEN}", json=body, timeout=10)
            time.sleep(3)  # a bench observes what the forgery did; the settle below bounds the wait
            try:
                stack.settle(timeout=15)
            except AssertionError:
                pass
            changed += sum(stack.kc_sellable(s) != 10 or stack.woo_stock(s) != 10 for s in skus)
        finally:
            stack.stop()
    return changed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish in under two minutes")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kcb-hostile-"))
    t0 = time.monotonic()
    (tmp / "fuzz").mkdir()
    cases, five_xx = fuzz(tmp / "fuzz", 1000 if args.quick else 10000)
    print(f"fuzz: {cases} cases, {five_xx} 5xx ({time.monotonic() - t0:.0f}s)", file=sys.stderr)
    (tmp / "door").mkdir()
    bridge = DoorBridge(tmp / "door")
    try:
        stalled = poison(bridge)
        print(f"poison: {stalled} stalled ({time.monotonic() - t0:.0f}s)", file=sys.stderr)
        n = 40 if args.quick else 200
        baseline = batch_latencies(bridge, n)
        with Slowloris(bridge.url, 50) as slow:
            loaded = batch_latencies(bridge, n)
            held = slow.open_count()
        wait_until(lambda: bridge.signed("GET", "/v1/status").status_code == 200, what="status")
        rows = replay(bridge)
        print(f"slow clients and replay done ({time.monotonic() - t0:.0f}s)", file=sys.stderr)
        five_xx += bridge.logs().count('"status": 500')
    finally:
        bridge.stop()
    forged = forged_webhooks(tmp)
    out = {"fuzz_cases": cases, "five_xx": five_xx, "stalled_after_poison": stalled,
           "forged_webhook_stock_changes": forged, "slow_clients_p95_s": p95(loaded),
           "slow_clients_baseline_p95_s": p95(baseline), "slowloris_held_open": held,
           "replay_rows_stored": rows, "seconds": round(time.monotonic() - t0, 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
