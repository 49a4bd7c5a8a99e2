"""The KeyCRM simulator: spec validation, shapes, stock arithmetic, budget, webhooks, faults, log."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.simulator import ServerHandle, SimState, SimulatorOptions, generated_sku, serve_in_thread
from keycrm_bridge.simulator.control_client import SimControl, SimControlError
from keycrm_bridge.simulator.validation import get_validator

AUTH = {"Authorization": "Bearer sim-key"}


class Sim:
    def __init__(self, handle: ServerHandle, clock: FakeClock) -> None:
        self.handle = handle
        self.clock = clock
        self.control = SimControl(handle.url)
        self.http = requests.Session()
        self.http.headers.update(AUTH)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.handle.api_url + path, params=params, timeout=10)

    def put(self, path: str, body: Any) -> requests.Response:
        return self.http.put(self.handle.api_url + path, json=body, timeout=10)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.http.post(self.handle.api_url + path, json=body, timeout=10)


def start_sim(**options: Any) -> Sim:
    clock = FakeClock()
    opts = SimulatorOptions(**{"rate_limit": 0, **options})
    return Sim(serve_in_thread(SimState(clock), clock, opts), clock)


@pytest.fixture
def sim() -> Iterator[Sim]:
    s = start_sim()
    yield s
    s.control.close()
    s.handle.stop()


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


# --------------------------------------------------------------- validation
def _validate(method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> Any:
    raw = json.dumps(body).encode() if body is not None else None
    return get_validator().validate(method, path, query or {}, AUTH, raw, "application/json")


def test_spec_accepts_the_documented_stock_write() -> None:
    result = _validate(
        "PUT", "/offers/stocks", body={"warehouse_id": 1, "stocks": [{"sku": "A", "quantity": 5}]}
    )
    assert result.ok, result.errors
    assert result.operation_id == "offersStocksUpdate"
    assert result.body == {"warehouse_id": 1, "stocks": [{"sku": "A", "quantity": 5}]}


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "field"),
    [
        ("PUT", "/offers/stocks", None, {"stocks": [{"sku": "A", "quantity": 5}]}, ""),
        (
            "PUT",
            "/offers/stocks",
            None,
            {"warehouse_id": 1, "stocks": [{"sku": "A", "quantity": "five"}]},
            "stocks.0.quantity",
        ),
        ("GET", "/offers/stocks", {"limit": "51"}, None, "limit"),
        ("POST", "/products", None, {"description": "no name"}, ""),
        ("PUT", "/offers/stocks", None, None, ""),
    ],
)
def test_spec_rejects(method: str, path: str, query: dict[str, str] | None, body: Any, field: str) -> None:
    result = _validate(method, path, query, body)
    assert result.status == 422
    assert any(e.get("field", "") == field for e in result.errors), result.errors


def test_spec_rejects_over_http_with_json_422(sim: Sim) -> None:
    resp = sim.put("/offers/stocks", {"warehouse_id": 1, "stocks": [{"sku": "A", "quantity": "x"}]})
    assert resp.status_code == 422
    body = resp.json()
    assert body["message"] and body["errors"][0]["field"] == "stocks.0.quantity"
    assert sim.get("/offers/stocks", limit="51").status_code == 422
    assert sim.post("/products", {"sku": "A"}).status_code == 422


def test_stock_write_over_10000_rows_is_rejected() -> None:
    rows = [{"sku": f"S{i}", "quantity": 1} for i in range(10_001)]
    assert _validate("PUT", "/offers/stocks", body={"warehouse_id": 1, "stocks": rows}).status == 422


def test_stock_write_of_exactly_10000_rows_is_accepted() -> None:
    rows = [{"sku": f"S{i}", "quantity": i} for i in range(10_000)]
    assert _validate("PUT", "/offers/stocks", body={"warehouse_id": 1, "stocks": rows}).ok


def test_unknown_route_and_bad_key(sim: Sim) -> None:
    resp = sim.get("/nothing-here")
    assert resp.status_code == 404 and resp.json()["message"]
    resp = requests.get(sim.handle.api_url + "/offers", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert resp.status_code == 401 and resp.json()["message"] == "Unauthenticated."
    assert requests.get(sim.handle.api_url + "/offers", timeout=5).status_code == 401


# --------------------------------------------------------------- pagination
def test_pagination_envelope_and_last_page(sim: Sim) -> None:
    sim.control.seed(120)
    first = sim.get("/offers/stocks", limit="50").json()
    assert (first["total"], first["per_page"], first["current_page"], first["last_page"]) == (120, 50, 1, 3)
    assert (first["from"], first["to"]) == (1, 50)
    assert first["next_page_url"].endswith("?page=2")
    last = sim.get("/offers/stocks", limit="50", page="3").json()
    assert len(last["data"]) == 20 and (last["from"], last["to"]) == (101, 120)
    assert last["next_page_url"] is None
    assert last["data"][-1]["sku"] == generated_sku(120)
    assert len(sim.get("/offers/stocks").json()["data"]) == 15  # the spec's default limit
    beyond = sim.get("/offers/stocks", limit="50", page="9").json()
    assert beyond["data"] == [] and beyond["next_page_url"] is None and beyond["from"] is None


def test_offers_sorted_descending(sim: Sim) -> None:
    sim.control.seed(5)
    data = sim.get("/offers", sort="-id", limit="2", page="2").json()["data"]
    assert [row["id"] for row in data] == [3, 2]


# ------------------------------------------------------------------ stocks
def test_details_show_each_warehouse_and_totals(sim: Sim) -> None:
    sim.control.seed(
        warehouses=[{"id": 1, "name": "Main"}, 2],
        offers=[{"sku": "A", "quantity": {1: 5, 2: 3}, "reserve": {1: 1}}, {"sku": "B", "quantity": 2}],
    )
    rows = sim.get("/offers/stocks", **{"filter[offers_sku]": "A", "filter[details]": "true"}).json()["data"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["sku"], row["quantity"], row["reserve"]) == ("A", 8, 1)
    assert row["warehouse"] == [
        {"id": 1, "name": "Main", "quantity": 5, "reserve": 1},
        {"id": 2, "name": "Склад 2", "quantity": 3, "reserve": 0},
    ]
    plain = sim.get("/offers/stocks", **{"filter[offers_id]": str(row["id"])}).json()["data"]
    assert plain[0]["sku"] == "A" and "warehouse" not in plain[0]
    both = sim.get("/offers/stocks", **{"filter[offers_sku]": "A,B,missing"}).json()
    assert [r["sku"] for r in both["data"]] == ["A", "B"]


def test_put_stocks_sets_one_warehouse_and_ignores_unknown_skus(sim: Sim) -> None:
    sim.control.seed(warehouses=[1, 2], offers=[{"sku": "A", "quantity": {1: 5, 2: 3}}])
    resp = sim.put(
        "/offers/stocks",
        {"warehouse_id": 2, "stocks": [{"sku": "A", "quantity": 9}, {"sku": "ghost", "quantity": 1}]},
    )
    assert resp.status_code == 202 and resp.json() == {"status": True}
    truth = sim.control.truth(["A"])["A"]
    assert truth["warehouses"] == {"1": {"quantity": 5, "reserve": 0}, "2": {"quantity": 9, "reserve": 0}}
    entry = sim.control.requests(method="PUT")[-1]
    assert (entry["applied"], entry["ignored"]) == (1, 1)
    assert entry["ignored_rows"][0]["sku"] == "ghost"
    bad = sim.put("/offers/stocks", {"warehouse_id": 77, "stocks": [{"sku": "A", "quantity": 1}]})
    assert bad.status_code == 422


# --------------------------------------------------------------- rate limit
def test_rate_limit_sliding_window_with_retry_after() -> None:
    s = start_sim(rate_limit=5, rate_window=60)
    try:
        s.control.seed(1)
        assert all(s.get("/offers/stocks").status_code == 200 for _ in range(5))
        resp = s.get("/offers/stocks")
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "60" and resp.json()["retry_after"] == 60
        s.clock.advance(45)
        assert s.get("/offers/stocks").headers["Retry-After"] == "15"
        s.clock.advance(15)  # the first five leave the window; rejected requests never entered it
        assert [s.get("/offers/stocks").status_code for _ in range(6)] == [200] * 5 + [429]
        assert s.control.health()["ok"]  # the control API is not limited
        statuses = [e["status"] for e in s.control.requests()]
        assert statuses.count(429) == 3 and statuses.count(200) == 10
        assert s.control.rate(limit=0)["limit"] == 0
        assert s.get("/offers/stocks").status_code == 200
    finally:
        s.handle.stop()


# ------------------------------------------------------------------- orders
def test_orders_reserve_then_cancel_or_complete(sim: Sim) -> None:
    sim.control.seed(offers=[{"sku": "A", "quantity": 10}])
    order = sim.control.create_order({"A": 2}, source_uuid="wc-1")
    truth = sim.control.truth(["A"])["A"]
    assert (truth["quantity"], truth["reserve"], truth["sellable"]) == (10, 2, 8)
    sim.control.cancel_order(order["id"])
    assert sim.control.truth(["A"])["A"]["reserve"] == 0
    with pytest.raises(SimControlError) as err:
        sim.control.cancel_order(order["id"])
    assert err.value.status == 409
    second = sim.control.create_order([{"sku": "A", "quantity": 3}])
    done = sim.control.complete_order(second["id"])
    assert done["status"] == "completed"
    truth = sim.control.truth(["A"])["A"]
    assert (truth["quantity"], truth["reserve"], truth["sellable"]) == (7, 0, 7)
    stock = sim.get("/offers/stocks", **{"filter[offers_sku]": "A"}).json()["data"][0]
    assert (stock["quantity"], stock["reserve"]) == (7, 0)


def test_get_order_filters(sim: Sim) -> None:
    sim.control.seed(offers=[{"sku": "A", "quantity": 10}, {"sku": "B", "quantity": 10}])
    start = sim.clock.now()  # 1_800_000_000 = 2027-01-15 08:00:00 UTC
    first = sim.control.create_order({"A": 1}, source_uuid="wc-1")
    sim.clock.advance(3600)
    second = sim.control.create_order({"B": 2}, source_uuid="wc-2")
    sim.clock.advance(3600)
    sim.control.cancel_order(first["id"])  # updated two hours after start

    def ids(**params: str) -> list[int]:
        resp = sim.get("/order", **params)
        assert resp.status_code == 200, resp.text
        return [row["id"] for row in resp.json()["data"]]

    assert start == 1_800_000_000
    assert ids(**{"filter[updated_between]": "2027-01-15 08:30:00, 2027-01-15 09:30:00"}) == [second["id"]]
    assert ids(**{"filter[updated_between]": "2027-01-15 09:30:00, 2027-01-15 10:00:00"}) == [first["id"]]
    assert ids(**{"filter[created_between]": "2027-01-15,2027-01-15"}) == [first["id"], second["id"]]
    assert ids(**{"filter[source_uuid]": "wc-2"}) == [second["id"]]
    assert ids(sort="-id") == [second["id"], first["id"]]
    assert ids(sort="-updated_at") == [first["id"], second["id"]]
    rows = sim.get("/order", include="products.offer", **{"filter[source_uuid]": "wc-2"}).json()["data"]
    line = rows[0]["products"][0]
    assert (line["sku"], line["quantity"], line["offer"]["sku"]) == ("B", 2, "B")
    assert rows[0]["updated_at"] == "2027-01-15 09:00:00"
    assert "products" not in sim.get("/order").json()["data"][0]
    assert sim.get("/order", **{"filter[updated_between]": "yesterday"}).status_code == 422


# ----------------------------------------------------------------- products
def test_products_and_variations(sim: Sim) -> None:
    sim.control.seed(warehouses=[1])
    created = sim.post("/products", {"name": "Mug", "sku": "MUG", "price": 12.5, "description": "white"})
    assert created.status_code == 201
    product = created.json()
    assert (product["name"], product["sku"], product["has_offers"]) == ("Mug", "MUG", False)
    assert sim.put(f"/products/{product['id']}", {"name": "Big mug", "price": 14}).status_code == 202
    fetched = sim.get(f"/products/{product['id']}").json()
    assert (fetched["name"], fetched["price"]) == ("Big mug", 14)
    assert sim.get("/products/999").status_code == 404

    shirt = sim.post("/products", {"name": "Shirt"}).json()
    body = {
        "name": "Shirt",
        "offers": [
            {"sku": "SH-S", "price": 10, "properties": [{"name": "Size", "value": "S"}]},
            {"sku": "SH-M", "price": 11, "properties": [{"name": "Size", "value": "M"}]},
        ],
    }
    assert (
        sim.post(f"/products/{shirt['id']}/offers", {"offers": body["offers"]}).status_code == 422
    )  # spec: name
    assert sim.post(f"/products/{shirt['id']}/offers", body).status_code == 201
    offers = sim.get("/offers", include="product", **{"filter[product_id]": str(shirt["id"])}).json()["data"]
    assert [o["sku"] for o in offers] == ["SH-S", "SH-M"]
    assert offers[0]["product"]["has_offers"] is True
    assert offers[0]["product"]["properties_agg"] == {"Size": ["S", "M"]}

    resp = sim.put(
        "/offers", {"offers": [{"sku": "SH-S", "price": 9.5, "weight": 0.3}, {"sku": "nope", "price": 1}]}
    )
    assert resp.status_code == 202
    assert sim.control.truth(["SH-S"])["SH-S"]["price"] == 9.5
    # The spec: id or sku *identifies* the offer; PUT /offers promises no SKU rename, so none happens.
    renamed = sim.put("/offers", {"offers": [{"id": offers[1]["id"], "sku": "SH-M2", "price": 7}]})
    assert renamed.status_code == 202
    truth = sim.control.truth(["SH-M", "SH-M2"])
    assert truth["SH-M2"] is None and truth["SH-M"]["offer_id"] == offers[1]["id"] and truth["SH-M"]["price"] == 7


def test_answers_match_the_spec_response_schemas(sim: Sim) -> None:
    sim.control.seed(
        warehouses=[1, 2],
        offers=[{"sku": "A", "quantity": 4, "price": 5}],
        products=[{"name": "Shirt", "offers": [{"sku": "SH-S", "quantity": 1}]}],
    )
    sim.control.create_order({"A": 1}, source_uuid="x")
    spec = get_validator().spec
    checks = [
        ("/offers/stocks", {"filter[details]": "true"}, "getPaginatedListOfStocks"),
        ("/offers", {"include": "product"}, "getPaginatedListOfOffers"),
        ("/products", {}, "getPaginatedListOfProducts"),
        ("/order", {"include": "products.offer,status"}, "getPaginatedListOfOrders"),
    ]
    for path, params, operation in checks:
        body = sim.get(path, **params).json()
        schema = _response_schema(spec, operation, "200")
        errors = list(OAS30Validator(schema).iter_errors(_drop_nulls(body)))
        assert not errors, (path, [e.message for e in errors[:3]])
        assert body["data"], path


def _response_schema(spec: dict[str, Any], operation_id: str, status: str) -> dict[str, Any]:
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                return _inline_refs(schema, spec)
    raise KeyError(operation_id)


def _inline_refs(node: Any, spec: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _inline_refs(target, spec)
        return {k: _inline_refs(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, spec) for v in node]
    return node


def _drop_nulls(node: Any) -> Any:
    """The spec marks few fields nullable while live KeyCRM answers null in many; check the rest."""
    if isinstance(node, dict):
        return {k: _drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_nulls(v) for v in node]
    return node


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
