"""Push benchmark: what WooCommerce → KeyCRM costs, measured so that it cannot flatter.

    python bench/push.py [--quick] [--keycrm-latency S] [--woo-write-latency S] …

1. Ingest. ApacheBench (C, `apache2-utils`) posts one signed body for a few seconds at a time to our
   gunicorn and to the durable bare baseline (bench/bare_app.py: the same gunicorn settings, the same
   HMAC check, one fsync'd SQLite insert), in interleaved rounds. Server CPU per request is read from
   /proc (gunicorn's master and workers), so a slow client cannot make either side look fast.
2. Requests per 1,000 changes, cold (the mirror empty: the SKUs are read first, ⌈1000/50⌉ reads + one
   write) and warm (one write), with WOO_URL set against the WooCommerce peer and both latency models
   on. The order poll runs with its defaults; its GET /order is the pull side's cost and is not counted.
3. End to end with WOO_URL: 20 events per SKU for the 1,000 SKUs, from the first POST to the last value
   in KeyCRM (the SKU map, the ledger and the coalescing all run).
4. One change with a free budget: POST → KeyCRM 2xx, samples spaced so the budget stays free.
5. A trickle: 150 edits a minute to distinct SKUs; PUT /offers/stocks per minute once it is steady,
   and each edit's latency.
6. 100 new products whose names differ from KeyCRM's (one PUT /products/{id} each), their stock
   edited at the same time: how soon the stock lands.
The last line is one JSON object (targets: ingest ratios ≥ 0.7, CPU ratio ≤ 1.5, e2e ≥ 10,000 events/s,
≤ 2 and ≤ 21 requests per 1,000 changes, p95 ≤ 2 s, trickle ≤ 20 PUTs a minute with p95 ≤ 5 s,
stock with new products p95 ≤ 5 s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from keycrm_bridge import signing
from keycrm_bridge.simulator.testing import SimulatorProcess, generated_sku
from keycrm_bridge.woo_peer.testing import WooPeerProcess

from _procs import (
    SECRET,
    Latency,
    Web,
    Worker,
    ab,
    add_latency_flags,
    bridge_env,
    event,
    gunicorn_bare,
    latency_of,
    p95,
    post_events,
    wait_until,
)


def body_of(events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"site": "https://shop.test", "events": events}).encode()


def ingest(tmp: Path, seconds: int, rounds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    env = bridge_env(tmp / "ingest.sqlite3", SYNC_MODE="woocommerce")
    ours = Web(env, tmp / "web-ingest.log", workers=2).start()
    bare = gunicorn_bare(tmp, workers=2)
    wait_until(lambda: _up(bare.url), what="bare gunicorn")  # type: ignore[attr-defined]
    try:
        for size, key in ((1, "single"), (100, "batch")):
            body = body_of([event(f"ING-{i}", 5) for i in range(size)])
            headers = signing.signed_headers(SECRET, "POST", "/v1/events", body, time.time())
            runs: dict[str, list[Any]] = {"ours": [], "bare": []}
            for srv in (bare, ours):  # warm both up
                ab(srv.url + "/v1/events", body, headers, 1, srv.proc.pid)  # type: ignore[attr-defined, union-attr]
            for r in range(rounds):
                order = (("bare", bare), ("ours", ours)) if r % 2 == 0 else (("ours", ours), ("bare", bare))
                for name, srv in order:
                    runs[name].append(ab(srv.url + "/v1/events", body, headers, seconds,
                                         srv.proc.pid))  # type: ignore[attr-defined, union-attr]
            o = statistics.median(x.per_s for x in runs["ours"]) * size
            b = statistics.median(x.per_s for x in runs["bare"]) * size
            oc = statistics.median(x.cpu_s_per_request for x in runs["ours"])
            bc = statistics.median(x.cpu_s_per_request for x in runs["bare"])
            print(f"ingest {key:6}: ours {o:8.0f} events/s ({oc * 1000:.2f} ms CPU a request), durable bare "
                  f"{b:8.0f} events/s ({bc * 1000:.2f} ms CPU); ratio {o / b:.2f}, CPU ratio {oc / bc:.2f} "
                  f"({rounds} interleaved rounds of {seconds:g} s, ab -c 8)", flush=True)
            out[f"ingest_ratio_{key}"] = round(o / b, 3)
            out[f"ingest_cpu_ratio_{key}"] = round(oc / bc, 3)
            out[f"events_per_s_{key}"] = round(o, 1)
    finally:
        ours.stop()
        bare.stop()
    return out


def _up(url: str) -> bool:
    try:
        requests.get(url + "/", timeout=1)
        return True
    except requests.RequestException:
        return False


class PushStack:
    """Simulator (latency, 60 a minute), the WooCommerce peer (latency model), gunicorn and the worker."""

    def __init__(self, tmp: Path, skus: list[str], lat: Latency, **env: str) -> None:
        self.sim = SimulatorProcess(latency=lat.keycrm).start()
        self.sim.control.seed(offers=[{"sku": s, "quantity": 5, "reserve": 1} for s in skus])
        self.peer = WooPeerProcess(secret=SECRET, extra_args=lat.peer_args()).start()
        self.peer.control.seed(products=[{"name": f"Product {s}", "sku": s, "regular_price": "10.00",
                                          "manage_stock": True, "stock_quantity": 4} for s in skus])
        # The sweep is the pull direction's idle cost (bench/pull.py): off, so the counts are pushing's.
        self.env = bridge_env(tmp / "push.sqlite3", self.sim.api_url, SYNC_MODE="woocommerce",
                              SWEEP_PAGE_INTERVAL_S="0", WOO_URL=self.peer.url, WOO_CONSUMER_KEY="ck_test",
                              WOO_CONSUMER_SECRET="cs_test", **env)
        self.web = Web(self.env, tmp / "web.log").start()
        self.worker = Worker(self.env, tmp / "worker.log").start()
        self.session = requests.Session()

    def post(self, events: list[dict[str, Any]]) -> None:
        r = post_events(self.web.url, events, session=self.session)
        assert r.status_code == 202, r.text

    def signed_status(self) -> dict[str, Any]:
        headers = signing.signed_headers(SECRET, "GET", "/v1/status", b"", time.time())
        r = self.session.get(self.web.url + "/v1/status", headers=headers, timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def counted(self, since: int) -> list[dict[str, Any]]:
        return [q for q in self.sim.control.requests(since, bodies=False) if q["path"] != "/order"]

    def stop(self) -> None:
        self.worker.stop()
        self.web.stop()
        self.peer.stop()
        self.sim.stop()


def db_bytes(path: str) -> tuple[int, int]:
    """(bytes the database's pages hold, events it keeps), after a checkpoint folds the WAL in."""
    import sqlite3

    c = sqlite3.connect(path, timeout=30)
    c.execute("PRAGMA wal_checkpoint(PASSIVE)")
    pages = c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]
    size = pages * c.execute("PRAGMA page_size").fetchone()[0]
    events = c.execute("SELECT count(*) FROM events").fetchone()[0]
    c.close()
    return size, events


