"""One bad item never stops the rest: poison that got past the door is set aside per item, with its
stage and reason, and a good change sent right after still arrives within seconds. Real processes:
the KeyCRM simulator, the WooCommerce peer, gunicorn and the worker.

The poison is written straight into the store's inboxes, as a door that admitted it would have left
it: the door refuses these values now, and this is about what happens after admission.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from keycrm_bridge.store import Store

from bridge import event, post_events, wait_until
from stack import Stack, simple

POISON_EVENTS = [
    # (what, raw JSON of one event: the text is stored as received)
    ("product_id 2^63", '{"id":"p-big","type":"stock.set","occurred_at":1.0,"product_id":9223372036854775808,'
                        '"parent_id":0,"sku":"P-1","cause":"manual","stock_quantity":5}'),
    ("occurred_at NaN", '{"id":"p-nan","type":"stock.set","occurred_at":NaN,"product_id":1,'
                        '"parent_id":0,"sku":"P-1","cause":"manual","stock_quantity":5}'),
    ("lone surrogate", '{"id":"p-sur","type":"stock.set","occurred_at":1.0,"product_id":1,'
                       '"parent_id":0,"sku":"\\ud800","cause":"manual","stock_quantity":5}'),
]


@pytest.fixture
def stack(tmp_path, request):
    mode = getattr(request, "param", "woocommerce")
    s = Stack(tmp_path, mode)
    yield s
    s.stop()


def batch_text(*raw_events: str) -> str:
    """A batch body as stored, from events' raw JSON text (values json.dumps would not write)."""
    return '{"site":"https://shop.test","events":[' + ",".join(raw_events) + "]}"


def _store(stack: Stack) -> Store:
    return Store(str(stack.tmp / "db.sqlite3"))


def _set_aside(stack: Stack, stage: str) -> list[dict]:
    return [i for i in stack.status()["quarantine"]["items"] if i["stage"] == stage]


def test_poisoned_events_in_a_batch_are_set_aside_and_the_rest_go_on(stack):
    skus = ["OK-1", "OK-2"]
    stack.start([{"sku": s, "quantity": 10} for s in skus], [simple(s, 10) for s in skus])
    stack.settle()
    good = event("OK-1", 11, product_id=stack.peer.control.product("OK-1")["id"])
    # One batch holding every poison class and a good event: the good one must not wait on them.
    body = batch_text(*(raw for _, raw in POISON_EVENTS), json.dumps(good))
    store = _store(stack)
    store.append_batch(body, len(POISON_EVENTS) + 1, 0.0)
    store.append_batch("not json at all", 1, 0.0)
    wait_until(lambda: stack.kc_sellable("OK-1") == 11, timeout=15, what="the good event beside the poison")
    # A good change sent afterwards arrives within seconds, over the plugin's own path.
    stack.peer.control.set_stock(7, sku="OK-2")
    wait_until(lambda: stack.kc_sellable("OK-2") == 7, timeout=15, what="a later good change")
    st = stack.settle()
    items = _set_aside(stack, "intake")
    assert {i["key"] for i in items} >= {"event:p-big", "event:p-nan", "event:p-sur"}
    assert any(i["key"].startswith("batch:") for i in items), "the unreadable batch is listed"
    assert st["queue_depth"] == 0 and st["quarantine"]["count"] == len(items)


def test_a_value_no_stage_can_write_is_set_aside_per_sku(stack):
    skus = ["V-1", "V-2"]
    stack.start([{"sku": s, "quantity": 10} for s in skus], [simple(s, 10) for s in skus])
    stack.settle()
    # 1e309 is +inf once parsed: the ledger takes it, but no KeyCRM row can carry it.
    bad = json.dumps(event("V-1", 3)).replace('"stock_quantity": 3', '"stock_quantity": 1e309')
    _store(stack).append_batch(batch_text(bad), 1, 0.0)
    wait_until(lambda: _set_aside(stack, "sync"), timeout=15, what="the SKU set aside at the sync")
    stack.peer.control.set_stock(4, sku="V-2")
    wait_until(lambda: stack.kc_sellable("V-2") == 4, timeout=15, what="a later good change of another SKU")
    assert stack.kc_sellable("V-1") == 10, "nothing absurd reached KeyCRM"
    item = _set_aside(stack, "sync")[0]
    assert item["sku"] == "V-1" and "V-1" not in [u["sku"] for u in stack.status()["unmatched_skus"]]
    # The owner retries it after fixing the product: a new good value goes through.
    stack.peer.control.set_stock(6, sku="V-1")
    wait_until(lambda: stack.kc_sellable("V-1") == 6, timeout=15, what="the SKU's next good value")


