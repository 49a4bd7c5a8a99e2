"""A sync round clears only the dirty marks it read: a mark another lane commits after the round's read
survives every way a round clears marks, whatever time the lane stamped it with.

Each test interleaves read → a new mark commits → clear at a fixed point of one round (a client call,
the exclusion lookup, the hook before the WooCommerce write), with the other lane on its own
connection stamping its marks with its batch's start, before the round began: the way the intake
lane does. Comparing times, each of these clearings dropped the new mark and the change waited for
the sweep. Time is a FakeClock; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from keycrm_bridge import exclusions, sync
from keycrm_bridge.clock import FakeClock
from keycrm_bridge.config import load_settings
from keycrm_bridge.errors import PermanentError, SkipError
from keycrm_bridge.ledger import Ledger
from keycrm_bridge.quarantine import Quarantine
from keycrm_bridge.store import Store
from keycrm_bridge.sync import SyncEngine
from keycrm_bridge.woo_client import StockResult

T0 = 1_800_000_000.0
Hook = Callable[[], None]


class KeyCRM:
    """KeyCRM's stock by SKU (one warehouse); ``on_read`` / ``on_put`` run once, inside the next call."""

    def __init__(self, stock: dict[str, float]) -> None:
        self.stock = dict(stock)
        self.puts: list[dict[str, float]] = []
        self.on_read: Hook | None = None
        self.on_put: Hook | None = None

    def iter_stocks(self, skus=None, offer_ids=None, details=True):
        hook, self.on_read = self.on_read, None
        if hook:
            hook()
        return [{"id": i + 1, "sku": s, "warehouse": [{"id": 1, "quantity": self.stock[s], "reserve": 0}]}
                for i, s in enumerate(skus or []) if s in self.stock]

    def put_stocks(self, warehouse_id, rows):
        hook, self.on_put = self.on_put, None
        if hook:
            hook()
        self.puts.append({r["sku"]: float(r["quantity"]) for r in rows})
        self.stock.update({r["sku"]: float(r["quantity"]) for r in rows})


@dataclass
class Entry:
    product_id: int
    stock_quantity: float | None
    parent_id: int = 0
    manage_stock: bool = True


class Woo:
    """The shop's products by SKU; ``refuse`` answers the next stock write of these SKUs with an error."""

    def __init__(self, stock: dict[str, float]) -> None:
        self.entries = {s: Entry(i + 1, v) for i, (s, v) in enumerate(stock.items())}
        self.refuse: set[str] = set()
        self.written: list[dict[str, float]] = []
        self.watermark = 0.0

    def get(self, sku: str) -> Entry | None:  # (the SKU map's lookup)
        return self.entries.get(sku)

    def record_stock(self, product_id: int, quantity: float | None, date_modified: float | None = None) -> None:
        for e in self.entries.values():
            if e.product_id == product_id:
                e.stock_quantity = quantity

    def set_stock(self, items):
        out, refused, self.refuse = [], self.refuse, set()
        for w in items:
            if w.sku in refused:
                out.append(StockResult(write=w, ok=False, error=SkipError("refused by a plugin", sku=w.sku)))
            else:
                out.append(StockResult(write=w, ok=True, stock_quantity=int(w.quantity)))
        self.written.append({w.sku: w.quantity for w, r in zip(items, out, strict=True) if r.ok})
        return out


class OtherLane:
    """The intake and webhook lanes: their own connection, marks stamped before the round began."""

    def __init__(self, path: str) -> None:
        self.store = Store(path)
        self.ledger = Ledger(self.store)
        self.n = 0

    def shop_edit(self, sku: str, stock: float, stamped: float) -> None:
        self.n += 1
        self.ledger.observe_woo([{"id": f"ev-{self.n}", "sku": sku, "occurred_at": stamped, "cause": "manual",
                                  "stock_quantity": stock}], stamped, two_way=False)

    def keycrm_webhook(self, sku: str, sellable: float, stamped: float) -> None:
        self.ledger.observe_keycrm({sku: sellable}, stamped, "webhook")


@pytest.fixture()
def make(tmp_path):
    made: list[Store] = []

    def build(mode: str, keycrm: KeyCRM, woo: Woo | None = None) -> tuple[SyncEngine, OtherLane, FakeClock]:
        path = str(tmp_path / "db.sqlite3")
        settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k",
                                  "KEYCRM_WRITE_WAREHOUSE_ID": "1", "DATABASE_PATH": path, "SYNC_MODE": mode,
                                  "PUSH_DEBOUNCE_S": "0", "PUSH_MAX_WAIT_S": "0"})
        store, clock = Store(path), FakeClock(T0)
        engine = SyncEngine(store, Ledger(store), keycrm, settings, clock, woo=woo, skumap=woo)
        lane = OtherLane(path)
        made.extend([store, lane.store])
        return engine, lane, clock

    yield build
    for s in made:
        s.close()


