"""ERP intake benchmark: parsing speed and memory, KeyCRM writes per package, MoySklad latency.

    python bench/erp.py [--quick]

(a) ``offers_per_s``: read + stage + diff of a 10,000-offer 1C package (2 warehouses), in process,
    against a KeyCRM that answers at once — next to ``baseline_iterparse_offers_per_s``, a bare
    stdlib ``iterparse`` of the same file measured in the same run;
(b) ``peak_rss_mb_100k``: peak memory of a fresh process reading and applying a 100,000-offer
    full package (target ≤ 150), and its ``offers_per_s_100k`` (no slower per offer than 10,000);
(c) ``keycrm_puts_full_10k`` / ``keycrm_puts_repeat``: ``PUT /offers/stocks`` calls a real bridge
    makes for a chunked, zipped 10,000-offer full exchange from the 1C client double, then for the
    same package again (targets ≤ 1 per warehouse, and 0); ``max_request_s``: the longest answer the
    1C client got (≤ 5);
(d) ``moysklad_webhook_to_woo_p95_s``: from MoySklad's webhook leaving the stand-in to the new stock
    in WooCommerce, free budgets (≤ 3).
``--quick`` (under a minute) runs the 1C and MoySklad stands side by side and the MoySklad part
with 10 changes instead of 40; the full run measures one thing at a time. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from keycrm_bridge.erp.doubles.cml import build_exchange, catalogue, iter_catalogue, write_offers
from keycrm_bridge.erp.doubles.moysklad_testing import MoySkladProcess

import _procs  # noqa: F401 - puts tests/ on the path
from _procs import wait_until
from erp_stack import WAREHOUSES, ErpStack


class NullKeyCRM:
    """A KeyCRM that takes every write at once (the in-process parts measure the bridge, not HTTP)."""

    def __init__(self) -> None:
        self.puts = 0

    def put_stocks(self, warehouse_id: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.puts += 1
        return [{"status": True}]

    def iter_stocks(self, skus=None, offer_ids=None, details=True):
        return iter(())


def bare_iterparse(path: Path, n: int) -> float:
    """The same file through the stdlib's C iterparse, each offer dropped when read: the floor."""
    t0 = time.perf_counter()
    count = 0
    for _, el in ET.iterparse(path):  # noqa: S314 - our own file
        if el.tag == "Предложение":
            count += 1
            el.clear()
    assert count == n
    return n / (time.perf_counter() - t0)


def in_process(n: int, tmp: Path, baseline: bool = True) -> dict[str, float]:
    from keycrm_bridge.clock import SystemClock
    from keycrm_bridge.config import load_settings
    from keycrm_bridge.erp.jobs import ErpStage
    from keycrm_bridge.ledger import Ledger
    from keycrm_bridge.store import Store
    from keycrm_bridge.sync import SyncEngine

    path = tmp / f"offers-{n}.xml"
    with open(path, "wb") as fh:
        write_offers(fh, iter_catalogue(n, list(WAREHOUSES)), WAREHOUSES)
    settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k", "KEYCRM_WRITE_WAREHOUSE_ID": "1",
                              "KEYCRM_READ_WAREHOUSE_IDS": "1,2", "SYNC_MODE": "erp", "ERP": "1c",
                              "ERP_1C_USER": "u", "ERP_1C_PASSWORD": "p" * 12,
                              "ERP_WAREHOUSE_MAP": "wh-main:1,wh-shop:2", "DATABASE_PATH": str(tmp / f"b{n}.sqlite3")})
    store = Store(settings.database_path)
    clock = SystemClock()
    kc = NullKeyCRM()
    ledger = Ledger(store)

    class E:  # the parts of Engines the stage uses
        pass
    e = E()
    e.store, e.ledger, e.keycrm = store, ledger, kc  # type: ignore[attr-defined]
    e.sync = SyncEngine(store, ledger, kc, settings, clock)  # type: ignore[attr-defined]
    from keycrm_bridge import approval
    approval.approve(store, settings, clock.now(), "bench")  # as after the owner's first review
    stage = ErpStage(settings, e, clock)  # type: ignore[arg-type]
    started = time.perf_counter()
    rep = stage.intake.read_file(1, path, clock.now())
    out = stage.commit(1, 1, rep.as_dict())
    took = time.perf_counter() - started
    assert out["rows_written"] > 0
    return {"offers_per_s": n / took, "baseline": bare_iterparse(path, n) if baseline else 0.0, "puts": kc.puts}


