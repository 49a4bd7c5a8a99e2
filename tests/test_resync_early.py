"""A resync writes WooCommerce while KeyCRM is still being read (its wall time is the larger of the two
sides, not their sum), and a SKU that a later KeyCRM page lists a second time is written back.

KeyCRM allows the bridge 3 requests a minute here, on a clock 20× fast, so the reads wait a (simulated)
minute after the second stock page: the WooCommerce catalogue and the first writes go out in that wait.
"""

import time

import pytest

from keycrm_bridge.clock import AcceleratedClock
from keycrm_bridge.resync_plan import WRITTEN_BACK
from keycrm_bridge.woo_client import STOCK_ROUTE

from resync_stack import ResyncStack, by_sku, simple

FACTOR = 20.0


class FastStack(ResyncStack):
    def __init__(self, tmp, origin: float) -> None:
        self.clock = AcceleratedClock(FACTOR, origin)
        super().__init__(tmp, "keycrm", KEYCRM_RATE_PER_MINUTE="3", KEYCRM_BRIDGE_CLOCK=f"accelerated:{FACTOR}:{origin}")

    def call(self, method, path, body=None):
        return self.signed(method, path, body, secret=self.secret, now=self.clock.now())  # the sidecar's clock


@pytest.fixture
def stack(tmp_path):
    s = FastStack(tmp_path, time.time())
    yield s
    s.stop()


def test_writes_go_out_between_keycrm_pages_and_a_later_duplicate_is_written_back(stack):
    skus = [f"E-{i:03d}" for i in range(1, 121)]
    drifted = skus[:120:12]  # 10 SKUs, on all three stock pages; E-001 is one of them
    offers = [{"sku": s, "quantity": 5 if s in drifted else 7} for s in skus]
    offers.append({"sku": "E-001", "quantity": 9})  # the same SKU again, on the third page
    stack.start(offers, [simple(s, 7) for s in skus])
    job = stack.start_resync(dry_run=False)
    st = stack.wait_job(job, timeout=90)
    items = by_sku(stack.plan(job))
    assert items["E-001"]["problems"] == ["duplicate_in_keycrm"] and items["E-001"]["action"] == "none"
    # E-001 was written from its first offer before the third page showed the second: written back.
    assert items["E-001"]["reason"] == WRITTEN_BACK and items["E-001"]["woo_status"] == "done"
    assert stack.woo_stock("E-001") == 7
    rest = [s for s in drifted if s != "E-001"]
    assert {s for s, i in items.items() if i["action"] == "update_woocommerce"} == set(rest)
    assert all(stack.woo_stock(s) == 5 and items[s]["woo_status"] == "done" for s in rest)
    assert st["errors"] == 0 and st["done"] == st["total"]
    # Each SKU written once (E-001 once more, back), and the early batch went out before the last stock page.
    writes = stack.woo_stock_writes()
    assert max(writes.values()) == 1 or sorted(writes.values()).count(2) == 1, writes
    pages = [r for r in stack.sim.control.requests(method="GET", path="/offers/stocks") if r["status"] == 200
             and r["query"].get("page") == "3"]
    woo = [e for e in stack.peer.control.log() if e["path"] == STOCK_ROUTE]
    assert pages and woo, (pages, woo)
    assert woo[0]["at"] < pages[0]["time"], "the first WooCommerce batch waited for the last KeyCRM page"