def requests_per_1000(s: PushStack, skus: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r, key in ((0, "requests_per_1000_changes_cold"), (1, "requests_per_1000_changes")):
        since = s.sim.control.last_seq()
        targets = {sku: 10 + r * 7 + i % 5 for i, sku in enumerate(skus)}
        for k in range(0, len(skus), 100):
            s.post([event(sku, targets[sku], product_id=1 + k + j) for j, sku in enumerate(skus[k:k + 100])])
        wait_until(lambda t=targets: s.sim.control.sellable_map(skus) == t, timeout=180, interval=0.2,
                   what="1,000 changes in KeyCRM")
        reqs = s.counted(since)
        out[key] = len(reqs) * 1000 / len(skus)
        print(f"{'cold' if r == 0 else 'warm'}: {len(reqs)} KeyCRM requests for {len(skus)} changes "
              f"({sum(q['method'] == 'PUT' for q in reqs)} PUT, {sum(q['method'] == 'GET' for q in reqs)} GET)",
              flush=True)
    return out


def end_to_end(s: PushStack, skus: list[str], per_sku: int) -> float:
    """Events/s from the first POST to the last value in KeyCRM, WOO_URL set."""
    batches = []
    final = {}
    for v in range(per_sku):
        evs = [event(sku, 100 + v * 3 + i % 3, product_id=1 + i) for i, sku in enumerate(skus)]
        batches += [evs[k:k + 100] for k in range(0, len(evs), 100)]
        final = {sku: 100 + v * 3 + i % 3 for i, sku in enumerate(skus)}
    bodies = [body_of(b) for b in batches]
    host, port = s.web.url.removeprefix("http://").split(":")
    t0 = time.monotonic()

    def send(body: bytes) -> None:
        # http.client, a connection a request as the plugin makes them: requests' own overhead (a
        # millisecond a call) would be the client's CPU taken from the servers on the same two cores.
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", "/v1/events", body,
                         signing.signed_headers(SECRET, "POST", "/v1/events", body, time.time()))
            r = conn.getresponse()
            text = r.read()
            assert r.status == 202, text
        finally:
            conn.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, bodies))
    posted = time.monotonic() - t0
    wait_until(lambda: s.sim.control.sellable_map(skus) == final, timeout=120, interval=0.02, what="e2e")
    took = time.monotonic() - t0
    n = sum(len(b) for b in batches)
    print(f"end to end, WOO_URL set: {n} events ({per_sku} per SKU) posted in {posted:.2f} s, all in KeyCRM "
          f"after {took:.2f} s → {n / took:,.0f} events/s", flush=True)
    return n / took


