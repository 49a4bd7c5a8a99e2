"""KeyCRMClient's routes over real HTTP: against a scripted local KeyCRM stub (``keycrm_stub``),
which checks every request against KeyCRM's OpenAPI document, and against the KeyCRM simulator.
Time is a FakeClock: backoff waits advance it instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.wrappers import Request, Response

from keycrm_bridge.budget import RateBudget
from keycrm_bridge.clock import FakeClock
from keycrm_bridge.errors import PermanentError
from keycrm_bridge.keycrm_client import MAX_FILTER_CHARS, KeyCRMClient

from keycrm_stub import API_KEY, T_SIM, MaxRandom, StubKeyCRM, json_response, make_client, paged, stock_rows


# -- filters ---------------------------------------------------------------------------------------------
def test_stocks_by_sku_are_chunked_by_50_and_url_length(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    def by_sku(request: Request) -> Response:
        wanted = request.args["filter[offers_sku]"].split(",")
        return json_response(
            200,
            {
                "data": [{"id": 1, "sku": s, "quantity": 1, "reserve": 0} for s in wanted],
                "current_page": 1,
                "last_page": 1,
                "next_page_url": None,
            },
        )

    stub.script("GET", "/offers/stocks", by_sku)
    client = make_client(stub, budget, clock)
    skus = [f"SKU-{i}" for i in range(120)] + ["SKU-3"]  # a duplicate is asked once
    got = [r["sku"] for r in client.iter_stocks(skus=skus)]
    assert got == skus[:120]
    calls = stub.calls("GET", "/offers/stocks")
    assert [len(c.args["filter[offers_sku]"].split(",")) for c in calls] == [50, 50, 20]

    # Long Cyrillic SKUs grow sixfold when encoded: chunks get smaller, URLs stay short.
    stub.seen.clear()
    long_skus = [f"АРТИКУЛ-ДОВГИЙ-{i:03d}-" + "Ж" * 20 for i in range(60)]
    got = [r["sku"] for r in client.iter_stocks(skus=long_skus)]
    assert got == long_skus
    calls = stub.calls("GET", "/offers/stocks")
    assert len(calls) > 2
    for c in calls:
        assert len(c.args["filter[offers_sku]"].split(",")) <= 50
        assert len(urlsplit(c.url).query) < MAX_FILTER_CHARS + 200
        assert c.args["page"] == "1"  # one page each


def test_offer_ids_filter(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    stub.script("GET", "/offers/stocks", [json_response(200, {"data": [{"id": 4, "sku": "X"}], "next_page_url": None})])
    client = make_client(stub, budget, clock)
    assert list(client.iter_stocks(offer_ids=[4, 5], details=False)) == [{"id": 4, "sku": "X"}]
    (call,) = stub.seen
    assert call.args["filter[offers_id]"] == "4,5" and "filter[details]" not in call.args


# -- the routes, as the spec has them -----------------------------------------------------------------------
def test_put_stocks_chunks_10000_rows_as_writes(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    stub.script("PUT", "/offers/stocks", lambda r: json_response(202, {"status": True}))
    client = make_client(stub, budget, clock)
    rows = [{"sku": f"S{i}", "quantity": i % 7} for i in range(25_000)]
    assert client.put_stocks(2, rows) == [{"status": True}] * 3
    calls = stub.calls("PUT", "/offers/stocks")
    assert [len(c.body["stocks"]) for c in calls] == [10_000, 10_000, 5_000]
    assert all(c.body["warehouse_id"] == 2 for c in calls)
    assert [row for c in calls for row in c.body["stocks"]] == rows
    headers = calls[0].headers
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json" and headers["Content-Type"] == "application/json"
    assert budget.calls_by_endpoint() == {"PUT /offers/stocks": 3}
    assert client.put_stocks(2, []) == []  # nothing to send, no call


def test_offers_products_and_orders_routes(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    stub.script("GET", "/offers", paged([{"id": 1, "sku": "A", "product": {"id": 9}}]))
    stub.script("PUT", "/offers", [json_response(202, {"status": True})])
    stub.script("GET", "/products/9", [json_response(200, {"id": 9, "name": "Bag"})])
    stub.script("PUT", "/products/9", [json_response(202, {"id": 9, "name": "Bag 2"})])
    stub.script("POST", "/products", [json_response(201, {"id": 10, "name": "New"})])
    stub.script("POST", "/products/10/offers", lambda r: json_response(201, {"status": True}))
    stub.script("GET", "/order", paged([{"id": 5, "source_uuid": "wc-77"}]))
    client = make_client(stub, budget, clock)

    assert list(client.iter_offers(skus=["A", "B"], include_product=True))[0]["product"] == {"id": 9}
    assert client.put_offers([{"sku": "A", "price": 12.5}]) == [{"status": True}]
    assert client.get_product(9)["name"] == "Bag"
    assert client.update_product(9, {"name": "Bag 2", "price": 10})["name"] == "Bag 2"
    assert client.create_product({"name": "New", "sku": "N-1", "price": 1})["id"] == 10
    offers = [{"sku": f"N-{i}", "price": 1.0} for i in range(150)]
    assert len(client.create_offers(10, offers, product_name="New")) == 2
    t_from = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    orders = list(client.iter_orders(t_from, t_from.timestamp() + 3600, source_uuids=["wc-77", "wc-78"]))
    assert [o["id"] for o in orders] == [5, 5]

    (get_offers,) = stub.calls("GET", "/offers")
    assert get_offers.args["filter[sku]"] == "A,B" and get_offers.args["include"] == "product"
    assert stub.calls("PUT", "/offers")[0].body == {"offers": [{"sku": "A", "price": 12.5}]}
    assert stub.calls("PUT", "/products/9")[0].body == {"name": "Bag 2", "price": 10}
    post_offers = stub.calls("POST", "/products/10/offers")
    assert [len(c.body["offers"]) for c in post_offers] == [100, 50]
    order_calls = stub.calls("GET", "/order")
    assert [c.args["filter[source_uuid]"] for c in order_calls] == ["wc-77", "wc-78"]
    assert order_calls[0].args["filter[updated_between]"] == "2026-03-01 10:00:00, 2026-03-01 11:00:00"
    assert order_calls[0].args["include"] == "products.offer"
    # Reads are READ, product fields (PUT /offers, PUT /products/{id}) FIELDS, other writes WRITE.
    by_priority = dict(budget._conn.execute("SELECT priority, count(*) FROM keycrm_calls GROUP BY priority").fetchall())
    # The two GET /order count as writes (the order poll may use the write reserve); product fields
    # (PUT /offers, PUT /products/{id}) as FIELDS.
    assert by_priority == {"read": 2, "fields": 2, "write": 5}


def test_one_page_readers_for_stocks_and_offers(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    offers = [{"id": i + 1, "sku": f"O-{i:02d}", "product_id": 7} for i in range(60)]
    stub.script("GET", "/offers/stocks", paged(stock_rows(60)))
    stub.script("GET", "/offers", paged(offers, meta="next_only"))
    client = make_client(stub, budget, clock)

    first = client.stocks_page(1)
    assert len(first.rows) == 50 and not first.is_last and first.total == 60
    rows, is_last = client.stocks_page(2, details=False)  # unpacks as (rows, is_last)
    assert [r["sku"] for r in rows] == [f"SKU-{i:04d}" for i in range(50, 60)] and is_last
    with_product = client.offers_page(1, include_product=True)
    assert [o["sku"] for o in with_product.rows] == [f"O-{i:02d}" for i in range(50)]
    assert not with_product.is_last and with_product.total is None  # this page names no total
    last = client.offers_page(2)
    assert [o["id"] for o in last.rows] == list(range(51, 61)) and last.is_last

    stocks_calls = stub.calls("GET", "/offers/stocks")
    assert [c.args for c in stocks_calls] == [
        {"filter[details]": "true", "limit": "50", "page": "1"},
        {"limit": "50", "page": "2"},
    ]
    offers_calls = stub.calls("GET", "/offers")
    assert [c.args for c in offers_calls] == [
        {"include": "product", "limit": "50", "page": "1"},
        {"limit": "50", "page": "2"},
    ]
    assert budget.calls_by_endpoint() == {"GET /offers/stocks": 2, "GET /offers": 2}  # one request a page


def test_warehouse_ids_from_first_detailed_page(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    rows = stock_rows(60)
    rows[3]["warehouse"].append({"id": 4, "name": "Shop", "quantity": 1, "reserve": 0})
    stub.script("GET", "/offers/stocks", paged(rows))
    client = make_client(stub, budget, clock)
    assert client.warehouse_ids() == [1, 4]
    (call,) = stub.seen
    assert call.args == {"filter[details]": "true", "limit": "50", "page": "1"}


def test_against_the_keycrm_simulator(tmp_path: Path) -> None:
    """The same client against the project's KeyCRM simulator (a real process, spec-validated)."""
    testing = pytest.importorskip("keycrm_bridge.simulator.testing")
    clock = FakeClock(T_SIM)
    with (
        testing.SimulatorProcess(seed_skus=120, seed_quantity=7, warehouses=(1, 2), rate=1000) as sim,
        RateBudget(tmp_path / "b.sqlite3", clock) as budget,
    ):
        client = KeyCRMClient(sim.api_url, sim.api_key, budget, clock, rng=MaxRandom())
        rows = list(client.iter_stocks())
        assert len(rows) == 120 and len({r["sku"] for r in rows}) == 120
        assert client.warehouse_ids() == [1, 2]
        sku = rows[0]["sku"]
        client.put_stocks(2, [{"sku": sku, "quantity": 4}])
        (row,) = list(client.iter_stocks(skus=[sku]))
        assert {w["id"]: w["quantity"] for w in row["warehouse"]}[2] == 4
        assert sim.control.truth([sku])[sku]["quantity"] == 11

        # Two 503s, then success: retried through the clock, three requests in the simulator's log.
        since = sim.control.last_seq()
        sim.control.set_faults(fail_next=2, error_status=503, paths=["/offers"])
        t0 = clock.now()
        offers = list(client.iter_offers(skus=[sku], include_product=True))
        assert [o["sku"] for o in offers] == [sku]
        assert clock.now() - t0 == pytest.approx(0.5 + 1, abs=0.01)
        assert [r["status"] for r in sim.control.requests(since, path="/offers")] == [503, 503, 200]
        sim.control.clear_faults()

        product = client.create_product({"name": "Bag", "sku": "BAG-NEW", "price": 10})
        client.create_offers(int(product["id"]), [{"sku": "BAG-NEW-RED", "price": 11}], product_name="Bag")
        assert sim.control.truth(["BAG-NEW-RED"])["BAG-NEW-RED"] is not None
        with pytest.raises(PermanentError) as err:
            client.create_product({"sku": "NO-NAME"})  # the spec requires name
        assert err.value.status == 422

        order = sim.control.create_order({sku: 2}, source_uuid="wc-1001")
        found = list(client.iter_orders(None, None, source_uuids=["wc-1001"]))
        assert [o["id"] for o in found] == [order["id"]]
