"""The WooCommerce REST peer behaves like wc/v3 and like the plugin, over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from importlib import resources

import jsonschema
import pytest
import requests
from woocommerce import API

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.woo_peer.control_client import PeerControlError
from keycrm_bridge.woo_peer.event_receiver import EventReceiver
from keycrm_bridge.woo_peer.testing import WooPeerProcess, serve_in_thread

from woo_fixtures import SECRET

REST = "/wp-json/wc/v3/"


def marker(secret: str, ts: int) -> str:
    return f"{ts}.{hmac.new(secret.encode(), f'origin.{ts}'.encode(), hashlib.sha256).hexdigest()}"


@pytest.fixture(scope="module")
def schema() -> dict:
    text = resources.files("keycrm_bridge").joinpath("schema/events.schema.json").read_text()
    return json.loads(text)




def api(url: str, secret: str = "cs_test", key: str = "ck_test") -> API:
    return API(url, key, secret, version="wc/v3", timeout=10)


# -- authentication -------------------------------------------------------------------------------


def test_oauth_signature_is_checked_like_woocommerce(peer) -> None:
    peer.control.seed(simple=3)
    assert api(peer.url).get("products").status_code == 200

    wrong_secret = api(peer.url, secret="cs_wrong").get("products")
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["code"] == "woocommerce_rest_authentication_error"
    assert "signature" in wrong_secret.json()["message"]

    wrong_key = api(peer.url, key="ck_wrong").get("products")
    assert wrong_key.status_code == 401
    assert wrong_key.json()["message"] == "Consumer key is invalid."

    anonymous = requests.get(peer.url + REST + "products", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "woocommerce_rest_cannot_view"

    # Basic auth is what WooCommerce accepts over HTTPS only; over plain HTTP it is ignored.
    basic = requests.get(peer.url + REST + "products", auth=("ck_test", "cs_test"), timeout=10)
    assert basic.status_code == 401
    batch = requests.post(peer.url + REST + "products/batch", json={"update": []}, timeout=10)
    assert batch.json()["code"] == "woocommerce_rest_cannot_batch"


def test_replayed_oauth_nonce_is_refused(peer) -> None:
    peer.control.seed(simple=1)
    first = api(peer.url).get("products")
    signed_url = first.request.url
    again = requests.get(signed_url, timeout=10)
    assert again.status_code == 401
    assert "nonce" in again.json()["message"]


def test_slash_in_a_query_value_fails_the_signature_as_on_php(peer) -> None:
    # The package signs '/' unescaped, PHP's rawurlencode escapes it: a real shop answers 401.
    peer.control.seed(simple=1)
    resp = api(peer.url).get("products", params={"sku": "A/1"})
    assert resp.status_code == 401
    assert api(peer.url).get("products", params={"sku": "A-1"}).status_code == 200


def test_basic_auth_accepted_when_the_shop_is_behind_https() -> None:
    with serve_in_thread(accept_basic_auth=True, seed=2) as handle:
        ok = requests.get(handle.url + REST + "products", auth=("ck_test", "cs_test"), timeout=10)
        assert ok.status_code == 200 and len(ok.json()) == 2
        bad = requests.get(handle.url + REST + "products", auth=("ck_test", "nope"), timeout=10)
        assert bad.status_code == 401 and bad.json()["code"] == "woocommerce_rest_authentication_error"


# -- listing --------------------------------------------------------------------------------------


def test_pagination_headers_and_per_page_bounds(peer) -> None:
    peer.control.seed(simple=250)
    client = api(peer.url)
    sizes = []
    for page in (1, 2, 3, 4):
        resp = client.get("products", params={"per_page": 100, "page": page, "orderby": "id", "order": "asc"})
        assert resp.status_code == 200
        assert resp.headers["X-WP-Total"] == "250"
        assert resp.headers["X-WP-TotalPages"] == "3"
        sizes.append(len(resp.json()))
    assert sizes == [100, 100, 50, 0]
    first = client.get("products", params={"per_page": 2, "orderby": "id", "order": "asc"}).json()
    assert [p["id"] for p in first] == [1, 2]
    default = client.get("products").json()
    assert len(default) == 10 and default[0]["id"] == 250  # WooCommerce default: 10, newest first

    for bad in (0, 101, "x"):
        resp = client.get("products", params={"per_page": bad})
        assert resp.status_code == 400
        assert resp.json()["code"] == "rest_invalid_param"
        assert "per_page" in resp.json()["data"]["params"]
    assert client.get("products", params={"orderby": "nonsense"}).status_code == 400
    assert client.get("products", params={"type": "variation"}).status_code == 400


def test_product_json_is_shaped_like_wc_v3(peer) -> None:
    peer.control.seed(simple=1, variable=1, variations=2)
    client = api(peer.url)
    simple = client.get("products/1").json()
    for key in (
        "id",
        "name",
        "sku",
        "type",
        "parent_id",
        "status",
        "description",
        "regular_price",
        "sale_price",
        "price",
        "manage_stock",
        "stock_quantity",
        "stock_status",
        "weight",
        "dimensions",
        "date_modified_gmt",
        "variations",
    ):
        assert key in simple
    assert simple["type"] == "simple" and simple["regular_price"] == "100.00" and simple["price"] == "100.00"
    assert isinstance(simple["weight"], str) and set(simple["dimensions"]) == {"length", "width", "height"}
    assert simple["stock_quantity"] == 10 and simple["stock_status"] == "instock"
    parent = client.get("products/2").json()
    assert parent["type"] == "variable" and parent["variations"] == [3, 4]
    variations = client.get("products/2/variations", params={"orderby": "id", "order": "asc"}).json()
    assert [(v["id"], v["type"], v["parent_id"]) for v in variations] == [(3, "variation", 2), (4, "variation", 2)]
    assert client.get("products/3").status_code == 404  # a variation is not under products/{id}
    assert client.get("products/2/variations/3").json()["sku"] == "SKU-V000002-1"
    assert client.get("products/999").json()["code"] == "woocommerce_rest_product_invalid_id"


def test_sku_filter_is_exact_comma_separated_and_finds_variations(peer) -> None:
    peer.control.seed(simple=5, variable=1, variations=2)
    peer.control.seed(products=[{"name": "Comma", "sku": "A,B", "manage_stock": True, "stock_quantity": 1}])
    client = api(peer.url)

    def skus(value: str) -> list[str]:
        resp = client.get("products", params={"sku": value, "per_page": 100})
        assert resp.status_code == 200
        return sorted(p["sku"] for p in resp.json())

    assert skus("SKU-000001,SKU-000003,missing") == ["SKU-000001", "SKU-000003"]
    assert skus("sku-000001") == []  # exact
    assert skus("SKU-00000") == []  # no prefix match
    assert skus("SKU-V000006-2") == ["SKU-V000006-2"]  # variations are found by SKU
    assert skus("A,B") == ["A,B"]  # the whole string is tried too
    listed = client.get("products", params={"per_page": 100}).json()
    assert all(p["type"] != "variation" for p in listed)  # but not listed without a SKU filter


def test_modified_after_and_type_filters(peer, clock: FakeClock) -> None:
    peer.control.seed(simple=5, variable=2, variations=2)
    start = clock.now()
    clock.advance(60)
    peer.control.set_stock(3, sku="SKU-000002")
    peer.control.set_stock(4, sku="SKU-V000009-1")  # a variation: its parent is saved too
    client = api(peer.url)
    from datetime import UTC, datetime

    after = datetime.fromtimestamp(start + 1, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    changed = client.get("products", params={"modified_after": after, "per_page": 100}).json()
    assert sorted(p["id"] for p in changed) == [2, 9]
    variations = client.get("products/9/variations", params={"modified_after": after}).json()
    assert [v["sku"] for v in variations] == ["SKU-V000009-1"]
    assert client.get("products", params={"modified_after": "yesterday"}).status_code == 400
    variable = client.get("products", params={"type": "variable", "per_page": 100}).json()
    assert sorted(p["id"] for p in variable) == [6, 9]


# -- writes ---------------------------------------------------------------------------------------


def test_batch_limit_413_and_per_item_errors(peer) -> None:
    peer.control.seed(simple=120, variable=1, variations=3)
    client = api(peer.url)
    too_many = client.post("products/batch", {"update": [{"id": i, "stock_quantity": 1} for i in range(1, 102)]})
    assert too_many.status_code == 413
    assert too_many.json()["code"] == "woocommerce_rest_request_entity_too_large"
    mixed = client.post(
        "products/batch",
        {
            "update": [{"id": i, "stock_quantity": 7} for i in range(1, 60)],
            "delete": [],
            "create": [{"name": "n", "sku": f"NEW-{i}"} for i in range(41)],
        },
    )
    assert mixed.status_code == 200  # 59 + 41 = 100: at the limit
    assert len(mixed.json()["update"]) == 59 and len(mixed.json()["create"]) == 41

    answer = client.post(
        "products/batch",
        {
            "update": [
                {"id": 1, "stock_quantity": 9},
                {"id": 99999, "stock_quantity": 1},
                {"id": 122, "stock_quantity": 1},  # a variation: not through products/batch
                {"id": 2, "stock_quantity": "lots"},
            ]
        },
    ).json()["update"]
    assert answer[0]["id"] == 1 and answer[0]["stock_quantity"] == 9
    assert answer[1] == {
        "id": 99999,
        "error": {"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 404}},
    }
    assert answer[2]["error"]["code"] == "woocommerce_rest_product_invalid_id"
    assert answer[3]["error"]["code"] == "rest_invalid_param"

    variations = client.post(
        "products/121/variations/batch", {"update": [{"id": 122, "stock_quantity": 4}, {"id": 1, "stock_quantity": 4}]}
    ).json()
    assert variations["update"][0]["stock_quantity"] == 4
    assert variations["update"][1]["error"]["code"] == "woocommerce_rest_product_variation_invalid_id"
    assert peer.control.product("SKU-V000121-1")["stock_quantity"] == 4


def test_rest_rules_for_stock_and_sku(peer) -> None:
    peer.control.seed(simple=2)
    peer.control.seed(products=[{"name": "No stock", "sku": "NS", "manage_stock": False}])
    client = api(peer.url)
    not_managed = client.put("products/3", {"stock_quantity": 5}).json()
    assert not_managed["stock_quantity"] is None  # ignored when stock is not managed
    duplicate = client.put("products/1", {"sku": "SKU-000002"})
    assert duplicate.status_code == 400 and duplicate.json()["code"] == "product_invalid_sku"
    zero = client.put("products/1", {"stock_quantity": 0}).json()
    assert zero["stock_status"] == "outofstock"
    created = client.post(
        "products", {"name": "New", "sku": "NEW", "regular_price": "9.5", "manage_stock": True, "stock_quantity": 2}
    )
    assert created.status_code == 201 and created.json()["price"] == "9.5"
    assert client.post("products", {"name": "Bad", "type": "weird"}).status_code == 400


# -- plugin events --------------------------------------------------------------------------------


def test_events_are_signed_valid_and_tagged_by_marker(peer, receiver, clock, schema) -> None:
    peer.control.seed(simple=5)
    client = api(peer.url)
    ts = int(clock.now())
    marked = client.post(
        "products/batch",
        {"update": [{"id": 1, "stock_quantity": 1}, {"id": 2, "stock_quantity": 2}]},
        params={"kcb_origin": marker(SECRET, ts)},
    )
    assert marked.status_code == 200
    unmarked = client.put("products/3", {"stock_quantity": 3})
    forged = client.put("products/4", {"stock_quantity": 4}, params={"kcb_origin": marker("wrong", ts)})
    stale = client.put("products/5", {"stock_quantity": 5}, params={"kcb_origin": marker(SECRET, ts - 301)})
    assert unmarked.status_code == forged.status_code == stale.status_code == 200
    unchanged = client.put("products/5", {"stock_quantity": 5})  # same value: no set_stock hook
    assert unchanged.status_code == 200

    events = receiver.wait_for_events(5)
    peer.control.wait_events_sent()
    assert len(receiver.batches) == 4  # one batch per request that changed something
    validator = jsonschema.Draft202012Validator(schema)
    for batch in receiver.batches:
        assert batch.signature_ok
        validator.validate(batch.payload)
        assert batch.payload["site"] == peer.url
    assert [len(b.payload["events"]) for b in receiver.batches] == [2, 1, 1, 1]
    by_sku = {e["sku"]: e for e in events}
    assert by_sku["SKU-000001"]["cause"] == by_sku["SKU-000002"]["cause"] == "sidecar"
    assert by_sku["SKU-000003"]["cause"] == "rest"
    assert by_sku["SKU-000004"]["cause"] == "rest"
    assert by_sku["SKU-000005"]["cause"] == "rest"
    assert by_sku["SKU-000002"] == {
        **by_sku["SKU-000002"],
        "type": "stock.set",
        "stock_quantity": 2,
        "product_id": 2,
        "parent_id": 0,
    }
    entries = peer.control.log()
    assert [e["marker"] for e in entries] == ["valid", "absent", "invalid", "invalid", "absent"]
    assert [e["marked"] for e in entries] == [True, False, False, False, False]
    assert "kcb_origin" in entries[0]["query"] and not any(k.startswith("oauth_") for k in entries[0]["query"])


def test_orders_cancel_refund_rename_and_edit_events(peer, receiver, schema) -> None:
    peer.control.seed(simple=3)
    order = peer.control.place_order([{"sku": "SKU-000001", "quantity": 2}, {"sku": "SKU-000002", "quantity": 1}])
    assert peer.control.product("SKU-000001")["stock_quantity"] == 8
    with pytest.raises(PeerControlError) as short:
        peer.control.place_order([{"sku": "SKU-000003", "quantity": 11}])
    assert short.value.status == 409
    peer.control.cancel_order(order["order_id"])
    with pytest.raises(PeerControlError) as again:
        peer.control.cancel_order(order["order_id"])
    assert again.value.status == 409  # no double restore
    second = peer.control.place_order([{"sku": "SKU-000003", "quantity": 4}])
    peer.control.refund_order(second["order_id"])
    peer.control.rename("SKU-000003-NEW", sku="SKU-000003")
    peer.control.edit(sku="SKU-000001", name="Renamed", regular_price="120.50")
    peer.control.set_stock(20, sku="SKU-000002")
    peer.control.delete(sku="SKU-000001")

    events = receiver.wait_for_events(10)
    jsonschema.Draft202012Validator(schema).validate({"events": events})
    assert [(e["type"], e["cause"], e["sku"]) for e in events] == [
        ("stock.set", "order", "SKU-000001"),
        ("stock.set", "order", "SKU-000002"),
        ("stock.set", "order_restore", "SKU-000001"),
        ("stock.set", "order_restore", "SKU-000002"),
        ("stock.set", "order", "SKU-000003"),
        ("stock.set", "order_restore", "SKU-000003"),
        ("product.upsert", "manual", "SKU-000003-NEW"),
        ("product.upsert", "manual", "SKU-000001"),
        ("stock.set", "manual", "SKU-000002"),
        ("product.deleted", "manual", "SKU-000001"),
    ]
    assert events[0]["order_id"] == order["order_id"] and events[0]["quantity_delta"] == -2
    assert events[0]["stock_quantity"] == 8
    assert events[2]["quantity_delta"] == 2 and events[2]["stock_quantity"] == 10
    assert events[6]["old_sku"] == "SKU-000003" and events[6]["product_id"] == 3
    assert events[7]["product"]["name"] == "Renamed" and events[7]["product"]["regular_price"] == 120.5
    assert len({e["id"] for e in events}) == len(events)


def test_concurrent_writes_send_events_in_commit_order(peer, receiver) -> None:
    peer.control.seed(simple=1)

    def writer(base: int) -> None:
        client = api(peer.url)
        for i in range(15):
            assert client.put("products/1", {"stock_quantity": base + i}).status_code == 200

    threads = [threading.Thread(target=writer, args=(base,)) for base in (100, 200, 300, 400)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = peer.control.product("SKU-000001")["stock_quantity"]
    events = receiver.wait_for_events(60)
    assert len(events) == 60
    assert events[-1]["stock_quantity"] == final  # the last event tells the final value
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    assert sum(e["events"] for e in peer.control.log()) == 60


def test_failed_batches_are_retried_in_order(clock) -> None:
    with (
        EventReceiver(SECRET, clock=clock, fail_next=3) as receiver,
        serve_in_thread(shared_secret=SECRET, sidecar_url=receiver.url, clock=clock) as handle,
    ):
        handle.control.seed(simple=1)
        for quantity in (1, 2, 3, 4):
            handle.control.set_stock(quantity, sku="SKU-000001")
        events = receiver.wait_for_events(4)
        assert [e["stock_quantity"] for e in events] == [1, 2, 3, 4]
        assert len(receiver.failed) == 3
        assert all(b.payload["events"][0]["stock_quantity"] == 1 for b in receiver.failed)  # the head, each time
        assert handle.control.events()["failed_attempts"] == 3


def test_sender_waits_for_configuration(clock, receiver) -> None:
    with serve_in_thread(clock=clock) as handle:
        handle.control.seed(simple=1)
        handle.control.set_stock(4, sku="SKU-000001")
        status = handle.control.events()
        assert status["enabled"] is False and status["not_configured_events"] == 1
        handle.control.configure(sidecar_url=receiver.url, shared_secret=SECRET)
        handle.control.set_stock(5, sku="SKU-000001")
        assert [e["stock_quantity"] for e in receiver.wait_for_events(1)] == [5]


# -- control, faults, process ---------------------------------------------------------------------


def test_request_log_since_and_control_calls_not_logged(peer) -> None:
    peer.control.seed(simple=2)
    client = api(peer.url)
    client.get("products", params={"per_page": 5})
    position = peer.control.log_position()
    client.put("products/1", {"stock_quantity": 1})
    peer.control.product("SKU-000001")
    later = peer.control.log(since=position)
    assert len(later) == 1
    entry = later[0]
    assert entry["method"] == "PUT" and entry["path"] == REST + "products/1" and entry["status"] == 200
    assert entry["body"] == {"stock_quantity": 1} and entry["marked"] is False
    first = peer.control.log()[0]
    assert first["query"] == {"per_page": "5"}  # no oauth_* params
    peer.control.clear_log()
    assert peer.control.log() == []
    peer.control.reset()
    assert peer.control.health()["products"] == 0


def test_fault_injection(peer) -> None:
    peer.control.seed(simple=1)
    client = api(peer.url)
    peer.control.set_faults(fail_next=2, status=503)
    assert [client.get("products").status_code for _ in range(3)] == [503, 503, 200]
    peer.control.set_faults(fail_next=1, status=502, after_commit=True)
    lost = client.put("products/1", {"stock_quantity": 6})
    assert lost.status_code == 502
    assert peer.control.product("SKU-000001")["stock_quantity"] == 6  # the write happened
    peer.control.set_faults(fail_next=1, status=429, retry_after=7)
    limited = client.get("products")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    peer.control.set_faults(error_rate=1.0, status=500, path_contains="/batch")
    assert client.get("products").status_code == 200
    assert client.post("products/batch", {"update": []}).status_code == 500
    peer.control.set_faults(hang_next=1, hang_seconds=30)
    with pytest.raises(requests.Timeout):
        API(peer.url, "ck_test", "cs_test", version="wc/v3", timeout=0.3).get("products")
    peer.control.clear_faults()  # releases the hung request
    assert client.get("products").status_code == 200


def test_peer_as_a_process() -> None:
    # The process runs on the system clock, so the receiver checks timestamps against it too.
    with (
        EventReceiver(SECRET) as receiver,
        WooPeerProcess(sidecar_url=receiver.url, secret=SECRET, seed=7, key="ck_x", secret_key="cs_y") as proc,
    ):
        assert proc.ready["event"] == "woo_peer_ready" and proc.ready["products"] == 7
        resp = api(proc.url, key="ck_x", secret="cs_y").get("products", params={"per_page": 100})
        assert resp.status_code == 200 and len(resp.json()) == 7
        proc.control.set_stock(1, sku="SKU-000007")
        assert receiver.wait_for_events(1)[0]["sku"] == "SKU-000007"
        proc.kill()
        assert proc.proc is not None and proc.proc.poll() is not None


def test_scales_to_100k_products() -> None:
    with serve_in_thread() as handle:
        assert handle.control.seed(simple=100_000)["created"] == 100_000
        client = api(handle.url)
        last = client.get("products", params={"per_page": 100, "page": 1000, "orderby": "id", "order": "asc"})
        assert last.headers["X-WP-Total"] == "100000" and last.json()[-1]["sku"] == "SKU-100000"
        wanted = [f"SKU-{i:06d}" for i in range(50_000, 50_100)]
        found = client.get("products", params={"sku": ",".join(wanted), "per_page": 100}).json()
        assert sorted(p["sku"] for p in found) == wanted
        batch = client.post("products/batch", {"update": [{"id": i, "stock_quantity": 1} for i in range(1, 101)]})
        assert batch.status_code == 200 and handle.control.product("SKU-000100")["stock_quantity"] == 1


def test_latency_model_charges_writes_per_batch_item_and_reads_per_page():
    from keycrm_bridge.woo_peer.server import Latency

    model = Latency(write_s=0.12, item_s=0.036, read_s=0.06)
    assert model.of("GET", None) == 0.06
    assert model.of("PUT", {"stock_quantity": 3}) == 0.12
    assert abs(model.of("POST", {"update": [{}] * 100}) - 3.72) < 1e-9
    assert Latency().of("POST", {"update": [{}] * 100}) == 0.0, "the tests' peer answers at once"