def rss_child(n: int, tmp: Path) -> subprocess.Popen[str]:
    """A fresh process reading and applying an ``n``-offer package; it prints its speed and peak RSS (KiB)."""
    code = ("import sys, json, resource; sys.path.insert(0, 'bench'); sys.argv=['x']; import erp; "
            "from pathlib import Path; "
            f"r = erp.in_process({n}, Path({str(tmp)!r}), baseline=False); "
            "print(json.dumps({'offers_per_s': r['offers_per_s'], "
            "'rss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])


def child_result(child: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = child.communicate(timeout=900)
    assert child.returncode == 0, out
    r = json.loads(out.strip().splitlines()[-1])
    return {"offers_per_s": float(r["offers_per_s"]), "peak_mb": int(r["rss_kib"]) / 1024}


def onec_exchange(tmp: Path, settle: bool = True) -> dict[str, float]:
    """The full exchange, then the same again. ``settle``: before the repeat, wait until the bridge
    also looked up every offer it wrote and WooCommerce followed (else only until the package is
    applied: the repeat then meets those reads still running)."""
    st = ErpStack(tmp / "1c").start(10_000, [f"ERP-{i:06d}" for i in range(1, 51)])
    try:
        offers = catalogue(10_000, list(WAREHOUSES))
        files = build_exchange(tmp / "pkg", offers, WAREHOUSES)
        out: dict[str, float] = {}
        longest = 0.0
        for label in ("full", "repeat"):
            before = st.sim.control.last_seq()
            ex = st.onec().run(files, chunk=256 * 1024)
            if settle:
                st.wait_erp_idle(120)
            else:
                wait_until(lambda: st.status()["erp"]["jobs_waiting"] == 0, timeout=120)
            longest = max(longest, ex.max_request_s)
            out[label] = len(st.stock_puts(before))
        out["max_request_s"] = longest
        return out
    finally:
        st.stop()


def moysklad_latency(tmp: Path, changes: int) -> float:
    ms = MoySkladProcess().start()
    hook = "bench-moysklad-hook-0123456789"
    ms.seed({"st-main": "Основной", "st-shop": "Магазин"},
            [{"id": f"00000000-0000-0000-0000-{i:012d}", "article": f"ERP-{i:06d}", "stock": {"st-main": 1}}
             for i in range(1, 201)])
    st = ErpStack(tmp / "ms", erp="moysklad", MOYSKLAD_TOKEN=ms.token, MOYSKLAD_BASE_URL=ms.api_url,
                  MOYSKLAD_WEBHOOK_TOKEN=hook, MOYSKLAD_POLL_INTERVAL_S="0", ERP_WAREHOUSE_MAP="st-main:1,st-shop:2")
    try:
        woo = [f"ERP-{i:06d}" for i in range(1, 51)]
        st.start(200, woo)
        wait_until(lambda: (st.status()["erp"]["last_package"] or {}).get("read") == "reconcile", timeout=90)
        st.wait_erp_idle(60)
        ms.config(webhook_url=f"{st.web.url}/v1/erp/moysklad/webhook/{hook}")
        lat = []
        for k in range(changes):
            sku = woo[k % len(woo)]
            target = 100 + k
            t0 = time.monotonic()
            ms.change([{"article": sku, "store": "st-main", "stock": target}])
            wait_until(lambda s=sku, t=target: st.woo_stock(s) == t, timeout=30, interval=0.02)
            lat.append(time.monotonic() - t0)
        lat.sort()
        return lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
    finally:
        st.stop()
        ms.stop()


def phase(what: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {what} done", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="finish in under a minute: the 1C and MoySklad stands run side by side, 10 MoySklad changes")
    args = ap.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "rss").mkdir()
        speed = in_process(10_000, tmp)  # alone: nothing else shares the CPU while it is timed
        phase("10k parse + diff", started)
        child = rss_child(100_000, tmp / "rss")  # its own process, its own peak; runs beside the stands
        if args.quick:
            # Two independent stands (own processes, own databases): their figures are latencies far
            # under their bars, so side by side they still say whether the bar holds.
            with ThreadPoolExecutor(2) as pool:
                onec_f, ms_f = pool.submit(onec_exchange, tmp, False), pool.submit(moysklad_latency, tmp, 10)
                onec, p95 = onec_f.result(), ms_f.result()
            phase("1C and MoySklad stands", started)
            big = child_result(child)
        else:
            big = child_result(child)
            phase("100k package", started)
            onec = onec_exchange(tmp)
            phase("1C stand", started)
            p95 = moysklad_latency(tmp, 40)
        phase("all", started)
    out = {"offers_per_s": round(speed["offers_per_s"]), "baseline_iterparse_offers_per_s": round(speed["baseline"]),
           "offers_per_s_100k": round(big["offers_per_s"]),
           "peak_rss_mb_100k": round(big["peak_mb"], 1), "keycrm_puts_full_10k": onec["full"],
           "keycrm_puts_repeat": onec["repeat"], "moysklad_webhook_to_woo_p95_s": round(p95, 3),
           "max_request_s": round(onec["max_request_s"], 3), "warehouses": 2, "quick": args.quick,
           "bench_s": round(time.monotonic() - started, 1), "load_average_1m": round(os.getloadavg()[0], 1)}
    print(f"parse+diff {out['offers_per_s']} offers/s (bare iterparse {out['baseline_iterparse_offers_per_s']}); "
          f"100k package {out['offers_per_s_100k']} offers/s, peak {out['peak_rss_mb_100k']} MB; PUTs "
          f"{out['keycrm_puts_full_10k']} then {out['keycrm_puts_repeat']}; MoySklad→Woo p95 "
          f"{out['moysklad_webhook_to_woo_p95_s']} s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
