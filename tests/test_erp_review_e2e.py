"""The first-sync review in erp mode, with real processes: before the owner applied it, a 1C package
writes nothing; the comparison (a resync dry run) shows what the ERP will write to KeyCRM, per
warehouse and with both figures; applying it sends exactly that."""

from __future__ import annotations

import pytest

from keycrm_bridge.erp.doubles.cml import Offer, build_exchange, catalogue
from keycrm_bridge.resync_cli import summary

from bridge import wait_until
from erp_stack import WAREHOUSES, ErpStack

pytestmark = pytest.mark.slow
N = 200


def wait_job(stack: ErpStack, job_id: str) -> dict:
    def done():
        r = stack.signed("GET", f"/v1/resync/{job_id}")
        assert r.status_code == 200, r.text
        return r.json() if r.json()["phase"] in ("done", "failed") else None
    st = wait_until(done, timeout=120, interval=0.2, what=f"resync {job_id}")
    assert st["phase"] == "done", st
    return st


def test_the_review_shows_what_the_erp_will_write_and_applying_it_writes_that(tmp_path):
    stack = ErpStack(tmp_path / "s").start(N, [f"ERP-{i:06d}" for i in range(1, 6)], reviewed=False)
    try:
        offers = catalogue(N, list(WAREHOUSES))
        offers[0] = Offer(offers[0].guid, offers[0].sku, offers[0].name, offers[0].price, {"wh-main": 0.0})
        ex = stack.onec().run(build_exchange(tmp_path / "p", offers, WAREHOUSES), chunk=64 * 1024)
        assert "offers.xml" in ex.imports
        wait_until(lambda: stack.status()["erp"]["jobs_waiting"] == 0, timeout=60, what="the package read")
        assert stack.stock_puts() == []                      # not reviewed: nothing written
        st = wait_job(stack, stack.signed("POST", "/v1/resync", {"dry_run": True}).json()["id"])
        erp = st["erp"]
        # Every SKU but the first (ERP on hand 0, KeyCRM 0) differs on both KeyCRM warehouses.
        want = {"1": sum(1 for o in offers if o.stock.get("wh-main")), "2": sum(1 for o in offers if o.stock.get("wh-shop"))}
        assert erp["skus"] == N and erp["rows_to_write_by_warehouse"] == want, erp
        assert erp["rows_to_write"] == sum(want.values()) and erp["waiting_for_review"] is True
        ex0 = erp["examples"][0]
        mine = next(o for o in offers if o.sku == ex0["sku"])
        assert ex0["erp_quantity"] == mine.stock[{1: "wh-main", 2: "wh-shop"}[ex0["keycrm_warehouse_id"]]]
        assert ex0["keycrm_quantity"] in (0, None)
        assert any("ERP (1c) → KeyCRM on hand" in line for line in summary(st))
        assert stack.stock_puts() == []                      # the comparison wrote nothing either
        wait_job(stack, stack.signed("POST", "/v1/resync", {"dry_run": False}).json()["id"])
        sample = [o for o in offers[1:] if o.sku][:: 37]
        wait_until(lambda: all(stack.truth([o.sku])[o.sku] == {1: o.stock.get("wh-main", 0), 2: o.stock.get("wh-shop", 0)}
                               for o in sample), timeout=60, what="the ERP's stock in KeyCRM once applied")
        puts = stack.stock_puts()
        assert sum(len(p["body"]["stocks"]) for p in puts) == erp["rows_to_write"], len(puts)
    finally:
        stack.stop()