def single_latency(s: PushStack, skus: list[str], samples: int, spacing_s: float) -> list[float]:
    lat = []
    for i in range(samples):
        t_next = time.monotonic() + spacing_s
        sku, value = skus[i], 300 + i
        t0 = time.monotonic()
        s.post([event(sku, value, product_id=1 + i)])
        wait_until(lambda k=sku, v=value: s.sim.control.sellable(k) == v, timeout=60, interval=0.01,
                   what="latency sample")
        lat.append(time.monotonic() - t0)
        time.sleep(max(0.0, t_next - time.monotonic()))  # spacing keeps the budget free, as the figure says
    return lat


def trickle(s: PushStack, skus: list[str], seconds: float, per_min: int = 150) -> tuple[float, list[float]]:
    """Edits to distinct SKUs at ``per_min``; PUTs a minute over the second half, each edit's latency."""
    step = 60.0 / per_min
    sent: dict[str, tuple[float, int]] = {}
    landed: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() or len(landed) < len(sent):
            waiting = [k for k in list(sent) if k not in landed]
            if waiting:
                now = s.sim.control.sellable_map(waiting)
                t = time.monotonic()
                for k in waiting:
                    if now.get(k) == sent[k][1]:
                        landed[k] = t
            if stop.is_set() and time.monotonic() > stop_at + 30:
                return
            time.sleep(0.05)

    stop_at = 0.0
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    half_mark = 0
    i = 0
    while time.monotonic() - t0 < seconds:
        if not half_mark and time.monotonic() - t0 >= seconds / 2:
            half_mark = s.sim.control.last_seq()
            t_half = time.monotonic()
        sku = skus[i % len(skus)]
        value = 500 + i
        sent[sku] = (time.monotonic(), value)
        landed.pop(sku, None)
        s.post([event(sku, value, product_id=1 + i % len(skus))])
        i += 1
        time.sleep(max(0.0, t0 + i * step - time.monotonic()))
    puts = [q for q in s.sim.control.requests(half_mark, bodies=False)
            if q["method"] == "PUT" and q["path"] == "/offers/stocks"]
    per_min = len(puts) * 60 / (time.monotonic() - t_half)
    stop_at = time.monotonic()
    stop.set()
    watcher.join(timeout=40)
    lat = [landed[k] - sent[k][0] for k in sent if k in landed]
    missing = len(sent) - len(lat)
    assert missing == 0, f"{missing} edits never reached KeyCRM"
    print(f"trickle: {i} edits at {60 / step:.0f} a minute to distinct SKUs → {per_min:.1f} PUT /offers/stocks a "
          f"minute over the second half; edit latency p50 {statistics.median(lat):.2f} s, p95 {p95(lat)} s",
          flush=True)
    return per_min, lat


