"""Status counts come from counters the triggers keep, equal to counting the rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from keycrm_bridge.config import load_settings
from keycrm_bridge.events import changes_for
from keycrm_bridge.store import Store

from bridge import bridge_env, event


def _truth(path) -> tuple[int, dict[str, int]]:
    c = sqlite3.connect(path)
    events = c.execute("SELECT count(*) FROM events").fetchone()[0]
    changes = dict(c.execute("SELECT status, count(*) FROM changes GROUP BY status").fetchall())
    return events, changes


def _five_stock_events(store: Store) -> None:
    """Inserted where every event and change is inserted: the plugin's batches, expanded."""
    settings = load_settings(bridge_env(Path(store.path)))
    store.append_batch(json.dumps({"events": [event(f"S{i}", i, product_id=i + 1, id=f"e{i}", occurred_at=1)
                                              for i in range(5)]}), 5, 1.0)
    assert store.expand_inbox(lambda ev: changes_for(ev, settings)) == (5, 0)


def test_counters_follow_inserts_status_moves_and_prunes(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    store = Store(path)
    _five_stock_events(store)
    assert store.count_events() == 5 and store.changes_by_status() == {"pending": 5} == _truth(path)[1]
    with store.transaction() as c:
        c.execute("UPDATE changes SET status = 'done', done_at = 2 WHERE id <= 3")
        c.execute("UPDATE changes SET status = 'done' WHERE id = 1")  # no move: no count
    assert store.count_events() == 5
    assert store.changes_by_status() == {"pending": 2, "done": 3} == _truth(path)[1]
    assert store.prune(before=10) == {"changes": 3, "events": 3, "history": 0}
    assert (store.count_events(), store.changes_by_status()) == _truth(path)


def test_a_database_from_before_the_counters_is_counted_once(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    Store(path).close()
    c = sqlite3.connect(path)
    for name in ("count_event_out", "count_change_moved", "count_change_out"):
        c.execute(f"DROP TRIGGER {name}")
    c.execute("DROP TABLE counters")
    c.execute("INSERT INTO events (id, received_at, occurred_at, type, cause, sku, product_id, payload)"
              " VALUES ('old', 1, 1, 'stock.set', 'admin', 'X', 1, '{}')")
    c.execute("INSERT INTO changes (event_id, kind, sku, occurred_at, created_at, status)"
              " VALUES ('old', 'stock', 'X', 1, 1, 'done')")
    c.commit()
    store = Store(path)
    assert store.count_events() == 1 and store.changes_by_status() == {"done": 1}
    Store(path)  # a second open counts nothing twice
    assert store.count_events() == 1


def test_a_database_with_the_insert_triggers_keeps_its_counts(tmp_path):
    """The release before counted inserts by trigger: those go, the counts they kept go on."""
    path = str(tmp_path / "db.sqlite3")
    store = Store(path)
    _five_stock_events(store)
    store.close()
    c = sqlite3.connect(path)
    c.execute("CREATE TRIGGER count_event_in AFTER INSERT ON events BEGIN"
              " UPDATE counters SET value = value + 1 WHERE name = 'events'; END")
    c.commit()
    c.close()
    store = Store(path)
    triggers = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert "count_event_in" not in triggers and {"count_change_moved", "count_change_out"} <= triggers
    assert (store.count_events(), store.changes_by_status()) == (5, {"pending": 5}) == _truth(path)
