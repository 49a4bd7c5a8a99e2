"""WooClient against the WooCommerce peer over real HTTP: reading, conditional stock writes through
the plugin's route, and failures (retries through the clock, the error taxonomy)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from importlib import resources

import jsonschema
import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response
from woocommerce import API

from keycrm_bridge.errors import PermanentError, RetryableError, SkipError
from keycrm_bridge.signing import origin_marker
from keycrm_bridge.woo_client import STOCK_ROUTE as STOCK_PATH
from keycrm_bridge.woo_client import StockWrite, WooClient
from keycrm_bridge.woo_transport import oauth_signable

from woo_fixtures import REST, SECRET, make_client, rest_log

# -- reading --------------------------------------------------------------------------------------


def test_iter_products_reads_every_page_and_marks_every_request(peer, client) -> None:
    peer.control.seed(simple=250, variable=2, variations=3)
    products = list(client.iter_products())
    assert len(products) == 252  # variations are not listed under products
    assert [p["id"] for p in products] == sorted(p["id"] for p in products)
    log = rest_log(peer)
    assert [e["query"]["page"] for e in log] == ["1", "2", "3"]
    assert all(e["marked"] and e["marker"] == "valid" for e in log)
    assert all(e["user_agent"] == "keycrm-bridge-sidecar/0.1.0" for e in log)
    assert all(e["query"]["per_page"] == "100" for e in log)


def test_iter_variations_pages(peer, client) -> None:
    peer.control.seed(variable=1, variations=5)
    variations = list(client.iter_variations(1, per_page=2))
    assert [v["sku"] for v in variations] == [f"SKU-V000001-{j}" for j in range(1, 6)]
    assert len(rest_log(peer)) == 3


def test_products_page_reads_one_page_with_totals(peer, client) -> None:
    peer.control.seed(simple=250, variable=2, variations=3)
    first = client.products_page(1)
    assert len(first.items) == 100 and first.more and first.total == 252  # variations are not products
    assert [p["id"] for p in first.items] == list(range(1, 101))
    last = client.products_page(3)
    assert len(last.items) == 52 and not last.more
    beyond = client.products_page(4)
    assert beyond.items == [] and not beyond.more
    variable = client.products_page(1, per_page=10, type="variable")
    assert [(p["id"], p["type"]) for p in variable.items] == [(251, "variable"), (255, "variable")]
    assert not variable.more and variable.total == 2
    log = rest_log(peer)
    assert [(e["path"], e["query"]["page"], e["query"]["per_page"]) for e in log] == [
        (REST + "products", "1", "100"),
        (REST + "products", "3", "100"),
        (REST + "products", "4", "100"),
        (REST + "products", "1", "10"),
    ]
    assert all(e["query"]["orderby"] == "id" and e["query"]["order"] == "asc" and e["marked"] for e in log)
    assert log[-1]["query"]["type"] == "variable"
    with pytest.raises(ValueError):
        client.products_page(1, per_page=101)


def test_variations_page_and_the_include_filter(peer, client) -> None:
    peer.control.seed(variable=1, variations=5)  # parent 1, variations 2..6
    first = client.variations_page(1, 1, per_page=2)
    assert [v["sku"] for v in first.items] == ["SKU-V000001-1", "SKU-V000001-2"]
    assert first.more and first.total == 5
    last = client.variations_page(1, 3, per_page=2)
    assert [v["sku"] for v in last.items] == ["SKU-V000001-5"] and not last.more
    picked = list(client.iter_variations(1, include="3,5"))
    assert [v["id"] for v in picked] == [3, 5]
    assert [p["id"] for p in client.iter_products(include="1,4")] == [1]  # 4 is a variation, not a product
    log = rest_log(peer)
    assert [e["path"] for e in log[:3]] == [REST + "products/1/variations"] * 3
    assert [e["query"]["page"] for e in log[:2]] == ["1", "3"]
    assert log[2]["query"]["include"] == "3,5" and log[3]["query"]["include"] == "1,4"


@pytest.fixture
def bare_shop() -> Iterator[str]:
    """A wc/v3 stand-in that sends no X-WP-Total headers, and on page 3 an object instead of a list."""

    def app(environ, start_response):
        page = int(Request(environ).args.get("page", 1))
        body = {1: [{"id": 1}, {"id": 2}], 2: [{"id": 3}]}.get(page, {"code": "not_a_list"})
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_page_readers_without_total_headers_and_with_a_non_list_answer(bare_shop, clock) -> None:
    client = make_client(bare_shop, clock)
    first = client.products_page(1, per_page=2)
    assert [p["id"] for p in first.items] == [1, 2] and first.more and first.total is None  # a full page: ask on
    second = client.products_page(2, per_page=2)
    assert [p["id"] for p in second.items] == [3] and not second.more
    with pytest.raises(RetryableError, match="without a list"):  # the caller keeps its cursor and asks again
        client.products_page(3, per_page=2)
    with pytest.raises(RetryableError):
        client.variations_page(9, 3, per_page=2)


def test_find_by_skus_chunks_exact_matches_and_skips_unsignable(peer, clock) -> None:
    peer.control.seed(simple=120, variable=1, variations=2)
    peer.control.seed(products=[{"name": "comma", "sku": "A,B"}, {"name": "slash", "sku": "A/1"}])
    peer.control.seed(products=[{"name": "d1", "sku": "DUP"}, {"name": "d2", "sku": "DUP"}], allow_duplicate_skus=True)
    client = make_client(peer.url, clock, sku_chunk=50)
    wanted = [f"SKU-{i:06d}" for i in range(1, 121)] + ["SKU-V000121-2", "missing", "A,B", "A/1", "DUP"]
    found = client.find_by_skus(wanted)
    assert set(found) == set(wanted) - {"missing", "A/1"}
    assert found["SKU-V000121-2"][0]["type"] == "variation" and found["SKU-V000121-2"][0]["parent_id"] == 121
    assert [p["name"] for p in found["DUP"]] == ["d1", "d2"]
    log = rest_log(peer)
    assert all(e["status"] == 200 and e["marked"] for e in log)
    sku_params = [e["query"]["sku"] for e in log]
    assert "A,B" in sku_params  # a SKU with a comma goes alone
    assert len(sku_params) == 4 and all(len(s.split(",")) <= 50 for s in sku_params if s != "A,B")
    assert not client.sku_searchable("A/1") and client.sku_searchable("A-1") and not client.sku_searchable(" X")
    assert oauth_signable("SKU 1") and not oauth_signable("50%25")


# -- writing --------------------------------------------------------------------------------------


def test_set_stock_writes_through_the_plugin_route_and_events_say_sidecar(peer, client, receiver, clock) -> None:
    peer.control.seed(simple=250, variable=2, variations=3)  # parents 251 (252-254) and 255 (256-258), 10 each
    writes = [StockWrite(i, 0, 3, sku=f"SKU-{i:06d}", expect=10) for i in range(1, 251)]
    writes += [StockWrite(v, 251, 4, expect=10) for v in (252, 253, 254)]
    writes += [StockWrite(v, 255, 5, expect=10) for v in (256, 257, 258)]
    results = client.set_stock(writes)
    assert len(results) == 256 and all(r.ok and r.error is None and not r.conflict for r in results)
    assert [r.stock_quantity for r in results[-6:]] == [4, 4, 4, 5, 5, 5]
    log = rest_log(peer)
    assert [(e["path"], len(e["body"]["items"])) for e in log] == [(STOCK_PATH, 100), (STOCK_PATH, 100),
                                                                    (STOCK_PATH, 56)]
    assert {(i["expect"], type(i["set"])) for e in log for i in e["body"]["items"]} == {(10, int)}
    assert peer.control.product("SKU-000250")["stock_quantity"] == 3
    assert peer.control.product("SKU-V000255-3")["stock_quantity"] == 5

    events = receiver.wait_for_events(256)
    assert {e["cause"] for e in events} == {"sidecar"}
    schema = json.loads(resources.files("keycrm_bridge").joinpath("schema/events.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for batch in receiver.batches:
        assert batch.signature_ok
        validator.validate(batch.payload)
    assert len(receiver.batches) == 3  # one per request

    # The same write through the package without the marker is reported as an ordinary REST edit.
    API(peer.url, "ck_test", "cs_test", version="wc/v3").put("products/1", {"stock_quantity": 9})
    last = receiver.wait_for_events(257)[-1]
    assert (last["sku"], last["cause"], last["stock_quantity"]) == ("SKU-000001", "rest", 9)


def test_a_write_decided_on_a_value_the_shop_no_longer_shows_changes_nothing(peer, client) -> None:
    """A sale landed between the decision (on 10) and the write: the write is refused, the sale stays."""
    peer.control.seed(simple=3)
    peer.control.place_order([{"sku": "SKU-000001", "quantity": 2}])  # 10 -> 8 after the decision
    first, second, unknown = client.set_stock([StockWrite(1, 0, 11, sku="SKU-000001", expect=10),
                                               StockWrite(2, 0, 11, sku="SKU-000002", expect=10),
                                               StockWrite(3, 0, 11, sku="SKU-000003")])
    assert (first.ok, first.conflict, first.stock_quantity) == (False, True, 8)
    assert peer.control.product("SKU-000001")["stock_quantity"] == 8
    assert (second.ok, second.stock_quantity) == (True, 11)
    # Not knowing the shop's value writes nothing either: the answer tells it.
    assert (unknown.ok, unknown.conflict, unknown.stock_quantity) == (False, True, 10)
    assert peer.control.product("SKU-000003")["stock_quantity"] == 10
    # A replay of an applied write (its answer lost) meets its own target: that counts as applied.
    again = client.set_stock([StockWrite(2, 0, 11, sku="SKU-000002", expect=10)])[0]
    assert again.ok and not again.conflict


def test_the_stock_route_refuses_unsigned_and_badly_signed_calls(peer, clock) -> None:
    peer.control.seed(simple=1)
    body = json.dumps({"items": [{"product_id": 1, "expect": 10, "set": 0}]}).encode()
    plain = requests.post(peer.url + STOCK_PATH, data=body, timeout=10)
    forged = make_client(peer.url, clock)
    forged._shared_secret = "not-the-secret"
    assert plain.status_code == 401
    with pytest.raises(PermanentError) as caught:
        forged.set_stock([StockWrite(1, 0, 0, expect=10)])
    assert caught.value.status == 401
    assert peer.control.product("SKU-000001")["stock_quantity"] == 10


def test_set_stock_reports_bad_items_without_failing_the_batch(peer, client) -> None:
    peer.control.seed(simple=3, variable=1, variations=1)  # parent 4, variation 5
    peer.control.seed(products=[{"name": "unmanaged", "sku": "UN", "manage_stock": False}])  # id 6
    results = client.set_stock(
        [
            StockWrite(1, 0, 2, sku="SKU-000001", expect=10),
            StockWrite(999, 0, 2, sku="GONE", expect=10),
            StockWrite(6, 0, 2, sku="UN", expect=10),
            StockWrite(2, 0, 7.9, sku="SKU-000002", expect=10),  # part units are rounded down
            StockWrite(1, 0, 4, sku="SKU-000001", expect=10),  # a later write for the same id wins
        ]
    )
    by_sku = {r.write.sku: r for r in results}
    assert len(results) == 4
    assert by_sku["SKU-000001"].ok and by_sku["SKU-000001"].stock_quantity == 4
    assert by_sku["SKU-000001"].date_modified == int(peer.peer.clock.now())  # WooCommerce's clock
    assert by_sku["SKU-000002"].stock_quantity == 7
    for sku in ("GONE", "UN"):
        assert not by_sku[sku].ok and not by_sku[sku].conflict
        assert isinstance(by_sku[sku].error, SkipError) and by_sku[sku].error.sku == sku
    assert "not_found" in str(by_sku["GONE"].error)
    assert "not managed" in str(by_sku["UN"].error)


# -- failures -------------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff_through_the_clock(peer, client, clock) -> None:
    peer.control.seed(simple=2)
    peer.control.set_faults(fail_next=2, status=503)
    before = clock.now()
    results = client.set_stock([StockWrite(1, 0, 5, expect=10)])
    assert results[0].ok
    waited = clock.now() - before
    assert 0.25 + 0.5 <= waited <= 0.5 + 1.0  # two jittered backoffs of 0.5 s and 1 s, no real sleep
    log = rest_log(peer)
    assert [e["status"] for e in log] == [503, 503, 200]
    assert all(e["marked"] for e in log)  # a fresh marker on every attempt


def test_retries_are_bounded_then_retryable_error(peer, clock) -> None:
    peer.control.seed(simple=1)
    peer.control.set_faults(fail_next=10, status=502)
    client = make_client(peer.url, clock, max_attempts=3)
    with pytest.raises(RetryableError) as caught:
        list(client.iter_products())
    assert caught.value.status == 502 and caught.value.endpoint == "products"
    assert len(rest_log(peer)) == 3


def test_429_waits_retry_after(peer, client, clock) -> None:
    peer.control.seed(simple=1)
    peer.control.set_faults(fail_next=1, status=429, retry_after=7)
    before = clock.now()
    assert len(list(client.iter_products())) == 1
    assert clock.now() - before == pytest.approx(7.0)


def test_timeout_is_retried(peer, clock) -> None:
    peer.control.seed(simple=1)
    peer.control.set_faults(hang_next=1, hang_seconds=30)
    client = make_client(peer.url, clock, timeout=0.3)
    try:
        assert client.set_stock([StockWrite(1, 0, 2, expect=10)])[0].ok
    finally:
        peer.control.clear_faults()  # release the hung request


def test_permanent_errors_are_not_retried(peer, clock) -> None:
    peer.control.seed(simple=1)
    bad = WooClient(peer.url, "ck_test", "cs_wrong", SECRET, clock)
    with pytest.raises(PermanentError) as caught:
        list(bad.iter_products())
    assert caught.value.status == 401 and "woocommerce_rest_authentication_error" in str(caught.value)
    with pytest.raises(PermanentError) as missing:
        make_client(peer.url, clock).get_product(999)
    assert missing.value.status == 404
    assert len(rest_log(peer)) == 2
    with pytest.raises(ValueError):
        list(make_client(peer.url, clock).iter_products(per_page=101))
    make_client(peer.url, clock).check_write_access()
    peer.control.configure(key_permissions="read")
    with pytest.raises(PermanentError) as no_write:
        make_client(peer.url, clock).check_write_access()
    assert no_write.value.status == 401 and "write permissions" in str(no_write.value)
    assert len(list(make_client(peer.url, clock).iter_products())) == 1
    with pytest.raises(PermanentError) as read_only:
        bad.check_write_access()
    assert read_only.value.status == 401


def test_connection_refused_is_retryable(clock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", clock, max_attempts=2)
    before = clock.now()
    with pytest.raises(RetryableError):
        client.set_stock([StockWrite(1, 0, 1)])
    assert clock.now() > before


def test_origin_marker_format(clock) -> None:
    value = origin_marker("s", 1_800_000_000)
    ts, mac = value.split(".")
    assert ts == "1800000000" and len(mac) == 64
