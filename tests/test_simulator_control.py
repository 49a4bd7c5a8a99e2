"""The KeyCRM simulator's side effects and controls: stock webhooks, faults, the request log,
concurrency, size, reset."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from keycrm_bridge.simulator import generated_sku
from keycrm_bridge.simulator.control_client import SimControl

from sim_fixtures import Sim


class Receiver:
    """A tiny webhook receiver on a free port that records every JSON body."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self._cond = threading.Condition()

        def app(environ: Any, start_response: Any) -> Any:
            req = Request(environ)
            with self._cond:
                self.bodies.append(json.loads(req.get_data()))
                self._cond.notify_all()
            return Response("ok")(environ, start_response)

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.bodies) >= count, timeout)
            return list(self.bodies)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


# ----------------------------------------------------------------- webhooks
def test_webhook_after_each_stock_change(sim: Sim, receiver: Receiver) -> None:
    sim.control.seed(warehouses=[1, 2], offers=[{"sku": "A", "quantity": {1: 5, 2: 4}, "reserve": {1: 1}}])
    sim.control.configure_webhook(url=receiver.url)
    assert (
        sim.put("/offers/stocks", {"warehouse_id": 1, "stocks": [{"sku": "A", "quantity": 6}]}).status_code
        == 202
    )
    bodies = receiver.wait_for(1)
    assert bodies[0] == [{"offer_id": 1, "sku": "A", "in_stock": 10, "in_reserve": 1}]

    sim.control.configure_webhook(warehouses=[1])
    sim.control.receive("A", 2, warehouse_id=1)
    assert receiver.wait_for(2)[1] == [{"offer_id": 1, "sku": "A", "in_stock": 8, "in_reserve": 1}]
    sim.control.create_order({"A": 3})
    assert receiver.wait_for(3)[2] == [{"offer_id": 1, "sku": "A", "in_stock": 8, "in_reserve": 4}]

    # writing the value KeyCRM already has is no stock change: nothing is sent
    sim.put("/offers/stocks", {"warehouse_id": 1, "stocks": [{"sku": "A", "quantity": 8}]})
    assert sim.control.wait_webhooks_idle()["sent"] == 3
    assert len(receiver.bodies) == 3


def test_webhook_delay_follows_the_clock_and_can_be_disabled(sim: Sim, receiver: Receiver) -> None:
    sim.control.seed(offers=[{"sku": "A", "quantity": 1}])
    sim.control.configure_webhook(url=receiver.url, delay=30)
    sim.control.receive("A", 1)
    assert sim.control.webhook_status()["pending"] == 1
    assert receiver.bodies == []
    sim.clock.advance(30)
    assert receiver.wait_for(1)[0][0]["in_stock"] == 2
    sim.control.configure_webhook(enabled=False, delay=0)
    sim.control.receive("A", 1)
    assert sim.control.wait_webhooks_idle()["sent"] == 1
    assert len(receiver.bodies) == 1


def test_webhook_does_not_block_the_api_when_the_receiver_is_down(sim: Sim) -> None:
    sim.control.seed(offers=[{"sku": "A", "quantity": 1}])
    sim.control.configure_webhook(url="http://127.0.0.1:9/unreachable", timeout=1)
    resp = sim.put("/offers/stocks", {"warehouse_id": 1, "stocks": [{"sku": "A", "quantity": 3}]})
    assert resp.status_code == 202
    status = sim.control.wait_webhooks_idle()
    assert status["failed"] == 1 and status["last_error"]


