""""Don't sync this product": an excluded SKU is read but written on neither side, in every path.

The whole bridge over loopback in two-way mode, the KeyCRM webhook off so KeyCRM's changes are found
by the sweep. The plugin's switch arrives as a signed ``product.exclude`` event. While EX-1 is
excluded: a shop edit (events) and a KeyCRM receiving (sweep) each reach the other side for EX-2 and
not for EX-1; a full resync shows EX-1 as "excluded" and writes nothing for it; status and
`keycrm-bridge status` list it. Switched back on, EX-1 is decided at once and both sides agree.
"""

import subprocess
import sys

from bridge import event, post_events, wait_until
from stack import Stack, simple

STOCK_ROUTE = "/wp-json/keycrm-bridge/v1/stock"


def kc_rows_for(stack: Stack, sku: str) -> int:
    return sum(1 for r in stack.keycrm_stock_writes() if 200 <= r["status"] < 300
               for row in r["body"]["stocks"] if row.get("sku") == sku)


def woo_items_for(stack: Stack, product_id: int) -> int:
    return sum(1 for e in stack.peer.control.log() if e["path"] == STOCK_ROUTE
               for item in (e.get("body") or {}).get("items") or [] if int(item.get("product_id") or 0) == product_id)


def switch(stack: Stack, sku: str, product_id: int, excluded: bool) -> None:
    r = post_events(stack.web.url, [event(sku, type="product.exclude", product_id=product_id, excluded=excluded)])
    assert r.status_code == 202, r.text


def test_an_excluded_sku_is_written_nowhere_and_resumes_when_switched_back(tmp_path):
    stack = Stack(tmp_path, "two-way", webhook=False, SWEEP_PAGE_INTERVAL_S="0.3").start(
        [{"sku": "EX-1", "quantity": 5}, {"sku": "EX-2", "quantity": 5}], [simple("EX-1", 5), simple("EX-2", 5)])
    try:
        pid = int(stack.peer.control.product("EX-1")["id"])
        wait_until(lambda: all(stack.signed("GET", f"/v1/skus/{s}").json().get("agreed") == 5 for s in ("EX-1", "EX-2")),
                   timeout=60, what="both SKUs agreed at 5 (the sweep read KeyCRM)")
        switch(stack, "EX-1", pid, True)
        st = wait_until(lambda: (lambda s: s if s["excluded_count"] == 1 else None)(stack.status()),
                        timeout=30, what="the exclusion recorded")
        assert st["excluded_skus"][0]["sku"] == "EX-1" and st["excluded_skus"][0]["product_id"] == pid
        kc_before, woo_before = kc_rows_for(stack, "EX-1"), woo_items_for(stack, pid)

        # Events: a shop edit of each SKU.
        stack.peer.control.set_stock(sku="EX-1", quantity=9)
        stack.peer.control.set_stock(sku="EX-2", quantity=7)
        wait_until(lambda: stack.kc_sellable("EX-2") == 7, timeout=30, what="EX-2's shop edit in KeyCRM")
        stack.settle(timeout=30)
        assert stack.kc_sellable("EX-1") == 5, "the excluded SKU's shop edit reached KeyCRM"

        # The sweep: a KeyCRM receiving of each SKU, found by reading KeyCRM page by page.
        stack.sim.control.receive("EX-1", 3)
        stack.sim.control.receive("EX-2", 2)
        wait_until(lambda: stack.woo_stock("EX-2") == 9, timeout=60, what="EX-2's receiving in WooCommerce")
        wait_until(lambda: (stack.sim.control.sellable("EX-1") == 8
                            and _ledger_kc(stack, "EX-1") == 8), timeout=60,
                   what="the sweep reading EX-1's receiving")
        stack.settle(timeout=30)
        assert stack.woo_stock("EX-1") == 9, "the excluded SKU's KeyCRM receiving reached WooCommerce"

        # A full resync: shown as excluded, written on neither side.
        r = stack.signed("POST", "/v1/resync", {"dry_run": False})
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        done = wait_until(lambda: (lambda j: j if j["phase"] in ("done", "failed") else None)(
            stack.signed("GET", f"/v1/resync/{job}").json()), timeout=90, what="the resync")
        assert done["phase"] == "done", done
        items = {i["sku"]: i for i in stack.signed("GET", f"/v1/resync/{job}/plan.json").json()["items"]}
        assert items["EX-1"]["action"] == "excluded"
        assert stack.woo_stock("EX-1") == 9 and stack.kc_sellable("EX-1") == 8
        assert (kc_rows_for(stack, "EX-1"), woo_items_for(stack, pid)) == (kc_before, woo_before), \
            "a write for the excluded SKU"

        out = subprocess.run([sys.executable, "-m", "keycrm_bridge.cli", "status"], env=stack.env,
                             capture_output=True, text=True, timeout=60)
        assert "excluded from sync in WooCommerce: 1" in out.stdout and "EX-1" in out.stdout, out.stdout
        info = stack.signed("GET", "/v1/skus/EX-1").json()
        assert info["excluded"] is True
        assert any("excluded from sync" in t["text"] for t in info["timeline"])

        # Switched back on: decided at once (both moved since: +4 in the shop, +3 in KeyCRM).
        switch(stack, "EX-1", pid, False)
        wait_until(lambda: stack.woo_stock("EX-1") == stack.kc_sellable("EX-1") == 12, timeout=60,
                   what="EX-1 synced again after the switch back")
        assert kc_rows_for(stack, "EX-1") > kc_before or woo_items_for(stack, pid) > woo_before
        assert stack.status()["excluded_count"] == 0
    finally:
        stack.stop()


def _ledger_kc(stack: Stack, sku: str) -> float | None:
    info = stack.signed("GET", f"/v1/skus/{sku}").json()
    return info.get("keycrm_sellable")


def test_the_switch_follows_a_renamed_product_and_a_late_resend_changes_nothing(tmp_path):
    from keycrm_bridge import exclusions
    from keycrm_bridge.store import Store

    store = Store(str(tmp_path / "db.sqlite3"))
    on = event("R-1", type="product.exclude", product_id=5, excluded=True, occurred_at=2_000_000_000.0)
    with store.transaction() as c:
        exclusions.apply_events(c, [on], 2_000_000_001.0)
    rename = event("R-2", type="product.upsert", product_id=5, old_sku="R-1", product={"name": "x"},
                   occurred_at=2_000_000_002.0)
    late_off = event("R-2", type="product.exclude", product_id=5, excluded=False, occurred_at=1_999_999_999.0)
    with store.transaction() as c:
        exclusions.apply_events(c, [rename, late_off], 2_000_000_003.0)
    assert exclusions.excluded_among(store.conn, ["R-1", "R-2"]) == {"R-2"}
    assert [r["sku"] for r in exclusions.listing(store.conn)] == ["R-2"]
