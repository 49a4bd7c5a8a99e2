"""GET /metrics: real gunicorn (two processes) + worker + the KeyCRM simulator, parsed by prometheus_client.

The web app and the worker below are the production ones, started the way `keycrm-bridge web` and
`keycrm-bridge worker` start them, plus the two metrics hooks (`register_metrics` on the app and a
counting session on the KeyCRM client). Both hooks are no-ops once api.py / wiring.py install them.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections import Counter
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.config import load_settings
from keycrm_bridge.ledger import Ledger
from keycrm_bridge.metrics import CONTENT_TYPE, RecordingSession, StoreCollector, endpoint_name, register_metrics
from keycrm_bridge.simulator.testing import SimulatorProcess
from keycrm_bridge.store import Store

from bridge import Proc, approve_first_sync, bridge_env, event, free_port, get_status, post_events, wait_until

TESTS = Path(__file__).resolve().parent


# -- the processes ------------------------------------------------------------------------------


def wsgi_app():
    """gunicorn factory (``test_metrics:wsgi_app()``): the production app with /metrics."""
    from keycrm_bridge.wsgi import app

    ext = app.extensions["keycrm_bridge"]
    register_metrics(app, ext["store"], ext["settings"], ext["clock"])
    return app


def run_worker() -> int:
    """`keycrm-bridge worker`, with the KeyCRM client counting its calls by status."""
    from keycrm_bridge import cli, wiring

    plain = wiring.make_keycrm

    def make_keycrm(settings, *args, **kwargs):
        client = plain(settings, *args, **kwargs)
        if not isinstance(client.session, RecordingSession):
            client.session = RecordingSession(settings.database_path, settings.keycrm_base_url)
        return client

    wiring.make_keycrm = make_keycrm
    return cli.main(["worker"])


class MetricsWeb(Proc):
    def __init__(self, env: dict[str, str], log: Path) -> None:
        from keycrm_bridge.cli import gunicorn_args

        self.port = free_port()
        env = {**env, "BIND": f"127.0.0.1:{self.port}", "WEB_WORKERS": "2"}
        args = gunicorn_args(load_settings(env))
        assert args[-1] == "keycrm_bridge.wsgi:app"
        super().__init__([sys.executable, "-m", "gunicorn", "--pythonpath", str(TESTS), *args[:-1],
                          "test_metrics:wsgi_app()"], env, log)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> MetricsWeb:
        super().start()

        def up() -> bool:
            try:
                return requests.get(self.url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
                return False

        wait_until(up, what="gunicorn /healthz")
        return self


def start_worker(env: dict[str, str], log: Path) -> Proc:
    approve_first_sync(env)
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_metrics; sys.exit(test_metrics.run_worker())"
    return Proc([sys.executable, "-c", code], env, log).start()


# -- reading the output -------------------------------------------------------------------------


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """family name -> {sorted label pairs -> value}, through prometheus_client's own parser."""
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == CONTENT_TYPE
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        assert family.name.startswith("keycrm_bridge_"), family.name
        samples = out.setdefault(family.name, {})
        for s in family.samples:
            samples[tuple(sorted(s.labels.items()))] = s.value
    return out


def one(fams, name: str, **labels: str) -> float:
    return fams[name][tuple(sorted(labels.items()))]


EXPECTED = {
    "keycrm_bridge_info", "keycrm_bridge_queue_depth", "keycrm_bridge_oldest_pending_age_seconds",
    "keycrm_bridge_changes", "keycrm_bridge_unmatched_skus", "keycrm_bridge_events_received",
    "keycrm_bridge_keycrm_calls", "keycrm_bridge_keycrm_calls_last_minute", "keycrm_bridge_keycrm_budget_per_minute",
    "keycrm_bridge_keycrm_budget_left", "keycrm_bridge_keycrm_budget_used_last_minute",
    "keycrm_bridge_keycrm_blocked_seconds", "keycrm_bridge_sync_lag_seconds",
    "keycrm_bridge_last_sync_timestamp_seconds", "keycrm_bridge_resync_done_items", "keycrm_bridge_resync_total_items",
    "keycrm_bridge_resync_progress_ratio", "keycrm_bridge_resync_phase", "keycrm_bridge_guard_held_cycles",
}


# -- tests --------------------------------------------------------------------------------------