def dirty(engine: SyncEngine) -> set[str]:
    return set(engine.ledger.dirty())


def test_a_decided_sku_keeps_a_mark_made_during_its_write(make):
    kc = KeyCRM({"A": 5.0})
    engine, lane, clock = make("woocommerce", kc)
    lane.shop_edit("A", 7.0, T0 - 100)
    kc.on_put = lambda: lane.shop_edit("A", 9.0, T0 - 10)  # committed between the round's read and its record
    first = engine.run_round()
    assert kc.puts == [{"A": 7.0}] and first.settled == 0
    assert dirty(engine) == {"A"}, "the edit committed during the round was cleared unseen"
    clock.advance(1)
    engine.run_round()
    assert kc.puts[-1] == {"A": 9.0} and dirty(engine) == set()


def test_an_excluded_sku_switched_back_on_during_the_round_stays_dirty(make, monkeypatch):
    kc = KeyCRM({"A": 5.0})
    engine, lane, clock = make("woocommerce", kc)
    engine.store.conn.execute("INSERT INTO sync_exclusions VALUES ('A', 1, 1, ?, ?)", (T0 - 200, T0 - 200))
    lane.shop_edit("A", 7.0, T0 - 100)
    looked_up = exclusions.excluded_among

    def switched_on_after_the_lookup(conn, skus):
        off = looked_up(conn, skus)
        with lane.store.transaction() as c:
            exclusions.apply_events(c, [{"id": "sw", "type": exclusions.EVENT_TYPE, "sku": "A", "product_id": 1,
                                         "excluded": False, "occurred_at": T0 - 10}], T0 - 10)
        return off

    monkeypatch.setattr(sync.exclusions, "excluded_among", switched_on_after_the_lookup)
    first = engine.run_round()
    assert first.excluded == 1 and kc.puts == []
    assert dirty(engine) == {"A"}, "the switch back on was cleared with the excluded SKU's old mark"
    monkeypatch.setattr(sync.exclusions, "excluded_among", looked_up)
    clock.advance(1)
    engine.run_round()
    assert kc.puts == [{"A": 7.0}] and dirty(engine) == set()


def test_an_empty_sku_keeps_a_mark_made_after_the_read(make):
    kc = KeyCRM({"U": 1.0})
    engine, lane, clock = make("woocommerce", kc)
    lane.shop_edit(" ", 3.0, T0 - 100)
    lane.shop_edit("U", 2.0, T0 - 100)
    kc.on_read = lambda: lane.shop_edit(" ", 4.0, T0 - 10)  # the read of U comes after the round's read
    engine.run_round()
    assert " " in dirty(engine), "a mark made after the read was cleared with the empty SKU's old one"
    clock.advance(1)
    engine.run_round()
    assert dirty(engine) == set(), "the mark it read is cleared: an empty SKU is not decided"


def test_a_sku_missing_in_keycrm_keeps_a_mark_made_after_the_read(make):
    kc = KeyCRM({})
    engine, lane, clock = make("woocommerce", kc)
    lane.shop_edit("GHOST", 3.0, T0 - 100)
    kc.on_read = lambda: lane.shop_edit("GHOST", 4.0, T0 - 10)
    first = engine.run_round()
    assert first.unmatched == 1 and "GHOST" in {u["sku"] for u in engine.store.unmatched()}
    assert dirty(engine) == {"GHOST"}, "the shop's edit after the read was cleared with the unmatched SKU"
    kc.stock["GHOST"] = 0.0  # the owner created it in KeyCRM meanwhile
    clock.advance(1)
    engine.run_round()
    assert kc.puts == [{"GHOST": 4.0}] and dirty(engine) == set()


def test_a_quarantined_sku_keeps_a_mark_made_during_the_failed_round(make):
    kc = KeyCRM({"Q": 1.0})
    engine, lane, clock = make("woocommerce", kc)
    lane.shop_edit("Q", 3.0, T0 - 100)

    def edit_then_fail() -> None:
        lane.shop_edit("Q", 6.0, T0 - 10)
        raise ValueError("a poisoned value")

    kc.on_read = edit_then_fail
    first = engine.run_round()
    assert first.errors and Quarantine(engine.store, clock).count() == 1
    assert dirty(engine) == {"Q"}, "the edit made during the failed round was set aside with it"
    clock.advance(1)
    engine.run_round()
    assert kc.puts == [{"Q": 6.0}] and dirty(engine) == set()


