"""Status counts come from counters the triggers keep, equal to counting the rows."""

from __future__ import annotations

import sqlite3

from keycrm_bridge.store import Store


def _truth(path) -> tuple[int, dict[str, int]]:
    c = sqlite3.connect(path)
    events = c.execute("SELECT count(*) FROM events").fetchone()[0]
    changes = dict(c.execute("SELECT status, count(*) FROM changes GROUP BY status").fetchall())
    return events, changes


def test_counters_follow_inserts_status_moves_and_prunes(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    store = Store(path)
    with store.transaction() as c:
        for i in range(5):
            c.execute("INSERT INTO events (id, received_at, occurred_at, type, cause, sku, product_id, payload)"
                      " VALUES (?, 1, 1, 'stock.set', 'admin', ?, ?, '{}')", (f"e{i}", f"S{i}", i))
            c.execute("INSERT INTO changes (event_id, kind, sku, occurred_at, created_at) VALUES (?, 'stock', ?, 1, 1)",
                      (f"e{i}", f"S{i}"))
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
    for name in ("count_event_in", "count_event_out", "count_change_in", "count_change_moved", "count_change_out"):
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