def test_metrics_after_a_real_push(tmp_path):
    skus = [f"M-{i}" for i in range(5)]
    with SimulatorProcess() as sim:
        sim.control.seed(offers=[{"sku": s, "quantity": 10, "reserve": 1} for s in skus])
        db = tmp_path / "db.sqlite3"
        env = bridge_env(db, sim.api_url, PUSH_DEBOUNCE_S="0.05", PUSH_MAX_WAIT_S="0.2")
        web = MetricsWeb(env, tmp_path / "web.log").start()
        worker = start_worker(env, tmp_path / "worker.log")
        try:
            t0 = time.time()
            targets = {s: 3 + i for i, s in enumerate(skus)}
            r = post_events(web.url, [event(s, q) for s, q in targets.items()] + [event("M-UNKNOWN", 4)])
            assert r.status_code == 202
            wait_until(lambda: sim.control.sellable_map(skus) == targets, what="KeyCRM sellable = WooCommerce")
            wait_until(lambda: get_status(web.url)["queue_depth"] == 0, what="queue drained")

            fams = scrape(web.url)
            assert EXPECTED <= set(fams), EXPECTED - set(fams)
            assert one(fams, "keycrm_bridge_info", version="0.1.0", mode="woocommerce") == 1
            assert one(fams, "keycrm_bridge_queue_depth") == 0
            assert one(fams, "keycrm_bridge_oldest_pending_age_seconds") == 0
            assert one(fams, "keycrm_bridge_changes", status="done") >= len(skus)
            assert one(fams, "keycrm_bridge_events_received") == len(skus) + 1
            assert one(fams, "keycrm_bridge_unmatched_skus", side="woocommerce") == 1

            # Calls by endpoint and status: exactly what the simulator saw, as the worker is its only client;
            # the budget's shared table holds every call of the last minute. The worker's read lane keeps
            # running, so a call can be between its slot, the simulator and its count: compare the two at
            # a moment with none in flight.
            def calls_agree():
                fams = scrape(web.url)
                seen = Counter((r["method"] + " " + re.sub(r"/\d+(?=/|$)", "/{id}", r["path"]), str(r["status"]))
                               for r in sim.control.requests(0, bodies=False))
                counted = {(dict(k)["endpoint"], dict(k)["status"]): v
                           for k, v in fams["keycrm_bridge_keycrm_calls"].items()}
                used = one(fams, "keycrm_bridge_keycrm_budget_used_last_minute")
                agree = counted == dict(seen) and used == sum(seen.values())
                return (fams, seen, counted, used) if agree else None

            fams, seen, counted, used = wait_until(calls_agree, what="calls counted = calls the simulator saw")
            assert counted[("PUT /offers/stocks", "202")] >= 1
            assert counted[("GET /offers/stocks", "200")] >= 1
            assert used == sum(fams["keycrm_bridge_keycrm_calls_last_minute"].values())
            assert one(fams, "keycrm_bridge_keycrm_calls_last_minute", endpoint="PUT /offers/stocks",
                       priority="write") == seen[("PUT /offers/stocks", "202")]
            assert one(fams, "keycrm_bridge_keycrm_budget_per_minute") == 60
            assert one(fams, "keycrm_bridge_keycrm_budget_left", priority="write") == 60 - used
            assert one(fams, "keycrm_bridge_keycrm_budget_left", priority="read") == 50 - used
            assert one(fams, "keycrm_bridge_keycrm_blocked_seconds") == 0

            # Lag: nothing waits; the push happened during this test; woocommerce mode never pulls.
            assert one(fams, "keycrm_bridge_sync_lag_seconds", direction="push") == 0
            assert one(fams, "keycrm_bridge_sync_lag_seconds", direction="pull") == 0
            assert t0 <= one(fams, "keycrm_bridge_last_sync_timestamp_seconds", direction="push") <= time.time()
            assert one(fams, "keycrm_bridge_last_sync_timestamp_seconds", direction="pull") == 0
            # No resync and no guard yet: zeros.
            assert one(fams, "keycrm_bridge_resync_done_items") == one(fams, "keycrm_bridge_resync_total_items") == 0
            assert one(fams, "keycrm_bridge_resync_progress_ratio") == 0
            assert one(fams, "keycrm_bridge_resync_phase", phase="none") == 1
            assert one(fams, "keycrm_bridge_guard_held_cycles") == 0

            # With the worker stopped, changes wait; every web process reports the same queue.
            worker.stop()
            before = time.time()
            assert post_events(web.url, [event(s, 1) for s in skus[:3]]).status_code == 202
            for _ in range(6):
                fams = scrape(web.url)
                assert one(fams, "keycrm_bridge_queue_depth") == 3
                age = one(fams, "keycrm_bridge_oldest_pending_age_seconds")
                assert 0 <= age <= time.time() - before + 1
                assert one(fams, "keycrm_bridge_sync_lag_seconds", direction="push") == age

            # What the pull path, the resync and the guard write into the store shows up as they write it.
            store = Store(str(db))
            store.set_meta("last_pull_at", time.time() - 42)
            store.set_meta("resync", {"phase": "apply", "done": 30, "total": 120})
            for i in range(3):
                Ledger(store).hold([f"H-{i}"], {"reason": "test"}, time.time())
            store.close()
            fams = scrape(web.url)
            # woocommerce mode: the shop shows no KeyCRM values, so nothing of it can be stale.
            assert one(fams, "keycrm_bridge_sync_lag_seconds", direction="pull") == 0
            assert time.time() - 100 < one(fams, "keycrm_bridge_last_sync_timestamp_seconds", direction="pull") <= \
                time.time() - 42
            assert one(fams, "keycrm_bridge_resync_done_items") == 30
            assert one(fams, "keycrm_bridge_resync_total_items") == 120
            assert one(fams, "keycrm_bridge_resync_progress_ratio") == 0.25
            assert one(fams, "keycrm_bridge_resync_phase", phase="apply") == 1
            assert one(fams, "keycrm_bridge_guard_held_cycles") == 3
        finally:
            worker.stop()
            web.stop()