@pytest.mark.parametrize("stack", ["keycrm"], indirect=True)
def test_poisoned_webhook_rows_never_block_the_keycrm_inbox(stack):
    skus = ["H-1", "H-2"]
    stack.start([{"sku": s, "quantity": 10} for s in skus], [simple(s, 10) for s in skus])
    stack.settle()
    store = _store(stack)
    for raw in ('[{"offer_id":1,"sku":"H-1","in_stock":NaN,"in_reserve":0}]',
                '[{"offer_id":9223372036854775808,"sku":"H-1","in_stock":1,"in_reserve":0}]',
                '[{"offer_id":1,"sku":"\\ud800","in_stock":1,"in_reserve":0}]',
                '[{"offer_id":1,"sku":"H-1","in_stock":Infinity,"in_reserve":0}]'):
        store.conn.execute("INSERT INTO keycrm_inbox (received_at, body) VALUES (0, ?)", (raw,))
    stack.sim.control.receive("H-2", 5)
    wait_until(lambda: stack.woo_stock("H-2") == 15, timeout=15, what="webhook → WooCommerce behind the poison")
    stack.settle()
    assert stack.woo_stock("H-1") == 10 and stack.kc_sellable("H-1") == 10
    assert len(_set_aside(stack, "webhook")) == 4


def test_quarantine_cli_lists_retries_and_drops(stack, tmp_path):
    stack.start([{"sku": "Q-1", "quantity": 10}], [simple("Q-1", 10)])
    stack.settle()
    _store(stack).append_batch(batch_text(POISON_EVENTS[0][1]), 1, 0.0)
    wait_until(lambda: _set_aside(stack, "intake"), timeout=15, what="set aside")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "keycrm_bridge.cli", *args], env=stack.env,
                              capture_output=True, text=True, timeout=60)

    listed = cli("quarantine", "list")
    assert listed.returncode == 0 and "intake" in listed.stdout and "P-1" in listed.stdout
    item_id = _set_aside(stack, "intake")[0]["id"]
    assert "set aside (quarantine): 1" in cli("status").stdout
    assert cli("quarantine", "retry", str(item_id)).returncode == 0
    # Still poisoned: handed back to intake, which sets it aside again (a new entry, the same event).
    wait_until(lambda: [i for i in _set_aside(stack, "intake") if i["id"] != item_id
                        and i["key"] == "event:p-big" and i["status"] == "held"], timeout=15,
               what="the retried item set aside again")
    again = _set_aside(stack, "intake")[0]["id"]
    assert cli("quarantine", "drop", str(again)).returncode == 0
    assert stack.status()["quarantine"]["count"] == 0
    assert cli("quarantine", "drop", "999").returncode == 1
    assert post_events(stack.web.url, [event("Q-1", 3)]).status_code == 202
    wait_until(lambda: stack.kc_sellable("Q-1") == 3, timeout=15, what="a good change after it all")


