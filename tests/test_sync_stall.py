"""A round that can write nothing because a side is not writable is not work: it backs off.

Without WooCommerce (keycrm mode, no WOO_URL) KeyCRM's values cannot go anywhere; the SKUs stay
dirty, but the next round waits, longer each time, until a new change arrives. The loop used to
spin on them (a "sync round" log line every few milliseconds).
"""

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.config import load_settings
from keycrm_bridge.ledger import Ledger
from keycrm_bridge.store import Store
from keycrm_bridge.sync import RoundResult, SyncEngine


class NoKeyCRMCalls:
    def iter_stocks(self, skus=None, offer_ids=None, details=True):
        raise AssertionError("the SKUs' KeyCRM values are known: no read needed")

    def put_stocks(self, warehouse_id, rows):
        raise AssertionError("keycrm mode writes no KeyCRM stock")


def test_unwritable_skus_back_off_until_something_new_arrives(tmp_path):
    settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k", "KEYCRM_WRITE_WAREHOUSE_ID": "1",
                              "DATABASE_PATH": str(tmp_path / "db.sqlite3"), "SYNC_MODE": "keycrm",
                              "PUSH_DEBOUNCE_S": "0", "PUSH_MAX_WAIT_S": "0"})
    store, clock = Store(settings.database_path), FakeClock(1_800_000_000.0)
    ledger = Ledger(store)
    sync = SyncEngine(store, ledger, NoKeyCRMCalls(), settings, clock)  # no WooCommerce to write to
    ledger.observe_keycrm({f"S-{i}": float(i) for i in range(5)}, clock.now(), "sweep")
    clock.advance(1)
    assert sync.due()
    first = sync.run_round()
    assert first.decided == 5 and not first.progressed and first.stalled
    assert ledger.dirty_window()[0] == 5, "the SKUs stay dirty: nothing was lost"
    assert not sync.due(), "the same unwritable SKUs are not work"
    clock.advance(16)
    assert sync.due(), "looked at again after the back-off"
    assert sync.run_round().stalled
    clock.advance(16)
    assert not sync.due(), "the back-off doubles"
    ledger.observe_keycrm({"S-9": 9.0}, clock.now(), "webhook")
    clock.advance(1)
    assert sync.due(), "a new change is work at once"


def test_a_burst_that_ended_still_waits_for_the_back_off(tmp_path):
    """The intake asks for a decision once a burst ended (``decide_at``); during a KeyCRM outage's
    back-off that must not turn every sale into another call."""
    from keycrm_bridge import approval
    from keycrm_bridge.lane_steps import Shared, sync_steps
    from keycrm_bridge.wiring import make_engines

    settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k", "KEYCRM_WRITE_WAREHOUSE_ID": "1",
                              "KEYCRM_BASE_URL": "http://127.0.0.1:9/v1", "DATABASE_PATH": str(tmp_path / "db.sqlite3"),
                              "SYNC_MODE": "woocommerce"})
    clock = FakeClock(1_800_000_000.0)
    e = make_engines(settings, clock)
    approval.approve(e.store, settings, clock.now(), "test")
    rounds: list[float] = []

    def counted_round() -> RoundResult:
        rounds.append(clock.now())
        return RoundResult()

    e.sync.run_round = counted_round
    w = Shared(settings, clock)
    step = sync_steps(e, w)[0]
    e.ledger.observe_woo([{"id": "e1", "sku": "S-1", "occurred_at": clock.now(), "cause": "manual",
                           "stock_quantity": 3}], clock.now(), two_way=False)
    e.store.set_meta("sync_retry_at", clock.now() + 60)  # the last round failed: back off a minute
    w.decide_at = clock.now() - 1
    clock.advance(5)
    assert not step.run() and rounds == [], "held back: no round, no KeyCRM call"
    clock.advance(60)
    step.run()
    assert rounds == [clock.now()], "after the back-off the burst is decided"
