"""Latency histograms of /metrics over the whole bridge (two-way, over loopback): a shop edit moves
``push_latency_seconds`` (shop change → KeyCRM's 2xx) and a KeyCRM receiving moves
``pull_latency_seconds`` (KeyCRM change seen → WooCommerce write applied), in Prometheus form; the
worker's heartbeat (``lane_heartbeat_age_seconds``) is fresh for every lane and goes stale once the
worker stops."""

import math

import requests
from prometheus_client.parser import text_string_to_metric_families

from keycrm_bridge import latency
from keycrm_bridge.store import Store
from keycrm_bridge.worker import LANES

from bridge import wait_until
from stack import Stack, simple


def histograms(url: str) -> dict[str, dict[str, float]]:
    """direction -> {"count", "sum", "le=<bound>"...} from the scrape, through prometheus_client's parser."""
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    out: dict[str, dict[str, float]] = {}
    for fam in text_string_to_metric_families(r.text):
        for d in ("push", "pull"):
            if fam.name == f"keycrm_bridge_{d}_latency_seconds":
                assert fam.type == "histogram"
                for s in fam.samples:
                    key = s.name.rsplit("_", 1)[1] if "le" not in s.labels else f"le={s.labels['le']}"
                    out.setdefault(d, {})[key] = s.value
    return out


def heartbeats(url: str) -> dict[str, float]:
    text = requests.get(url + "/metrics", timeout=10).text
    return {s.labels["lane"]: s.value for fam in text_string_to_metric_families(text)
            if fam.name == "keycrm_bridge_lane_heartbeat_age_seconds" for s in fam.samples}


def test_a_change_each_way_moves_its_histogram(tmp_path):
    stack = Stack(tmp_path, "two-way").start([{"sku": "L-1", "quantity": 10}], [simple("L-1", 10)])
    try:
        stack.settle(timeout=60)
        before = histograms(stack.web.url)
        assert set(before) == {"push", "pull"}
        assert before["push"]["le=+Inf"] == before["push"]["count"]

        stack.peer.control.set_stock(13, sku="L-1")
        wait_until(lambda: stack.kc_sellable("L-1") == 13, timeout=30, what="the shop edit in KeyCRM")
        pushed = wait_until(lambda: (lambda h: h if h["push"]["count"] > before["push"]["count"] else None)(
            histograms(stack.web.url)), timeout=30, what="the push histogram moved")
        assert pushed["push"]["count"] == before["push"]["count"] + 1
        assert 0 <= pushed["push"]["sum"] - before["push"]["sum"] < 60
        assert pushed["pull"]["count"] == before["pull"]["count"], "a push counted as a pull"

        stack.sim.control.receive("L-1", 4)
        wait_until(lambda: stack.woo_stock("L-1") == 17, timeout=30, what="the receiving in WooCommerce")
        pulled = wait_until(lambda: (lambda h: h if h["pull"]["count"] > pushed["pull"]["count"] else None)(
            histograms(stack.web.url)), timeout=30, what="the pull histogram moved")
        assert pulled["pull"]["count"] == pushed["pull"]["count"] + 1
        assert pulled["pull"]["le=+Inf"] == pulled["pull"]["count"]
        assert pulled["pull"]["le=60"] == pulled["pull"]["count"], "a loopback change took over a minute"

        beats = heartbeats(stack.web.url)
        assert set(beats) == {name for name, _, _ in LANES} - {"erp"} and max(beats.values()) < 30, beats
        stack.worker.stop()
        wait_until(lambda: min(heartbeats(stack.web.url).values()) > 3, timeout=30, what="the heartbeat going stale")
    finally:
        stack.stop()


def test_buckets_are_cumulative_and_the_sum_adds_up(tmp_path):
    store = Store(str(tmp_path / "db.sqlite3"))
    with store.transaction() as c:
        latency.record_both(c, [0.2, 0.7, 4.0, -1.0], [1200.0])
    buckets, total = latency.histogram(store.conn, "push")
    got = dict(buckets)
    assert (got["0.25"], got["0.5"], got["1"], got["5"], got["+Inf"]) == (2, 2, 3, 4, 4)
    assert math.isclose(total, 4.9)
    pull = dict(latency.histogram(store.conn, "pull")[0])
    assert (pull["900"], pull["3600"], pull["+Inf"]) == (0, 1, 1)
