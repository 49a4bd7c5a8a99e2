"""The guard in both directions, and the ways around it that were seen: mass cuts of matched SKUs —
at once, diluted by one-sided SKUs, or as a trickle — into WooCommerce or into KeyCRM are held until
confirmed, and everything else still syncs. Real processes over loopback."""

from __future__ import annotations

import pytest

from bridge import wait_until
from stack import Stack, simple

GUARD = {"GUARD_SHARE": "0.2", "GUARD_MIN_SKUS": "5"}


@pytest.fixture
def stack(tmp_path, request):
    mode, extra = request.param
    s = Stack(tmp_path, mode, **{**GUARD, **extra})
    yield s
    s.stop()


def start(stack, matched, keycrm_only=()):
    stack.start([{"sku": s, "quantity": 10} for s in [*matched, *keycrm_only]], [simple(s, 10) for s in matched])
    stack.settle(timeout=60)


@pytest.mark.parametrize("stack", [("keycrm", {"SWEEP_PAGE_INTERVAL_S": "0.2"})], indirect=True)
def test_one_sided_skus_do_not_dilute_the_share(stack):
    matched = [f"M-{i}" for i in range(20)]
    start(stack, matched, [f"K-{i}" for i in range(150)])   # KeyCRM-only SKUs the sweep reads in
    wait_until(lambda: stack.status()["sweep"], timeout=60, what="a whole sweep (KeyCRM-only SKUs in the ledger)")
    for s in matched[:6]:                                    # 6 of 20 matched: more than 20 %
        stack.sim.control.set_stock(s, quantity=0)
    hold = wait_until(lambda: stack.status()["guard_holds"], timeout=20, what="guard hold")[0]
    assert sorted(hold["skus"]) == sorted(matched[:6]) and "of 20 matched" in hold["reason"]
    stack.sim.control.receive(matched[10], 2)                # everything else still syncs
    wait_until(lambda: stack.woo_stock(matched[10]) == 12, timeout=15, what="an unrelated receiving")
    assert all(stack.woo_stock(s) == 10 for s in matched[:6]), "a held cut was applied"


@pytest.mark.parametrize("stack", [("keycrm", {})], indirect=True)
def test_a_trickle_of_cuts_is_held_like_a_burst(stack):
    matched = [f"T-{i}" for i in range(20)]
    start(stack, matched)
    applied = 0
    for n in range(4):                                       # four trickles of 2 zeros each
        for s in matched[2 * n:2 * n + 2]:
            stack.sim.control.set_stock(s, quantity=0)
        st = stack.settle()
        if st["guard_holds"]:
            break
        applied += 2
    st = stack.status()
    assert st["guard_holds"], "a trickle zeroed the shop with no hold"
    zeroed = [s for s in matched if stack.woo_stock(s) == 0]
    assert len(zeroed) == applied <= 4, zeroed            # at most GUARD_MIN_SKUS - 1 went through


@pytest.mark.parametrize("stack", [("woocommerce", {})], indirect=True)
def test_mass_cut_into_keycrm_is_held_until_confirmed(stack):
    matched = [f"W-{i}" for i in range(20)]
    start(stack, matched)
    for s in matched[:8]:
        stack.peer.control.set_stock(0, sku=s)               # a bulk edit zeroes 8 of 20 in the shop
    hold = wait_until(lambda: stack.status()["guard_holds"], timeout=20, what="guard hold")[0]
    assert hold["direction"] == "keycrm" and sorted(hold["skus"]) == sorted(matched[:8])
    stack.peer.control.set_stock(7, sku=matched[15])         # everything else still syncs
    wait_until(lambda: stack.kc_sellable(matched[15]) == 7, timeout=15, what="an unrelated edit")
    assert all(stack.kc_sellable(s) == 10 for s in matched[:8]), "a held cut reached KeyCRM"
    assert stack.signed("POST", f"/v1/guards/{hold['id']}/confirm").status_code == 202
    wait_until(lambda: all(stack.kc_sellable(s) == 0 for s in matched[:8]), timeout=15, what="confirmed cut applied")
    st = stack.settle()
    assert st["guard_holds"] == []
