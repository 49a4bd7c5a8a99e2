"""The WooCommerce REST peer behaves like the plugin over real HTTP: its events are signed, valid
and tagged by the sidecar's marker, follow orders, refunds, renames and edits, keep commit order and
are retried in order."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from importlib import resources

import jsonschema
import pytest

from keycrm_bridge.woo_peer.control_client import PeerControlError
from keycrm_bridge.woo_peer.event_receiver import EventReceiver
from keycrm_bridge.woo_peer.testing import serve_in_thread

from woo_fixtures import SECRET, api


def marker(secret: str, ts: int) -> str:
    return f"{ts}.{hmac.new(secret.encode(), f'origin.{ts}'.encode(), hashlib.sha256).hexdigest()}"


@pytest.fixture(scope="module")
def schema() -> dict:
    text = resources.files("keycrm_bridge").joinpath("schema/events.schema.json").read_text()
    return json.loads(text)


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
