"""The KeyCRM simulator's API: spec validation, shapes, pagination, stock arithmetic, the budget,
orders, products."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator

from keycrm_bridge.simulator import generated_sku
from keycrm_bridge.simulator.control_client import SimControlError
from keycrm_bridge.simulator.validation import get_validator

from sim_fixtures import AUTH, Sim, start_sim


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
