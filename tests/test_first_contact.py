"""Nothing is written before it was reviewed: the first contact in every mode.

A bridge that has never synced meets two catalogues that disagree. Changes arrive on both sides
(a shop edit through the plugin, a KeyCRM receiving through the webhook) and the sweep reads all of
KeyCRM; the request logs of both peers show only reads, and status says why. Then the owner runs
`keycrm-bridge resync --yes` (compare, show, apply): every difference is written, and from then on
the live sync moves changes as the mode says.
"""

import subprocess
import sys

import pytest

from bridge import wait_until
from stack import Stack, simple

SKUS = [f"FC-{i:02d}" for i in range(12)]
KC = {s: 5 for s in SKUS}
WOO = {s: (8 if i % 2 else 5) for i, s in enumerate(SKUS)}  # every other SKU differs


def writes(stack: Stack) -> dict[str, list]:
    kc = [r for r in stack.sim.control.requests(0, bodies=False) if r["method"] in ("PUT", "POST", "DELETE")]
    woo = [e for e in stack.peer.control.log() if e["method"] in ("PUT", "POST", "DELETE")]
    return {"keycrm": kc, "woocommerce": woo}


@pytest.mark.parametrize("mode", ["keycrm", "woocommerce", "two-way"])
def test_first_contact_writes_nothing_until_the_owner_applies_the_comparison(tmp_path, mode):
    stack = Stack(tmp_path, mode, reviewed=False, SWEEP_PAGE_INTERVAL_S="0.5").start(
        [{"sku": s, "quantity": q} for s, q in KC.items()], [simple(s, q) for s, q in WOO.items()])
    try:
        stack.peer.control.set_stock(sku="FC-00", quantity=2)          # a shop edit, sent by the plugin
        stack.sim.control.receive("FC-02", 4)                           # a KeyCRM receiving, by webhook

        def read_everything():
            st = stack.status()
            return (st["sweep"] and st["events_received"] and st["last_webhook_at"]
                    and stack.peer.control.events()["pending"] == 0 and st)
        st = wait_until(read_everything, timeout=60, what="the sweep, the plugin event and the webhook read")
        assert st["first_sync"]["approved"] is False
        assert "first sync" in st["first_sync"]["waiting_reason"]
        assert st["last_keycrm_success_at"], "reads count as successful KeyCRM calls"
        assert writes(stack) == {"keycrm": [], "woocommerce": []}, "written before the owner's review"

        out = subprocess.run([sys.executable, "-m", "keycrm_bridge.cli", "status"], env=stack.env,
                             capture_output=True, text=True, timeout=60)
        assert "not writing stock yet: first sync" in out.stdout, out.stdout

        applied = subprocess.run([sys.executable, "-m", "keycrm_bridge.cli", "resync", "--yes"], env=stack.env,
                                 capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "comparison (dry run)" in applied.stdout and "applied" in applied.stdout
        assert stack.status()["first_sync"]["approved"] is True
        woo_now = {s: stack.woo_stock(s) for s in SKUS}
        kc_now = stack.sim.control.sellable_map(SKUS)
        assert woo_now == kc_now, "after the approval both sides hold the same stock"
        if mode == "keycrm":
            assert woo_now["FC-00"] == 5 and woo_now["FC-02"] == 9, "KeyCRM's values stand"
        if mode == "woocommerce":
            assert kc_now["FC-00"] == 2 and kc_now["FC-01"] == 8, "the shop's values stand"

        # From now on the live sync writes, as the mode says.
        if mode in ("woocommerce", "two-way"):
            stack.peer.control.set_stock(sku="FC-03", quantity=11)
            wait_until(lambda: stack.kc_sellable("FC-03") == 11, timeout=30, what="the shop edit in KeyCRM")
        if mode in ("keycrm", "two-way"):
            before = stack.woo_stock("FC-04")
            stack.sim.control.receive("FC-04", 3)
            wait_until(lambda: stack.woo_stock("FC-04") == before + 3, timeout=30,
                       what="the KeyCRM receiving in WooCommerce")
    finally:
        stack.stop()


def test_a_change_of_mode_waits_for_a_new_review(tmp_path):
    stack = Stack(tmp_path, "keycrm").start([{"sku": s, "quantity": q} for s, q in KC.items()],
                                            [simple(s, q) for s, q in KC.items()])
    try:
        assert stack.status()["first_sync"]["approved"] is True
        stack.worker.stop()
        from bridge import Worker

        stack.env["SYNC_MODE"] = "woocommerce"
        stack.worker = Worker(stack.env, tmp_path / "worker2.log", reviewed=False).start()
        out = wait_until(lambda: (r := subprocess.run([sys.executable, "-m", "keycrm_bridge.cli", "status"],
                                                      env=stack.env, capture_output=True, text=True,
                                                      timeout=60)).returncode == 0 and r.stdout, what="status")
        assert "SYNC_MODE changed from keycrm to woocommerce" in out
        since = stack.sim.control.last_seq()
        stack.peer.control.set_stock(sku="FC-05", quantity=1)
        wait_until(lambda: stack.peer.control.events()["pending"] == 0 and stack.status()["queue_depth"] >= 1,
                   what="the shop edit received and queued")
        assert [r for r in stack.sim.control.requests(since, bodies=False) if r["method"] == "PUT"] == []
    finally:
        stack.stop()
