"""The order poll reads each order change once: a KeyCRM-clock watermark with a de-duplicated second."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.config import load_settings
from keycrm_bridge.ledger import Ledger
from keycrm_bridge.pull import PullSources
from keycrm_bridge.store import Store


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


class FakeOrders:
    """KeyCRM's GET /order with updated_between: both ends inclusive, whole seconds."""

    def __init__(self) -> None:
        self.orders: dict[int, dict[str, Any]] = {}
        self.fetched = 0

    def put(self, oid: int, at: float, sku: str, uuid: str = "") -> None:
        self.orders[oid] = {"id": oid, "updated_at": _stamp(at), "source_uuid": uuid or None,
                            "products": [{"offer": {"sku": sku}}]}

    def iter_orders(self, lo: float, hi: float) -> Any:
        for o in self.orders.values():
            t = datetime.strptime(o["updated_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
            if int(lo) <= int(t) <= int(hi):
                self.fetched += 1
                yield o


class FakeSync:
    def __init__(self) -> None:
        self.reads: list[list[str]] = []

    def read_stock(self, skus: list[str], source: str = "read") -> set[str]:
        self.reads.append(list(skus))
        return set(skus)


def _pull(tmp_path: Any) -> tuple[PullSources, FakeOrders, FakeSync, FakeClock]:
    settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k",
                              "KEYCRM_WRITE_WAREHOUSE_ID": "1", "DATABASE_PATH": str(tmp_path / "db.sqlite3")})
    store = Store(settings.database_path)
    clock, orders, sync = FakeClock(1_800_000_000.0), FakeOrders(), FakeSync()
    return PullSources(store, Ledger(store), sync, orders, settings, clock), orders, sync, clock  # type: ignore[arg-type]


def test_each_order_change_is_read_once_and_its_skus_once(tmp_path):
    pull, orders, sync, clock = _pull(tmp_path)
    t0 = clock.now()
    orders.put(1, t0 - 5, "A")
    orders.put(2, t0 - 1, "B")
    assert pull.poll_orders() == 2
    assert sync.reads == [["A", "B"]]
    clock.advance(10)
    orders.put(3, t0 - 1, "C")           # saved later in the watermark's second: still caught
    orders.put(4, t0 + 4, "D")
    assert pull.poll_orders() == 2
    assert sync.reads[-1] == ["C", "D"], "only the SKUs of orders not seen before are read"
    clock.advance(10)
    assert pull.poll_orders() == 0        # nothing new: the orders of the watermark's second are skipped
    assert len(sync.reads) == 2
    orders.put(1, t0 + 15, "A")          # order 1 changed again: a new change, read once more
    clock.advance(10)
    assert pull.poll_orders() == 1 and sync.reads[-1] == ["A"]
    # 5 changes, and each later poll lists the watermark second's order again (3): at one poll every
    # 10 s and an order a second that is ~1.1 listings per change, not the 13 a 130 s overlap cost.
    assert orders.fetched == 8


def test_a_site_order_seen_before_its_event_is_still_resolved(tmp_path):
    pull, orders, sync, clock = _pull(tmp_path)
    orders.put(7, clock.now() - 2, "S", uuid="w-77")
    pull.poll_orders()
    with pull.store.transaction() as c:
        c.execute("INSERT INTO inflight (order_id, sku, kind, qty, event_at, registered_at) VALUES (?, ?, ?, ?, ?, ?)",
                  ("w-77", "S", "order", 1, clock.now(), clock.now()))
    clock.advance(10)
    pull.poll_orders()
    assert pull.ledger.open_inflight() == [], "matched from the orders KeyCRM showed earlier"
