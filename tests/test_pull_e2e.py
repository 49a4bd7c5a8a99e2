"""KeyCRM → WooCommerce, the modes and the merge: S2–S6, S10, S13 over real HTTP.

The WooCommerce peer plays the shop *and* its plugin: every change it makes is POSTed to the
sidecar as a signed event batch, with cause `sidecar` when the sidecar's marked REST call caused it.
"""

import pytest

from bridge import wait_until
from stack import Stack, simple


@pytest.fixture
def stack(tmp_path, request):
    mode, kwargs = request.param if isinstance(request.param, tuple) else (request.param, {})
    s = Stack(tmp_path, mode, **kwargs)
    yield s
    s.stop()


def start(stack, skus, qty=10):
    stack.start([{"sku": s, "quantity": qty} for s in skus], [simple(s, qty) for s in skus])
    stack.settle()
    return stack


@pytest.mark.parametrize("stack", ["keycrm", "two-way"], indirect=True)
def test_s2_receiving_reaches_woocommerce_by_webhook(stack):
    start(stack, ["A-1", "A-2"])
    assert stack.woo_writes() == [], "nothing to write when both sides already agree"
    stack.sim.control.receive("A-1", 5)
    wait_until(lambda: stack.woo_stock("A-1") == 15, timeout=10, what="webhook → WooCommerce")
    st = stack.settle()
    assert stack.woo_stock("A-2") == 10 and st["last_webhook_at"]
    assert stack.keycrm_stock_writes() == [], "S3: our WooCommerce write came back as a hook and went nowhere"


@pytest.mark.parametrize("stack", [("keycrm", {"webhook": False, "SWEEP_PAGE_INTERVAL_S": "0.3"})], indirect=True)
def test_s2_receiving_reaches_woocommerce_by_sweep_alone(stack):
    start(stack, [f"W-{i}" for i in range(60)])  # two pages of /offers/stocks
    stack.sim.control.receive("W-55", 5)
    wait_until(lambda: stack.woo_stock("W-55") == 15, timeout=20, what="sweep → WooCommerce")
    assert stack.status()["sweep"]["pages"] == 2


@pytest.mark.parametrize("stack", ["two-way"], indirect=True)
def test_s3_own_writes_never_bounce(stack):
    start(stack, ["B-1"])
    sim_mark, woo_mark = stack.sim.control.last_seq(), stack.peer.control.log_position()
    stack.peer.control.set_stock(13, sku="B-1")          # a shop edit → one KeyCRM write
    wait_until(lambda: stack.kc_sellable("B-1") == 13, timeout=10, what="edit reached KeyCRM")
    stack.settle()
    assert len(stack.keycrm_stock_writes(sim_mark)) == 1
    assert stack.woo_writes(woo_mark) == [], "KeyCRM's webhook of our own write was written back"
    sim_mark, woo_mark = stack.sim.control.last_seq(), stack.peer.control.log_position()
    stack.sim.control.receive("B-1", 2)                   # a KeyCRM receiving → one WooCommerce write
    wait_until(lambda: stack.woo_stock("B-1") == 15, timeout=10, what="receiving reached WooCommerce")
    stack.settle()
    assert len(stack.woo_writes(woo_mark)) == 1
    assert stack.keycrm_stock_writes(sim_mark) == [], "the plugin's hook of our own write was pushed back"


@pytest.mark.parametrize("stack", ["keycrm", "two-way", "woocommerce"], indirect=True)
def test_s4_site_order_is_never_counted_twice(stack):
    start(stack, ["C-1"])
    sim_mark, woo_mark = stack.sim.control.last_seq(), stack.peer.control.log_position()
    order = stack.peer.control.place_order([{"sku": "C-1", "quantity": 2}])
    assert stack.woo_stock("C-1") == 8
    # KeyCRM has not reserved yet: its sellable is still 10. The bridge must hold the 2 as in flight.
    st = stack.settle()
    assert st["in_flight_orders"] == 1
    assert stack.woo_writes(woo_mark) == [] and stack.woo_stock("C-1") == 8
    assert stack.kc_sellable("C-1") == 10
    # KeyCRM's own order integration brings the order in and reserves it.
    stack.sim.control.create_order({"C-1": 2}, source_uuid=str(order["order_id"]))
    wait_until(lambda: stack.status()["in_flight_orders"] == 0, timeout=15, what="order resolved")
    stack.settle()
    assert stack.kc_sellable("C-1") == 8 == stack.woo_stock("C-1")
    assert stack.woo_writes(woo_mark) == [], "WooCommerce was set back up (or down twice)"
    writes = [row for r in stack.keycrm_stock_writes(sim_mark) for row in r["body"]["stocks"]]
    assert writes == [], f"KeyCRM got a quantity from us for a site order: {writes}"


@pytest.mark.parametrize("stack", [("two-way", {"SWEEP_PAGE_INTERVAL_S": "0.5"})], indirect=True)
def test_s5_concurrent_edits_on_both_sides_both_survive(stack):
    start(stack, ["D-1"])
    # The sweep has seen the SKU on both sides at 10: that is the value they agree on.
    wait_until(lambda: _agreed(stack, "D-1") == 10, what="agreed value")
    stack.peer.control.set_stock(13, sku="D-1")   # +3 in the shop
    stack.sim.control.receive("D-1", 5)           # +5 received in KeyCRM, within the same poll interval
    wait_until(lambda: stack.woo_stock("D-1") == 18 and stack.kc_sellable("D-1") == 18, timeout=20,
               what="both sides at old + 8")
    stack.settle()
    assert stack.woo_stock("D-1") == 18 and stack.kc_sellable("D-1") == 18