# ------------------------------------------------------------------- faults
def test_fault_injection(sim: Sim) -> None:
    sim.control.seed(1)
    sim.control.set_faults(fail_next=2, error_status=502)
    assert [sim.get("/offers/stocks").status_code for _ in range(3)] == [502, 502, 200]

    def pattern() -> list[int]:
        sim.control.set_faults(error_rate=0.5, error_status=500, seed=7)
        return [sim.get("/offers/stocks").status_code for _ in range(12)]

    first, second = pattern(), pattern()
    assert first == second and 500 in first and 200 in first  # seeded: the same sequence again

    sim.control.clear_faults()
    sim.control.down()
    resp = sim.get("/offers/stocks")
    assert resp.status_code == 503 and resp.json()["message"]
    sim.control.down(False)

    before = sim.clock.now()
    sim.control.set_faults(latency=2.5)
    assert sim.get("/offers/stocks").status_code == 200
    assert sim.clock.now() - before == 2.5  # latency is clock time: a FakeClock just moves on
    sim.control.clear_faults()

    sim.control.set_faults(hang_seconds=5, paths=["/offers/stocks"])
    with pytest.raises(requests.Timeout):
        sim.http.get(sim.handle.api_url + "/offers/stocks", timeout=0.3)
    assert sim.get("/offers").status_code == 200  # other paths are not affected
    sim.control.clear_faults()  # also lets the held request go
    assert sim.get("/offers/stocks").status_code == 200


# -------------------------------------------------------------- request log
def test_request_log(sim: Sim) -> None:
    sim.control.seed(offers=[{"sku": "A", "quantity": 1}])
    sim.clock.advance(10)
    sim.get("/offers/stocks", limit="5", **{"filter[offers_sku]": "A"})
    body = {"warehouse_id": 1, "stocks": [{"sku": "A", "quantity": 4}]}
    sim.put("/offers/stocks", body)
    entries = sim.control.requests()
    assert [e["seq"] for e in entries] == [1, 2]
    get, put = entries
    assert get["query"] == {"limit": "5", "filter[offers_sku]": "A"}
    assert (get["method"], get["path"], get["status"], get["time"]) == (
        "GET",
        "/offers/stocks",
        200,
        1_800_000_010,
    )
    assert put["body"] == body and put["status"] == 202 and put["applied"] == 1
    assert sim.control.requests(since=1) == [put]
    assert "body" not in sim.control.requests(bodies=False)[1]
    sim.control.clear_requests()
    sim.get("/offers")
    assert [e["seq"] for e in sim.control.requests()] == [3]


def test_concurrent_changes_are_not_lost(sim: Sim) -> None:
    sim.control.seed(offers=[{"sku": "A", "quantity": 0}])

    def bump() -> None:
        control = SimControl(sim.handle.url)
        for _ in range(25):
            control.receive("A", 1)
        control.close()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sim.control.truth(["A"])["A"]["quantity"] == 100


def test_large_catalogue_stays_fast(sim: Sim) -> None:
    """100,000 SKUs: a 10,000-row write and a filtered page cost what their rows cost, not the catalogue."""
    sim.control.seed(100_000, warehouses=[1, 2], quantity=3)
    rows = [{"sku": generated_sku(i), "quantity": 5} for i in range(90_001, 100_001)]
    start = time.perf_counter()
    assert sim.put("/offers/stocks", {"warehouse_id": 2, "stocks": rows}).status_code == 202
    skus = ",".join(generated_sku(i) for i in range(99_951, 100_001))
    page = sim.get("/offers/stocks", limit="50", **{"filter[offers_sku]": skus, "filter[details]": "true"})
    last = sim.get("/offers/stocks", limit="50", page="2000")
    elapsed = time.perf_counter() - start
    assert [r["quantity"] for r in page.json()["data"]] == [8] * 50
    assert last.json()["data"][-1]["sku"] == generated_sku(100_000)
    assert elapsed < 3.0


def test_reset_empties_everything_but_configuration(sim: Sim) -> None:
    sim.control.seed(3)
    sim.get("/offers")
    sim.control.set_faults(fail_next=5)
    sim.control.reset()
    health = sim.control.health()
    assert (health["offers"], health["orders"]) == (0, 0)
    assert sim.control.faults()["fail_next"] == 0
    assert sim.control.requests() == []
    assert sim.get("/offers").json()["total"] == 0
