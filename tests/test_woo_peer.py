"""The WooCommerce REST peer behaves like wc/v3 over real HTTP: authentication, listing, writes,
its controls, faults, latency, running as a process. As the plugin: test_woo_peer_plugin.py."""

from __future__ import annotations

import pytest
import requests
from woocommerce import API

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.woo_peer.event_receiver import EventReceiver
from keycrm_bridge.woo_peer.testing import WooPeerProcess, serve_in_thread

from woo_fixtures import REST, SECRET, api

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
