"""S8 end to end: ten minutes of load on an accelerated clock shared by the simulator and the bridge."""

import random
import threading
import time

import requests

from keycrm_bridge.clock import AcceleratedClock
from keycrm_bridge.simulator.testing import SimulatorProcess

from bridge import Web, Worker, bridge_env, event, post_events, wait_until

FACTOR = 15.0          # 10 simulated minutes in 40 real seconds
MINUTES = 10
BUDGET = 60
# Request arrival times are read in the simulator, a few real milliseconds after the bridge's
# budget admitted the call; that transport jitter, scaled by FACTOR, is the only slack allowed.
JITTER_S = 1.0


def test_s8_no_window_over_budget_and_retry_after_honoured(tmp_path):
    origin = time.time()
    spec = f"accelerated:{FACTOR}:{origin}"
    clock = AcceleratedClock(FACTOR, origin)
    skus = [f"R-{i}" for i in range(500)]
    with SimulatorProcess(clock=spec, rate=BUDGET) as sim:
        sim.control.seed(offers=[{"sku": s, "quantity": 0} for s in skus])
        env = bridge_env(tmp_path / "db.sqlite3", sim.api_url, KEYCRM_BRIDGE_CLOCK=spec,
                         KEYCRM_RATE_PER_MINUTE=str(BUDGET), KEYCRM_STOCK_MAX_AGE_S="0",
                         PUSH_DEBOUNCE_S="0.3", PUSH_MAX_WAIT_S="1")
        web = Web(env, tmp_path / "web.log").start()
        worker = Worker(env, tmp_path / "worker.log").start()
        since = sim.control.last_seq()
        start = clock.now()
        stop = threading.Event()
        rng = random.Random(8)
        latest: dict[str, int] = {}

        def foreign():
            # Another integration on the same KeyCRM key: it eats into the limit, so the bridge meets 429s.
            s = requests.Session()
            while not stop.is_set():
                s.get(sim.api_url + "/offers", params={"filter[sku]": "FOREIGN", "limit": 1},
                      headers={"Authorization": "Bearer sim-key"}, timeout=10)
                time.sleep(rng.uniform(0.05, 0.4))

        t = threading.Thread(target=foreign)
        t.start()
        try:
            v = 0
            while clock.now() - start < MINUTES * 60:
                v += 1
                batch = [event(s, v, occurred_at=clock.now()) for s in rng.sample(skus, 20)]
                assert post_events(web.url, batch, now=clock.now()).status_code == 202
                latest.update({e["sku"]: v for e in batch})
                time.sleep(0.05)  # pacing the shop's edits
        finally:
            stop.set()
            t.join()
        log = sim.control.requests(since, bodies=False)
        ours = [r for r in log if not (r["path"] == "/offers" and "FOREIGN" in str(r["query"]))]
        times = sorted(r["time"] for r in ours)
        assert len(ours) >= 300, f"the bridge made only {len(ours)} calls: the budget was never under load"
        j = 0
        worst = 0
        for i, t0 in enumerate(times):
            while j < len(times) and times[j] < t0 + 60 - JITTER_S:
                j += 1
            worst = max(worst, j - i)
        assert worst <= BUDGET, f"a 60-second window held {worst} calls"
        limited = [r for r in ours if r["status"] == 429]
        assert limited, "the foreign load never pushed the bridge into a 429"
        for r in limited:
            too_soon = [x for x in ours if r["time"] < x["time"] < r["time"] + r["retry_after"] - JITTER_S]
            assert not too_soon, f"called again {too_soon[0]['time'] - r['time']:.2f}s after a 429 with Retry-After {r['retry_after']}"
        print(f"\nS8: {len(ours)} bridge calls in {MINUTES} simulated minutes, busiest window {worst}/{BUDGET}, "
              f"{len(limited)} answered 429, all waited out")
        # And the load was not lost: every SKU ends at its last value.
        wait_until(lambda: sim.control.sellable_map(skus) == {s: latest.get(s, 0) for s in skus}, timeout=120,
                   what="final values after the load")
        worker.stop()
        web.stop()
