"""The durable store: the change queue (``change_queue.py``), the KeyCRM mirror, unmatched SKUs, meta,
and the plugin's batches not yet expanded (``inbox.py``, a file of its own beside this one).

One SQLite file in WAL mode, shared by the web processes and the worker (which claims, marks done
or failed).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from .change_queue import CLAIMED, DONE, PENDING, SKIPPED, SUPERSEDED, Change, ChangeQueue, chunks, marks
from .counters import init_counters

# Release 0.1.0's tables, as migration 0001 (migrations.py) creates them. Never edit: a change of
# a table is a new migration there, so that a database of any earlier release is brought forward.
SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    events INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox_seen (
    digest BLOB PRIMARY KEY,
    received_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keycrm_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    occurred_at REAL NOT NULL,
    type TEXT NOT NULL,
    cause TEXT NOT NULL,
    sku TEXT NOT NULL,
    product_id INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    sku TEXT NOT NULL,
    occurred_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    claim_token TEXT,
    claimed_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    done_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS changes_due ON changes (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS pushed (
    kind TEXT NOT NULL,
    sku TEXT NOT NULL,
    occurred_at REAL NOT NULL,
    value TEXT,
    pushed_at REAL NOT NULL,
    PRIMARY KEY (kind, sku)
);
CREATE TABLE IF NOT EXISTS keycrm_stock (
    sku TEXT NOT NULL,
    warehouse_id INTEGER NOT NULL,
    offer_id INTEGER,
    quantity REAL NOT NULL,
    reserve REAL NOT NULL,
    fetched_at REAL NOT NULL,
    PRIMARY KEY (sku, warehouse_id)
);
CREATE TABLE IF NOT EXISTS keycrm_offers (
    sku TEXT PRIMARY KEY,
    offer_id INTEGER NOT NULL,
    product_id INTEGER,
    fields TEXT NOT NULL DEFAULT '{}',
    fetched_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS unmatched (
    sku TEXT NOT NULL,
    side TEXT NOT NULL,
    reason TEXT NOT NULL,
    product_id INTEGER,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (sku, side)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# (key, reason, payload, sku): where an item that cannot be processed is set aside (quarantine.py).
SetAside = Callable[[str, str, Any, Any], Any]

__all__ = ["CLAIMED", "DONE", "PENDING", "SKIPPED", "SUPERSEDED", "Change", "SetAside", "Store", "chunks", "connect",
           "enable_wal", "marks"]


def connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE) so that a writer
    # takes the lock before it reads, which is what keeps claims exclusive across processes.
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    enable_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def enable_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch the file to WAL once; every process that opens it calls this.

    Changing the journal mode needs the file to itself and SQLite does not wait for that (no busy
    handler), so processes starting together (gunicorn workers, the worker) can see "database is
    locked". The file stays in WAL once switched, so this only has to win once: check, then retry
    briefly. (A real wait on another process's file lock, not a test waiting for time to pass.)
    """
    for _ in range(attempts):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() in ("wal", "memory"):
                return  # (an in-memory database has no file to share, and no WAL)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower()
            if mode != "wal":
                # Answered without switching: the file cannot take WAL (read-only, odd filesystem).
                raise sqlite3.OperationalError(f"the database stays in {mode} journal mode; WAL is needed")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        time.sleep(0.05)
    raise sqlite3.OperationalError(f"could not switch the database to WAL mode after {attempts} attempts")


