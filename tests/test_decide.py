"""The stock arithmetic as a pure function (the e2e tests prove it over HTTP)."""

from hypothesis import given
from hypothesis import strategies as st

from keycrm_bridge.decide import decide

qty = st.integers(0, 10_000).map(float)


def test_keycrm_mode_subtracts_unreserved_site_orders_and_the_buffer():
    d = decide("keycrm", woo=8, kc=10, agreed=None, inflight=2)
    assert d.woo_target is None and d.kc_target is None  # S4: 10 − 2 in flight = WooCommerce's 8
    assert decide("keycrm", woo=8, kc=15, agreed=8, inflight=2).woo_target == 13  # S2 with an order in flight
    assert decide("keycrm", woo=5, kc=3, agreed=None, buffer=5).woo_target == 0
    assert decide("keycrm", woo=5, kc=None, agreed=None).woo_target is None


def test_woocommerce_mode_never_pushes_an_order_twice():
    assert decide("woocommerce", woo=8, kc=10, agreed=None, inflight=2).kc_target is None
    assert decide("woocommerce", woo=20, kc=10, agreed=None, inflight=2).kc_target == 22
    assert decide("woocommerce", woo=20, kc=10, agreed=None).woo_target is None


def test_two_way_s5_both_changes_survive():
    d = decide("two-way", woo=13, kc=15, agreed=10)
    assert (d.woo_target, d.kc_target, d.agreed) == (18, 18, 18)


def test_two_way_site_order_in_flight_moves_nothing():
    # The order moved the agreed value with it (10 → 8); KeyCRM has not reserved yet.
    d = decide("two-way", woo=8, kc=10, agreed=8, inflight=2)
    assert d.woo_target is None and d.kc_target is None and d.agreed == 8


@given(a=qty, dw=st.integers(-50, 50), dk=st.integers(-50, 50))
def test_two_way_merge_adds_both_deltas_and_is_stable(a, dw, dk):
    woo, kc = max(0.0, a + dw), max(0.0, a + dk)
    d = decide("two-way", woo=woo, kc=kc, agreed=a)
    merged = max(0.0, woo + kc - a)
    assert d.agreed == merged
    # Applying the decision and deciding again changes nothing: own writes never bounce (S3).
    again = decide("two-way", woo=d.woo_target if d.woo_target is not None else woo,
                   kc=d.kc_target if d.kc_target is not None else kc, agreed=d.agreed)
    assert again.woo_target is None and again.kc_target is None


@given(woo=qty, kc=qty, inflight=st.integers(-5, 5).map(float))
def test_keycrm_mode_is_idempotent(woo, kc, inflight):
    d = decide("keycrm", woo=woo, kc=kc, agreed=None, inflight=inflight)
    w = d.woo_target if d.woo_target is not None else woo
    assert decide("keycrm", woo=w, kc=kc, agreed=d.agreed, inflight=inflight).woo_target is None
    assert w >= 0


def test_two_way_half_done_round_is_finished_not_counted_twice():
    # Round 1 merged WooCommerce +3 and KeyCRM +5 into 18; KeyCRM took 18, the WooCommerce write failed.
    d = decide("two-way", woo=13, kc=18, agreed=18, base_woo=13, base_kc=18)
    assert (d.woo_target, d.kc_target, d.agreed) == (18, None, 18)
    # Meanwhile the shop sold one more by hand (13 → 12): that change still counts, once.
    d = decide("two-way", woo=12, kc=18, agreed=18, base_woo=13, base_kc=18)
    assert (d.woo_target, d.kc_target, d.agreed) == (17, 17, 17)
