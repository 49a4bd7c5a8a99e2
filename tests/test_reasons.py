"""Every "why" text the sidecar writes has a stable code (the plugin translates codes, not English)."""

from keycrm_bridge import exclusions, reasons
from keycrm_bridge.approval import state
from keycrm_bridge.decide import decide
from keycrm_bridge.resync_plan import WRITTEN_BACK


def test_each_decision_reason_has_its_code_and_values():
    cases = [
        (decide("keycrm", woo=3, kc=5, agreed=None), "keycrm_master", {}),
        (decide("keycrm", woo=3, kc=5, agreed=None, inflight=2), "keycrm_master", {"held": "2"}),
        (decide("woocommerce", woo=3, kc=5, agreed=None), "woocommerce_master", {}),
        (decide("woocommerce", woo=None, kc=5, agreed=None), "woocommerce_unknown", {}),
        (decide("two-way", woo=None, kc=5, agreed=None), "first_from_keycrm", {}),
        (decide("two-way", woo=13, kc=15, agreed=10), "merged", {"agreed": "10", "woo": "+3", "kc": "+5"}),
        (decide("two-way", woo=1, kc=None, agreed=None), "not_in_keycrm", {}),
    ]
    for d, code, args in cases:
        assert reasons.code_of(d.reason) == (code, args), d.reason


def test_unmatched_exclusion_and_waiting_texts_have_codes():
    for text, code in [("SKU not found in KeyCRM", "sku_not_in_keycrm"),
                       ("SKU not found in WooCommerce", "sku_not_in_woocommerce"),
                       ("stock is not managed in WooCommerce for this product", "stock_not_managed"),
                       ("empty SKU: give the product an SKU in WooCommerce", "empty_sku"),
                       (exclusions.REASON, "excluded"), (WRITTEN_BACK, "written_back")]:
        assert reasons.code_of(text)[0] == code, text
    assert reasons.code_of("resync: WooCommerce refused the stock write: not_found") == \
        ("woocommerce_refused_write", {"detail": "not_found"})
    assert reasons.code_of("KeyCRM rejected the stock row: bad <b>") == ("keycrm_rejected_row", {"detail": "bad <b>"})
    assert reasons.code_of("ValueError: 1e309 is not a finite number") == ("other", {})
    assert reasons.code_of(None) == ("other", {})
    row = reasons.coded({"sku": "A", "reason": "SKU not found in KeyCRM"})
    assert row == {"sku": "A", "reason": "SKU not found in KeyCRM", "reason_code": "sku_not_in_keycrm", "reason_args": {}}


def test_the_first_sync_waiting_reasons_have_codes(tmp_path):
    from keycrm_bridge.config import load_settings
    from keycrm_bridge.store import Store

    from bridge import bridge_env

    env = bridge_env(tmp_path / "db.sqlite3")
    settings = load_settings(env)
    store = Store(settings.database_path)
    assert reasons.code_of(state(store, settings)["waiting_reason"])[0] == "first_sync"
    store.set_meta("first_sync_approval", {"mode": "two-way", "account": "x"})
    assert reasons.code_of(state(store, settings)["waiting_reason"]) == \
        ("mode_changed", {"old": "two-way", "new": settings.sync_mode})
    from keycrm_bridge.approval import scope
    store.set_meta("first_sync_approval", {"mode": settings.sync_mode, "account": scope(settings)["account"] + "0"})
    assert reasons.code_of(state(store, settings)["waiting_reason"])[0] == "account_changed"
