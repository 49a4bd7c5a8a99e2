"""KeyCRM's webhook is a doorbell: unsigned, so its values are believed only where they agree with
what the sidecar knows, and otherwise the named offers are read from KeyCRM first. A forged, replayed
or stale webhook — zero, a made-up number, a non-finite one — changes nothing on either side, in
every mode; it costs a budgeted read at most. Real processes over loopback."""

from __future__ import annotations

import pytest
import requests

from bridge import wait_until
from stack import TOKEN, Stack, simple


@pytest.fixture
def stack(tmp_path, request):
    s = Stack(tmp_path, request.param)
    yield s
    s.stop()


def forge(stack: Stack, raw: str) -> int:
    r = requests.post(f"{stack.web.url}/v1/keycrm/webhook/{TOKEN}", data=raw,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code < 500, r.text
    return r.status_code


@pytest.mark.parametrize("stack", ["keycrm", "woocommerce", "two-way"], indirect=True)
def test_forged_webhooks_change_nothing_on_either_side(stack):
    skus = ["F-1", "F-2", "F-3"]
    stack.start([{"sku": s, "quantity": 10} for s in skus], [simple(s, 10) for s in skus])
    stack.settle()
    ids = {s: stack.sim.control.truth([s])[s]["offer_id"] for s in skus}
    sim_mark, woo_mark = stack.sim.control.last_seq(), stack.peer.control.log_position()
    assert forge(stack, f'[{{"offer_id":{ids["F-1"]},"sku":"F-1","in_stock":0,"in_reserve":0}}]') == 202
    assert forge(stack, f'[{{"offer_id":{ids["F-2"]},"sku":"F-2","in_stock":3,"in_reserve":1}},'
                        f'{{"offer_id":{ids["F-1"]},"sku":"F-1","in_stock":0,"in_reserve":10}}]') == 202
    forge(stack, f'[{{"offer_id":{ids["F-1"]},"sku":"F-1","in_stock":Infinity,"in_reserve":0}}]')
    forge(stack, '[{"offer_id":999999,"sku":"NOT-THERE","in_stock":0,"in_reserve":0}]')
    st = stack.settle()
    for s in skus:
        assert stack.woo_stock(s) == 10 and stack.kc_sellable(s) == 10, s
    assert stack.woo_writes(woo_mark) == [] and stack.keycrm_stock_writes(sim_mark) == []
    reads = stack.sim.control.requests(sim_mark, method="GET", path="/offers/stocks")
    assert reads, "the disagreeing webhooks were not checked against KeyCRM"
    assert len(reads) <= 4, "a read per forged webhook at most (≤ 50 offers each)"
    assert st["quarantine"]["count"] <= 1  # the non-finite row, when the door let it in
    # A good change afterwards arrives within seconds.
    if stack.mode == "woocommerce":
        stack.peer.control.set_stock(4, sku="F-3")
        wait_until(lambda: stack.kc_sellable("F-3") == 4, timeout=10, what="a shop edit after the forgeries")
    else:
        stack.sim.control.receive("F-3", 5)
        wait_until(lambda: stack.woo_stock("F-3") == 15, timeout=10, what="a receiving after the forgeries")


@pytest.mark.parametrize("stack", ["keycrm"], indirect=True)
def test_a_webhook_that_agrees_costs_no_read(stack):
    stack.start([{"sku": "A-1", "quantity": 10}], [simple("A-1", 10)])
    stack.settle()
    offer_id = stack.sim.control.truth(["A-1"])["A-1"]["offer_id"]
    stack.sim.control.receive("A-1", 5)                 # KeyCRM's real webhook: read, and now known
    wait_until(lambda: stack.woo_stock("A-1") == 15, timeout=10, what="the receiving")
    stack.settle()
    sim_mark = stack.sim.control.last_seq()
    forge(stack, f'[{{"offer_id":{offer_id},"sku":"A-1","in_stock":15,"in_reserve":0}}]')  # a replay of the truth
    stack.settle()
    assert stack.sim.control.requests(sim_mark, method="GET", path="/offers/stocks") == []
    assert stack.woo_stock("A-1") == 15