def _agreed(stack, sku):
    return stack.signed("GET", f"/v1/skus/{sku}").json()["agreed"]


@pytest.mark.parametrize("stack", ["keycrm", "two-way"], indirect=True)
@pytest.mark.parametrize("keycrm_saw_order", [True, False])
def test_s6_cancelled_order_is_restored_once(stack, keycrm_saw_order):
    start(stack, ["E-1"])
    woo_mark = stack.peer.control.log_position()
    order = stack.peer.control.place_order([{"sku": "E-1", "quantity": 3}])
    kc_order = None
    if keycrm_saw_order:
        kc_order = stack.sim.control.create_order({"E-1": 3}, source_uuid=str(order["order_id"]))
        wait_until(lambda: stack.status()["in_flight_orders"] == 0, timeout=15, what="order resolved")
    stack.peer.control.cancel_order(order["order_id"])
    assert stack.woo_stock("E-1") == 10
    if kc_order:
        stack.sim.control.cancel_order(kc_order["id"])
    else:
        # KeyCRM learns of the order only now, already cancelled.
        created = stack.sim.control.create_order({"E-1": 3}, source_uuid=str(order["order_id"]))
        stack.sim.control.cancel_order(created["id"])
    wait_until(lambda: stack.status()["in_flight_orders"] == 0, timeout=15, what="restore resolved")
    stack.settle()
    assert stack.woo_stock("E-1") == 10 == stack.kc_sellable("E-1")
    too_high = [e for e in stack.woo_writes(woo_mark) if "13" in str(e.get("body"))]
    assert not too_high, "restored twice"


@pytest.mark.parametrize("stack", ["keycrm"], indirect=True)
def test_s10_each_variation_is_one_offer(stack):
    kc = [{"name": "T-shirt", "offers": [{"sku": f"TS-{c}", "quantity": 10} for c in ("R", "G", "B")]}]
    woo = [{"type": "variable", "name": "T-shirt", "sku": "TS", "variations": [
        {"sku": f"TS-{c}", "regular_price": "50.00", "manage_stock": True, "stock_quantity": 10} for c in ("R", "G", "B")]}]
    stack.start(kc, woo)
    stack.settle()
    woo_mark = stack.peer.control.log_position()
    stack.sim.control.receive("TS-G", 4)
    wait_until(lambda: stack.woo_stock("TS-G") == 14, timeout=10, what="variation updated")
    stack.settle()
    assert stack.woo_stock("TS-R") == 10 and stack.woo_stock("TS-B") == 10
    writes = stack.woo_writes(woo_mark)
    variation = stack.peer.control.product("TS-G")["id"]
    assert len(writes) == 1 and [(i["product_id"], i["expect"], i["set"]) for i in writes[0]["body"]["items"]] \
        == [(variation, 10, 14)], "one conditional write, of the variation itself"


@pytest.mark.parametrize("stack", [("keycrm", {"GUARD_SHARE": "0.5", "GUARD_MIN_SKUS": "5"})], indirect=True)
def test_s13_a_cycle_that_empties_the_shop_is_held_until_confirmed(stack):
    skus = [f"G-{i}" for i in range(20)]
    start(stack, skus)
    for s in skus[:12]:
        stack.sim.control.set_stock(s, quantity=0)       # e.g. a broken import zeroes 12 of 20
    wait_until(lambda: stack.status()["guard_holds"], timeout=15, what="guard hold")
    st = stack.settle()
    hold = st["guard_holds"][0]
    assert sorted(hold["skus"]) == sorted(skus[:12])
    assert all(stack.woo_stock(s) == 10 for s in skus), "held cycle was applied anyway"
    r = stack.signed("POST", f"/v1/guards/{hold['id']}/confirm")
    assert r.status_code == 202
    wait_until(lambda: all(stack.woo_stock(s) == 0 for s in skus[:12]), timeout=15, what="confirmed cycle applied")
    assert all(stack.woo_stock(s) == 10 for s in skus[12:])


@pytest.mark.parametrize("stack", [("two-way", {"SWEEP_PAGE_INTERVAL_S": "0.5"})], indirect=True)
def test_s5_when_the_woocommerce_write_fails_the_merge_is_finished_once_it_is_back(stack):
    start(stack, ["F-1"])
    wait_until(lambda: _agreed(stack, "F-1") == 10, what="agreed value")
    # WooCommerce answers every stock batch with 500 for a while (the client retries, then gives up).
    stack.peer.control.set_faults(status=500, path_contains="keycrm-bridge/v1/stock", fail_next=7)
    stack.peer.control.set_stock(13, sku="F-1")
    stack.sim.control.receive("F-1", 5)
    wait_until(lambda: stack.kc_sellable("F-1") == 18, timeout=20, what="KeyCRM took the merged value")
    wait_until(lambda: stack.woo_stock("F-1") == 18, timeout=60, what="WooCommerce got it once it was back")
    stack.settle()
    assert stack.woo_stock("F-1") == 18 and stack.kc_sellable("F-1") == 18, "a half-done round was counted twice"
    assert [e for e in stack.peer.control.log() if e["status"] == 500], "the WooCommerce outage never happened"
