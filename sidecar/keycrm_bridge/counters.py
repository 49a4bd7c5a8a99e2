"""Row counts that status reads instead of counting 14 days of events and changes on every call.

Moves and deletes happen in many places (the queue's claims and finishes, retries, the prune), so
triggers keep those exact in the same transaction as the rows, whichever process writes. Inserts
happen in one place only (``inbox.expand_events``), thousands a round: it counts per statement
(``count_inserted``), which costs a fraction of a trigger run per row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

_BUMP = "INSERT INTO counters (name, value) VALUES ({name}, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1;"
TRIGGERS = {
    "count_event_out": "CREATE TRIGGER count_event_out AFTER DELETE ON events BEGIN"
    " UPDATE counters SET value = value - 1 WHERE name = 'events'; END",
    "count_change_moved": "CREATE TRIGGER count_change_moved AFTER UPDATE OF status ON changes"
    " WHEN old.status != new.status BEGIN"
    " UPDATE counters SET value = value - 1 WHERE name = 'changes.' || old.status; "
    + _BUMP.format(name="'changes.' || new.status") + " END",
    "count_change_out": "CREATE TRIGGER count_change_out AFTER DELETE ON changes BEGIN"
    " UPDATE counters SET value = value - 1 WHERE name = 'changes.' || old.status; END",
}
_ADD = ("INSERT INTO counters (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value")


def _triggers(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'count\\_%'"
                                       " ESCAPE '\\'")}


def init_counters(conn: sqlite3.Connection) -> None:
    """Bring the counters to this release's form once, from the rows a database already holds."""
    if _triggers(conn) == set(TRIGGERS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = _triggers(conn)  # another process may have won the race
        if not have:
            conn.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            conn.execute("DELETE FROM counters")
            conn.execute("INSERT INTO counters SELECT 'events', count(*) FROM events")
            conn.execute("INSERT INTO counters SELECT 'changes.' || status, count(*) FROM changes GROUP BY status")
        for name in have - set(TRIGGERS):
            # Earlier releases counted inserts by trigger too (count_event_in, count_change_in): the
            # counts they kept stay and go on from here.
            conn.execute(f"DROP TRIGGER {name}")
        for name, sql in TRIGGERS.items():
            if name not in have:
                conn.execute(sql)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def count_inserted(c: sqlite3.Connection, events: int, changes: Mapping[str, int]) -> None:
    """Inside the transaction that inserted ``events`` events and ``changes`` (status → rows)."""
    c.executemany(_ADD, [(name, n) for name, n in [("events", events), *((f"changes.{s}", k) for s, k in
                                                                          changes.items())] if n])