def test_quarantine_api_retries_and_drops_as_the_plugin_page_does(stack):
    stack.start([{"sku": "Q-2", "quantity": 10}], [simple("Q-2", 10)])
    stack.settle()
    _store(stack).append_batch(batch_text(POISON_EVENTS[0][1]), 1, 0.0)
    item_id = wait_until(lambda: _set_aside(stack, "intake"), timeout=15, what="set aside")[0]["id"]
    assert stack.signed("POST", f"/v1/quarantine/{item_id}/retry", {}, secret="wrong-secret").status_code == 401
    assert stack.signed("POST", f"/v1/quarantine/{item_id}/forget", {}).status_code == 404
    r = stack.signed("POST", f"/v1/quarantine/{item_id}/retry", {})
    assert r.status_code == 202 and r.json() == {"id": item_id, "status": "retry"}
    again = wait_until(lambda: [i for i in _set_aside(stack, "intake") if i["id"] != item_id
                                and i["status"] == "held"], timeout=15, what="the retried item set aside again")
    r = stack.signed("POST", f"/v1/quarantine/{again[0]['id']}/drop", {})
    assert r.status_code == 202 and r.json()["status"] == "dropped"
    assert stack.status()["quarantine"]["count"] == 0
    assert stack.signed("POST", f"/v1/quarantine/{again[0]['id']}/drop", {}).status_code == 404


def test_status_names_each_stage(stack):
    stack.start([{"sku": "L-1", "quantity": 10}], [simple("L-1", 10)])
    stack.settle()
    wait_until(lambda: {"intake", "push", "sync", "webhook", "orders", "sweep", "resync", "catalogue"}
               <= set(stack.status()["stages"]), timeout=15, what="every lane reported")
    assert wait_until(lambda: stack.status()["worker_heartbeat"], what="worker heartbeat")["at"] > 0
    assert all(not v["failures"] for v in stack.status()["stages"].values())


def test_a_rename_keycrm_does_not_apply_is_reported_and_stock_flows_by_offer_id(stack):
    stack.start([{"sku": "OLD-9", "quantity": 10}], [simple("OLD-9", 10)])
    stack.settle()
    offer_id = stack.sim.control.truth(["OLD-9"])["OLD-9"]["offer_id"]
    stack.peer.control.rename("NEW-9", sku="OLD-9")           # the shop renames the SKU
    note = wait_until(lambda: {u["sku"]: u for u in stack.status()["unmatched_skus"]}.get("NEW-9"), timeout=15,
                      what="the unconfirmed rename reported")
    assert note["reason"].startswith("rename `OLD-9` to `NEW-9` in KeyCRM") and note["side"] == "keycrm"
    assert stack.sim.control.truth(["NEW-9"])["NEW-9"] is None, "the simulator renamed after all"
    stack.peer.control.set_stock(6, sku="NEW-9")               # stock of the new SKU: to the offer, by id
    wait_until(lambda: stack.sim.control.truth(["OLD-9"])["OLD-9"]["quantity"] == 6, timeout=15,
               what="stock reached the offer by its id")
    put = stack.keycrm_stock_writes()[-1]["body"]["stocks"]
    assert put == [{"id": offer_id, "quantity": 6}]
    # The owner renames it in KeyCRM: once read back, the open item goes.
    stack.sim.control.edit_offers([{"id": offer_id, "sku": "NEW-9"}])
    stack.peer.control.set_stock(5, sku="NEW-9")
    wait_until(lambda: stack.kc_sellable("NEW-9") == 5, timeout=15, what="stock under the new SKU")
    wait_until(lambda: "NEW-9" not in {u["sku"] for u in stack.status()["unmatched_skus"]}, timeout=20,
               what="the rename confirmed")


def test_a_keycrm_change_reaches_woocommerce_while_the_first_sku_map_listing_still_runs(tmp_path):
    """A shop this large takes the catalogue lane 20 slow pages to list; the change is looked up by SKU."""
    skus = [f"L-{i:04d}" for i in range(1, 2001)]
    s = Stack(tmp_path, "keycrm", peer_faults={"hang_rate": 1.0, "hang_seconds": 0.6, "path_contains": "/products"})
    try:
        s.start([{"sku": k, "quantity": 10} for k in skus], [simple(k, 10) for k in skus])
        s.sim.control.receive("L-1999", 5)
        wait_until(lambda: s.woo_stock("L-1999") == 15, timeout=60, interval=0.05, what="webhook → WooCommerce")
        built = _store(s).conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'woo_skumap_state'").fetchone()[0] and \
            _store(s).conn.execute("SELECT count(*) FROM woo_skumap_state").fetchone()[0]
        assert not built, "the change waited for the whole shop's listing"
    finally:
        s.stop()