def test_pull_lag_is_infinite_in_a_pulling_mode_that_never_pulled(tmp_path):
    settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 20, "KEYCRM_API_KEY": "k", "KEYCRM_WRITE_WAREHOUSE_ID": "1",
                              "DATABASE_PATH": str(tmp_path / "db.sqlite3"), "SYNC_MODE": "two-way"})
    store = Store(settings.database_path)
    clock = FakeClock(1_800_000_000.0)
    collector = StoreCollector(lambda: store, settings, clock)
    lag = {tuple(s.labels.values()): s.value for f in collector.collect()
           if f.name == "keycrm_bridge_sync_lag_seconds" for s in f.samples}
    assert lag[("push",)] == 0 and math.isinf(lag[("pull",)])
    ledger = Ledger(store)
    # A quiet shop is not a lagging one: KeyCRM confirmed A 5 s ago and B 40 s ago, B's value is the stalest.
    ledger.observe_keycrm({"A": 3.0, "B": 4.0}, clock.now() - 40, "sweep")
    ledger.clean(["A", "B"], ledger.dirty())
    ledger.observe_keycrm({"A": 3.0}, clock.now() - 5, "sweep")
    ledger.clean(["A"], ledger.dirty())
    store.set_meta("last_pull_at", clock.now() - 3600)
    first = ledger.hold(["H-1"], {"reason": "test"}, clock.now())
    ledger.hold(["H-2"], {"reason": "test"}, clock.now())

    def pull_lag():
        fams = {f.name: f.samples for f in collector.collect()}
        return [s.value for s in fams["keycrm_bridge_sync_lag_seconds"] if s.labels["direction"] == "pull"], fams
    lags, fams = pull_lag()
    assert lags == [40.0]
    assert fams["keycrm_bridge_guard_held_cycles"][0].value == 2
    # A KeyCRM change not yet in the shop counts from when it was seen.
    ledger.observe_keycrm({"A": 9.0}, clock.now() - 100, "webhook")
    assert pull_lag()[0] == [100.0]
    # The guard metric follows the hold: a confirmed (then applied) cycle is no longer held.
    ledger.set_hold_status(first, "confirmed", clock.now())
    assert pull_lag()[1]["keycrm_bridge_guard_held_cycles"][0].value == 1


def test_endpoint_names_match_the_budget_names():
    base = "https://openapi.keycrm.app/v1"
    assert endpoint_name("get", base + "/offers/stocks?limit=50", base) == "GET /offers/stocks"
    assert endpoint_name("PUT", base + "/products/17", base) == "PUT /products/{id}"
    assert endpoint_name("POST", base + "/products/17/offers", base) == "POST /products/{id}/offers"
