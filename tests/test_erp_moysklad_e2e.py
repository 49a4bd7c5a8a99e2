"""MoySklad as the master of stock, end to end: the MoySklad stand-in, KeyCRM simulator, gunicorn,
worker and WooCommerce peer as real processes."""

from __future__ import annotations

import time

import pytest
import requests

from keycrm_bridge.erp.doubles.moysklad_testing import MoySkladProcess

from bridge import wait_until
from erp_stack import ErpStack

HOOK = "moysklad-hook-token-0123456789"
STORES = {"st-main": "Основной склад", "st-shop": "Магазин"}
N = 300
WOO = [f"ERP-{i:06d}" for i in range(1, 21)]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ms():
    sim = MoySkladProcess().start()
    items = [{"id": f"00000000-0000-0000-0000-{i:012d}", "article": f"ERP-{i:06d}", "name": f"Товар {i}",
              "stock": {"st-main": i % 7, "st-shop": i % 3}} for i in range(1, N + 1)]
    items.append({"id": "00000000-0000-0000-0000-999999999999", "code": "ERP-CODE-ONLY", "stock": {"st-main": 2}})
    sim.seed(STORES, items)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def stack(ms, tmp_path_factory):
    st = ErpStack(tmp_path_factory.mktemp("ms"), erp="moysklad", MOYSKLAD_TOKEN=ms.token,
                  MOYSKLAD_BASE_URL=ms.api_url, MOYSKLAD_WEBHOOK_TOKEN=HOOK, MOYSKLAD_POLL_INTERVAL_S="2",
                  ERP_WAREHOUSE_MAP="st-main:1,st-shop:2")
    st.start(N, WOO)
    wait_until(lambda: (st.status()["erp"]["last_package"] or {}).get("read") == "reconcile", timeout=90,
               what="the first full read")
    st.wait_erp_idle(90)
    yield st
    st.stop()


def test_daily_full_read_sets_keycrm_per_store(stack):
    assert stack.truth(["ERP-000010"])["ERP-000010"] == {1: 3, 2: 1}
    wait_until(lambda: stack.woo_stock("ERP-000010") == 4, timeout=30, what="WooCommerce follows")
    last = stack.status()["erp"]["last_package"]
    assert last["read"] in ("reconcile", "delta", "webhook")


def test_stock_change_by_webhook_reaches_keycrm_and_woocommerce_within_seconds(stack, ms):
    ms.config(webhook_url=f"{stack.web.url}/v1/erp/moysklad/webhook/{HOOK}")
    try:
        started = time.monotonic()
        ms.change([{"article": "ERP-000005", "store": "st-main", "stock": 42}])
        wait_until(lambda: stack.truth(["ERP-000005"])["ERP-000005"].get(1) == 42, timeout=20, what="KeyCRM")
        wait_until(lambda: stack.woo_stock("ERP-000005") == 42 + 5 % 3, timeout=20, what="WooCommerce")
        assert time.monotonic() - started < 15
        hooks = ms.log()["webhooks"]
        assert hooks and all(h["status"] == 200 for h in hooks)
    finally:
        ms.config(webhook_url="")


def test_webhook_is_deduplicated_by_request_id_and_a_foreign_report_url_is_not_read(stack, ms):
    url = f"{stack.web.url}/v1/erp/moysklad/webhook/{HOOK}"
    body = {"accountId": "x", "stockType": "stock", "reportType": "bystore",
            "reportUrl": "https://evil.example/api/remap/1.2/report/stock/bystore/current"}
    first = requests.post(url, params={"requestId": "req-1"}, json=body, timeout=5)
    again = requests.post(url, params={"requestId": "req-1"}, json=body, timeout=5)
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert first.elapsed.total_seconds() < 1.5
    assert requests.post(url.replace(HOOK, "wrong-token-0123456789"), params={"requestId": "r"}, json=body,
                         timeout=5).status_code == 404
    stack.wait_erp_idle()
    assert all("evil" not in r["path"] for r in ms.log()["requests"])


def test_with_webhooks_off_the_delta_poll_carries_the_change(stack, ms):
    ms.change([{"article": "ERP-000007", "store": "st-shop", "stock": 9}])
    wait_until(lambda: stack.truth(["ERP-000007"])["ERP-000007"].get(2) == 9, timeout=30, what="delta poll")
    wait_until(lambda: stack.woo_stock("ERP-000007") == 0 + 9, timeout=20, what="WooCommerce")
    assert stack.truth(["ERP-000007"])["ERP-000007"].get(1) == 0   # the other store untouched by the delta


def test_moysklad_answering_429_is_waited_out_and_its_units_kept(stack, ms):
    ms.config(force_429=3)
    ms.change([{"article": "ERP-000011", "store": "st-main", "stock": 17}])
    wait_until(lambda: stack.truth(["ERP-000011"])["ERP-000011"].get(1) == 17, timeout=40, what="after 429s")
    reqs = ms.log()["requests"]
    assert sum(1 for r in reqs if r.get("status") == 429) >= 3
    # No 3-second window held more than 45 units of what the bridge sent (4 a request, 5 a report).
    charged = [(r["t"], 5 if "/report/" in r["path"] else 4) for r in reqs if r.get("status") != 429]
    for t, _ in charged:
        assert sum(u for t2, u in charged if t <= t2 < t + 3.0) <= 45


def test_an_item_known_by_code_only_is_matched_and_listed_when_keycrm_lacks_it(stack):
    assert stack.truth(["ERP-CODE-ONLY"])["ERP-CODE-ONLY"] == {}  # KeyCRM has no such offer
    st = stack.status()["erp"]
    assert any(r["sku"] == "ERP-CODE-ONLY" and "KeyCRM has no offer" in r["reason"]
               for r in st["set_aside_examples"]), st["set_aside_examples"]