class Store(ChangeQueue):
    def __init__(self, path: str, *, durable: bool = False) -> None:
        self.path = path
        self.conn = connect(path)
        if durable:
            # The API's connection: its commits are what a 202 promises, so each one is fsynced
            # (WAL + NORMAL could lose the last commits to a power cut after the answer went out).
            self.conn.execute("PRAGMA synchronous=FULL")
        self.db = sqlite_utils.Database(self.conn)
        self._after_commit: list[Callable[[], Any]] = []
        from .inbox import Inbox
        from .migrations import migrate

        self.inbox = Inbox(path, durable=durable)
        migrate(self.conn, path)
        init_counters(self.conn)

    def close(self) -> None:
        self.inbox.close()
        self.conn.close()

    def after_commit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` once the outermost transaction committed (not at all if it rolls back)."""
        if not self.conn.in_transaction:
            fn()
            return
        self._after_commit.append(fn)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; inside another it is a savepoint of it (the outer one commits),
        so a step can join several writers' work into one commit."""
        if self.conn.in_transaction:
            self.conn.execute("SAVEPOINT nested")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK TO nested")
                self.conn.execute("RELEASE nested")
                raise
            else:
                self.conn.execute("RELEASE nested")
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            self._after_commit.clear()
            raise
        self.conn.execute("COMMIT")
        hooks, self._after_commit = self._after_commit, []
        for fn in hooks:
            fn()

    # -- inbox -------------------------------------------------------------------------------

    def append_batch(self, body: str, events: int, now: float) -> int:
        """Commit one validated batch as it came (``Inbox.append``); the HTTP answer waits only for this.

        Splitting into events, dropping repeated ids and queueing changes happens in the worker
        (``expand_inbox``), off the request path that a shop's checkout may be waiting behind.
        """
        return self.inbox.append(body, events, now)

    def expand_inbox(self, changes_for: Any, limit: int = 200, set_aside: SetAside | None = None,
                     fresh: list[dict[str, Any]] | None = None, feed: Any = None,
                     received: list[float] | None = None) -> tuple[int, int]:
        """Turn received batches into events and queued changes; returns (new events, duplicates).

        ``changes_for(event)`` yields (kind, sku) for the queue; it runs only for events not seen
        before, which is what makes a resend apply once. A change carries no copy of its event: the
        worker reads the event when it claims the change. An event that cannot be stored or queued
        (a poisoned value the door let through) is handed to ``set_aside`` in the same transaction,
        and the rest of its batch goes on; ``fresh`` collects the events that were new. ``feed``
        (the ledger's, when stock may be decided now) takes stock changes as they are queued, which
        then are done at once (see ``inbox.expand_batch``). The batches leave the inbox once this
        commits (the caller's transaction, when there is one); ``received`` gets the newest batch's
        arrival time.
        """
        from .inbox import expand_batch, feed_round

        new = dup = 0
        with self.transaction() as c:
            batches = self.inbox.peek(limit)
            if feed is not None and c.execute(
                    "SELECT 1 FROM changes WHERE kind = 'rename' AND status IN ('pending', 'claimed') LIMIT 1"
            ).fetchone():
                feed = None  # a rename goes first (``due_stock``): stock after it waits in the queue
            feeding = [feed]
            taken: list[dict[str, Any]] = []
            for b in batches:
                n, d = expand_batch(c, b, changes_for, set_aside, fresh, feeding, taken)
                new, dup = new + n, dup + d
            if feed is not None:
                feed_round(c, feed, taken)
            if batches:
                last = batches[-1]["id"]
                self.after_commit(lambda: self.inbox.drop(last))
                if received is not None:
                    received.append(max(b["received_at"] for b in batches))
        return new, dup

    def append_webhook(self, rows: list[dict[str, Any]], now: float) -> None:
        self.conn.execute("INSERT INTO keycrm_inbox (received_at, body) VALUES (?, ?)",
                          (now, json.dumps(rows, separators=(",", ":"))))

    def peek_keycrm_inbox(self, limit: int = 200) -> tuple[int, list[tuple[float, list[dict[str, Any]]]]]:
        """(last id, webhook bodies in arrival order); ``drop_keycrm_inbox(last id)`` once they are absorbed,
        so a worker killed in between absorbs them again (absorbing is idempotent) instead of losing them."""
        rows = self.conn.execute("SELECT id, received_at, body FROM keycrm_inbox ORDER BY id LIMIT ?",
                                 (limit,)).fetchall()
        return (rows[-1]["id"] if rows else 0), [(r["received_at"], json.loads(r["body"])) for r in rows]

    def drop_keycrm_inbox(self, upto_id: int) -> None:
        self.conn.execute("DELETE FROM keycrm_inbox WHERE id <= ?", (upto_id,))

    def keycrm_inbox_rows(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM keycrm_inbox").fetchone()[0])

    def prune(self, before: float) -> dict[str, int]:
        """Forget finished work older than ``before``; what is still pending is never touched."""
        out = {}
        with self.transaction() as c:
            out["changes"] = c.execute("DELETE FROM changes WHERE status IN ('done', 'superseded', 'skipped')"
                                       " AND created_at < ?", (before,)).rowcount
            out["events"] = c.execute("DELETE FROM events WHERE received_at < ? AND id NOT IN"
                                      " (SELECT event_id FROM changes)", (before,)).rowcount
            out["history"] = c.execute("DELETE FROM history WHERE at < ?", (before,)).rowcount \
                if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'history'").fetchone() else 0
        return out

    def inbox_waiting(self) -> bool:
        """Whether any batch waits to be expanded: the idle intake lane's one cheap read."""
        return self.inbox.waiting()

    def inbox_stats(self) -> tuple[int, int, float | None]:
        """(batches, events, oldest received_at) not yet expanded."""
        return self.inbox.stats()

    def count_events(self) -> int:
        row = self.conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    def event(self, event_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT payload FROM events WHERE id = ?", (event_id,)).fetchone()
        return json.loads(row[0]) if row else None

    # -- queue -------------------------------------------------------------------------------

    def queue_stats(self, now: float) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT count(*), min(created_at) FROM changes WHERE status IN ('pending', 'claimed')"
        ).fetchone()
        _, inbox_events, inbox_oldest = self.inbox_stats()
        oldest = min((t for t in (row[1], inbox_oldest) if t is not None), default=None)
        return {
            # KeyCRM webhooks not absorbed yet are waiting work too.
            "queue_depth": int(row[0]) + inbox_events + self.keycrm_inbox_rows(),
            "oldest_pending_age_s": round(now - oldest, 3) if oldest is not None else None,
            "inbox_events": inbox_events,
        }

    # -- mirror of KeyCRM stock and offers -----------------------------------------------------

    def keycrm_stock(self, skus: Iterable[str]) -> dict[str, dict[int, dict[str, Any]]]:
        """sku -> warehouse_id -> {quantity, reserve, offer_id, fetched_at}."""
        out: dict[str, dict[int, dict[str, Any]]] = {}
        for part in chunks(skus):
            for r in self.conn.execute(
                f"SELECT * FROM keycrm_stock WHERE sku IN ({marks(part)})", part
            ):
                out.setdefault(r["sku"], {})[r["warehouse_id"]] = dict(r)
        return out

    def save_keycrm_stock(self, rows: Iterable[tuple[str, int, int | None, float, float]], now: float) -> None:
        """rows: (sku, warehouse_id, offer_id, quantity, reserve)."""
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO keycrm_stock (sku, warehouse_id, offer_id, quantity, reserve, fetched_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sku, warehouse_id) DO UPDATE SET"
                " offer_id = coalesce(excluded.offer_id, keycrm_stock.offer_id), quantity = excluded.quantity,"
                " reserve = excluded.reserve, fetched_at = excluded.fetched_at",
                [(s, w, o, q, r, now) for s, w, o, q, r in rows],
            )

    def keycrm_offers(self, skus: Iterable[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for part in chunks(skus):
            for r in self.conn.execute(
                f"SELECT * FROM keycrm_offers WHERE sku IN ({marks(part)})", part
            ):
                d = dict(r)
                d["fields"] = json.loads(d["fields"])
                out[r["sku"]] = d
        return out

    def save_keycrm_offers(self, rows: Iterable[tuple[str, int, int | None, dict[str, Any]]], now: float) -> None:
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO keycrm_offers (sku, offer_id, product_id, fields, fetched_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (sku) DO UPDATE SET offer_id = excluded.offer_id,"
                " product_id = coalesce(excluded.product_id, keycrm_offers.product_id),"
                " fields = excluded.fields, fetched_at = excluded.fetched_at",
                [(s, o, p, json.dumps(f), now) for s, o, p, f in rows],
            )

    # -- unmatched SKUs ----------------------------------------------------------------------

    def note_unmatched(self, sku: str, side: str, reason: str, product_id: int | None, now: float) -> None:
        self.conn.execute(
            "INSERT INTO unmatched (sku, side, reason, product_id, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (sku, side) DO UPDATE SET reason = excluded.reason,"
            " product_id = coalesce(excluded.product_id, unmatched.product_id), last_seen = excluded.last_seen",
            (sku, side, reason, product_id, now, now),
        )

    def clear_unmatched(self, skus: Iterable[str]) -> None:
        for part in chunks(skus):
            self.conn.execute(f"DELETE FROM unmatched WHERE sku IN ({marks(part)})", part)

    def unmatched(self, limit: int = 500) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT sku, side, reason, product_id, first_seen, last_seen FROM unmatched"
            " ORDER BY last_seen DESC LIMIT ?", (limit,)
        )
        return [dict(r) for r in rows]

    # -- meta ----------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default