def new_products(tmp: Path, lat: Latency, n: int) -> list[float]:
    """n products in KeyCRM under other names; the shop sends them (renamed) and edits their stock."""
    skus = [f"NEW-{i:04d}" for i in range(n)]
    (tmp / "new").mkdir(exist_ok=True)
    s = PushStack(tmp / "new", skus, lat)
    try:
        wait_until(lambda: s.signed_status()["orders_checked_at"], timeout=60, what="the worker's first round")
        events, t_sent = [], {}
        for i, sku in enumerate(skus):
            events.append(event(sku, None, type="product.upsert", product_id=5000 + i,
                                product={"type": "simple", "name": f"Shop name {i}"}))
            events.append(event(sku, 40 + i, product_id=5000 + i))
        t0 = time.monotonic()
        s.post(events)
        for sku in skus:
            t_sent[sku] = t0
        done: dict[str, float] = {}
        want = {sku: 40 + i for i, sku in enumerate(skus)}

        def all_in() -> bool:
            now = s.sim.control.sellable_map(skus)
            t = time.monotonic()
            for k, v in want.items():
                if k not in done and now.get(k) == v:
                    done[k] = t
            return len(done) == len(skus)

        wait_until(all_in, timeout=300, interval=0.05, what="the stock of the new products")
        product_puts = sum(1 for q in s.sim.control.requests(0, bodies=False)
                           if q["method"] == "PUT" and q["path"].startswith("/products/"))
        lats = [done[k] - t_sent[k] for k in skus]
        print(f"{n} new products named unlike KeyCRM, stock edited: stock in KeyCRM p50 "
              f"{statistics.median(lats):.2f} s, p95 {p95(lats)} s; {product_puts} PUT /products/{{id}} so far "
              "(the rest follow at the budget's pace)", flush=True)
        return lats
    finally:
        s.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish in under a minute")
    add_latency_flags(ap)
    args = ap.parse_args()
    lat = latency_of(args)
    q = args.quick
    tmp = Path(tempfile.mkdtemp(prefix="bench-push-"))
    print(f"latency models: KeyCRM {lat.keycrm * 1000:.0f} ms a request; WooCommerce {lat.woo_write * 1000:.0f} ms "
          f"a write + {lat.woo_item * 1000:.0f} ms an item, {lat.woo_read * 1000:.0f} ms a read page", flush=True)
    out: dict[str, Any] = {"quick": q}
    out |= ingest(tmp, seconds=1 if q else 4, rounds=1 if q else 3)

    n = 1000
    skus = [generated_sku(i) for i in range(1, n + 1)]
    s = PushStack(tmp, skus, lat)
    try:
        out |= requests_per_1000(s, skus)
        before, events_before = db_bytes(s.env["DATABASE_PATH"])
        out["e2e_events_per_s_woo"] = round(end_to_end(s, skus, 10 if q else 20))
        after, events_after = db_bytes(s.env["DATABASE_PATH"])
        out["bytes_per_retained_event"] = round((after - before) / max(1, events_after - events_before))
        print(f"storage: {out['bytes_per_retained_event']} bytes of database per retained event (event, its "
              "change, history, counters), kept for RETENTION_DAYS", flush=True)
        samples = single_latency(s, skus, 3 if q else 30, spacing_s=2.0 if q else 4.0)
        out["p50_s"], out["p95_s"] = round(statistics.median(samples), 3), p95(samples)
        print(f"one change, free budget, {len(samples)} samples: p50 {out['p50_s']} s, p95 {out['p95_s']} s "
              f"(the 0.3 s debounce and a {lat.keycrm * 1000:.0f} ms KeyCRM answer included)", flush=True)
        per_min, tl = trickle(s, skus, 12.0 if q else 120.0)
        out["trickle_puts_per_min"], out["trickle_p95_s"] = round(per_min, 1), p95(tl)
    finally:
        s.stop()
    out["stock_p95_s_with_new_products"] = p95(new_products(tmp, lat, 100))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