def test_a_row_keycrm_rejects_keeps_a_mark_made_during_the_write(make):
    kc = KeyCRM({"R": 1.0})
    engine, lane, clock = make("woocommerce", kc)
    lane.shop_edit("R", 3.0, T0 - 100)

    def edit_then_reject() -> None:
        lane.shop_edit("R", 5.0, T0 - 10)
        raise PermanentError("422 quantity rejected", status=422)

    kc.on_put = edit_then_reject
    first = engine.run_round()
    assert first.unmatched == 1 and kc.puts == []
    assert dirty(engine) == {"R"}, "the edit made during the rejected write was cleared with it"
    clock.advance(1)
    engine.run_round()
    assert kc.puts == [{"R": 5.0}] and dirty(engine) == set()


def test_a_write_woocommerce_refuses_keeps_a_keycrm_change_made_before_it(make):
    kc = KeyCRM({"W": 5.0})
    woo = Woo({"W": 2.0})
    engine, lane, clock = make("keycrm", kc, woo)
    engine.ledger.observe_keycrm({"W": 5.0}, T0 - 100, "sweep")
    engine.before_woo_write = lambda items: lane.keycrm_webhook("W", 8.0, T0 - 10)
    woo.refuse = {"W"}
    first = engine.run_round()
    assert first.unmatched == 1 and woo.written == [{}]
    assert dirty(engine) == {"W"}, "KeyCRM's change during the refused write was cleared with it"
    engine.before_woo_write = None
    clock.advance(1)
    engine.run_round()
    assert woo.written[-1] == {"W": 8.0} and dirty(engine) == set()


def test_a_dismissed_hold_keeps_a_change_made_during_the_hold(make):
    engine, lane, clock = make("woocommerce", KeyCRM({}))
    lane.shop_edit("H-1", 0.0, T0 - 100)
    lane.shop_edit("H-2", 0.0, T0 - 100)
    hold_id = engine.ledger.hold(["H-1", "H-2"], {"reason": "test"}, T0)
    lane.shop_edit("H-2", 4.0, T0 - 10)  # stamped before the hold, committed after it
    engine.ledger.release_hold(hold_id, T0 + 1, "dismissed")
    assert dirty(engine) == {"H-2"}, "the held cut is dropped; the change made during the hold is decided"


def test_a_dismissed_hold_lets_its_skus_sync_again(make):
    """The owner's dismissal drops the held cut; the SKUs are no longer held, and a change made
    during the hold reaches KeyCRM in the next round."""
    kc = KeyCRM({"H-1": 5.0, "H-2": 5.0})
    engine, lane, clock = make("woocommerce", kc)
    lane.shop_edit("H-1", 0.0, T0 - 100)
    lane.shop_edit("H-2", 0.0, T0 - 100)
    hold_id = engine.ledger.hold(["H-1", "H-2"], {"reason": "test"}, T0)
    lane.shop_edit("H-2", 4.0, T0 - 10)
    assert engine.ledger.set_hold_status(hold_id, "dismissed", T0 + 1)
    assert engine.due(), "the owner's answer is work"
    engine.run_round()
    assert engine.ledger.holds(None)[0]["status"] == "dropped"
    assert engine.ledger.rows(["H-1"])["H-1"].hold is None and kc.puts == [{"H-2": 4.0}]
    assert dirty(engine) == set() and not engine.due()


def test_a_stalled_round_wakes_for_a_mark_stamped_before_the_stall(make):
    engine, lane, clock = make("keycrm", KeyCRM({}))  # no WooCommerce: nothing can be written
    engine.ledger.observe_keycrm({"S-1": 1.0, "S-2": 2.0}, T0, "sweep")
    clock.advance(1)
    assert engine.run_round().stalled and not engine.due()
    lane.keycrm_webhook("S-3", 3.0, T0 - 50)  # older than the stall by its stamp, newer by its number
    assert engine.due(), "a new change waited out the stall's back-off"


def test_a_mark_and_its_number_commit_together(make):
    engine, lane, clock = make("woocommerce", KeyCRM({}))
    lane.shop_edit("A", 1.0, T0)
    read = engine.ledger.dirty()
    with pytest.raises(RuntimeError), lane.store.transaction() as c:
        Ledger.dirty_in(c, ["A"], T0 + 1)
        raise RuntimeError("the lane's transaction fails")
    assert engine.ledger.dirty() == read, "a rolled-back mark left its number behind"
    lane.shop_edit("A", 2.0, T0 + 2)
    assert engine.ledger.dirty()["A"] > read["A"]
    assert engine.ledger.clean(["A"], read) == 0 and engine.ledger.clean(["A"], engine.ledger.dirty()) == 1
