"""The plugin's batches: stored as they came in a file of their own, then expanded into events and
queued changes inside the store's transaction (``Store.expand_inbox``).

The inbox lives in its own SQLite file next to ``DATABASE_PATH`` (``inbox_path``) so that a request
from the shop takes only that file's write lock: the worker's transactions on the main file (a chunk
of thousands of changes, a sync round) never keep a 202 waiting. The worker drops a batch from the
inbox only after its events committed in the main file; a crash in between expands it again, and
events already stored are recognised by id (a resend is the same thing).

A batch whose events cannot all be stored is halved until the events that cannot stand alone: those
are handed to ``set_aside`` (the quarantine), every other event of the batch goes in.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import exclusions
from .counters import count_inserted
from .errors import RETRYABLE, describe, disposition
from .store import SetAside, chunks, connect, marks

# One encoder for every stored event (json.dumps with options builds a new one per call).
_compact = json.JSONEncoder(separators=(",", ":")).encode

# A signature is good within ±5 minutes of our clock, so a replay comes at most 10 minutes after the
# original; remembering a body's digest for 15 covers that with room for a clock step.
SEEN_FOR_S = 900.0

INBOX_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL,"
    " events INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inbox_seen (digest BLOB PRIMARY KEY, received_at REAL NOT NULL) WITHOUT ROWID",
)

# Stock changes handed to the ledger as they are expanded (``Store.expand_inbox``'s ``feed``).
Feed = Callable[[list[dict[str, Any]]], Any]


def inbox_path(database_path: str) -> str:
    """``data/keycrm-bridge.sqlite3`` → ``data/keycrm-bridge.inbox.sqlite3``."""
    if database_path in ("", ":memory:"):
        return database_path
    p = Path(database_path)
    return str(p.with_name(f"{p.stem}.inbox{p.suffix}"))


class Inbox:
    """Batches accepted by the API and not yet expanded, and the digests that make a replay a no-op."""

    def __init__(self, database_path: str, *, durable: bool = False) -> None:
        self.path = inbox_path(database_path)
        self.conn = connect(self.path)
        if durable:
            self.conn.execute("PRAGMA synchronous=FULL")  # what the API's 202 promises (see Store)
        for statement in INBOX_SCHEMA:
            self.conn.execute(statement)
        self._seen_pruned_at = 0.0

    def close(self) -> None:
        self.conn.close()

    def append(self, body: str, events: int, now: float) -> int:
        """Commit one validated batch as it came; 0 when the same body was stored within ``SEEN_FOR_S``
        (a replay, or a resend after a lost answer). Longer ago than that its signature has expired."""
        digest = hashlib.sha256(body.encode("utf-8")).digest()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if c.execute("INSERT OR IGNORE INTO inbox_seen (digest, received_at) VALUES (?, ?)",
                         (digest, now)).rowcount == 0:
                c.execute("ROLLBACK")
                return 0
            if now - self._seen_pruned_at > 60:  # at most once a minute per connection: cheap
                self._seen_pruned_at = now
                c.execute("DELETE FROM inbox_seen WHERE received_at < ?", (now - SEEN_FOR_S,))
            cur = c.execute("INSERT INTO inbox (received_at, events, body) VALUES (?, ?, ?)", (now, events, body))
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return int(cur.lastrowid or 0)

    def peek(self, limit: int) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT id, received_at, body FROM inbox ORDER BY id LIMIT ?", (limit,)).fetchall()

    def drop(self, upto_id: int) -> None:
        """Forget the batches up to ``upto_id``: only once their events committed in the main file."""
        self.conn.execute("DELETE FROM inbox WHERE id <= ?", (upto_id,))

    def waiting(self) -> bool:
        return self.conn.execute("SELECT EXISTS (SELECT 1 FROM inbox)").fetchone()[0] == 1

    def stats(self) -> tuple[int, int, float | None]:
        """(batches, events, oldest received_at) not yet expanded."""
        row = self.conn.execute("SELECT count(*), coalesce(sum(events), 0), min(received_at) FROM inbox").fetchone()
        return int(row[0]), int(row[1]), row[2]

    def stored_ever(self) -> int:
        """Batches ever stored (the AUTOINCREMENT counter, which expanding does not lower)."""
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'inbox'").fetchone()
        return int(row[0]) if row else 0


def expand_batch(c: sqlite3.Connection, b: sqlite3.Row, changes_for: Any, set_aside: SetAside | None,
                 fresh: list[dict[str, Any]] | None, feeding: list[Feed | None] | None = None,
                 taking: list[dict[str, Any]] | None = None) -> tuple[int, int]:
    """One stored batch into events and changes. While ``feeding`` holds the ledger's feed (a rename
    ends it), stock changes are queued as done and their events collected in ``taking`` for
    ``feed_round``."""
    feeding = feeding if feeding is not None else [None]
    try:
        batch = json.loads(b["body"])["events"]
        if not isinstance(batch, list) or not all(isinstance(ev, dict) for ev in batch):
            raise ValueError("the batch holds no list of events")
    except (ValueError, TypeError, KeyError) as exc:
        if set_aside is None:
            raise
        set_aside(f"batch:{b['id']}", f"batch could not be read: {describe(exc)}", {"body": b["body"]}, None)
        return 0, 0
    texts = _event_texts(c, b["body"], batch)
    parts = [batch]
    new = dup = 0
    while parts:
        part = parts.pop(0)
        c.execute("SAVEPOINT expand")
        got: list[dict[str, Any]] = []
        fed: list[dict[str, Any]] = []
        try:
            n, d = expand_events(c, part, b["received_at"], changes_for, got, texts, feeding, fed)
            c.execute("RELEASE expand")
            new, dup = new + n, dup + d
            if fresh is not None:
                fresh.extend(got)
            if taking is not None:
                taking.extend(fed)
        except Exception as exc:
            c.execute("ROLLBACK TO expand")
            c.execute("RELEASE expand")
            if set_aside is None or disposition(exc) == RETRYABLE:
                raise
            if len(part) > 1:
                # Halve until the poisoned events are alone: every other event goes in.
                parts[:0] = [part[:len(part) // 2], part[len(part) // 2:]]
                continue
            ev = part[0]
            set_aside(f"event:{ev.get('id')!s}", describe(exc), ev, ev.get("sku"))
    return new, dup

def _event_texts(c: sqlite3.Connection, body: str, batch: list[dict[str, Any]]) -> dict[int, str]:
    """Each event's own JSON text, cut from the body by SQLite (no re-encoding per event in Python);
    empty when SQLite's parser reads the body otherwise than Python's did (NaN, say): then each
    event is encoded on its own."""
    try:
        rows = c.execute("SELECT value, json_extract(value, '$.id') FROM json_each(?, '$.events')", (body,)).fetchall()
    except sqlite3.Error:
        return {}
    if len(rows) != len(batch) or any(r[1] != ev.get("id") for r, ev in zip(rows, batch, strict=True)):
        return {}
    return {id(ev): r[0] for r, ev in zip(rows, batch, strict=True)}


def expand_events(c: sqlite3.Connection, batch: list[dict[str, Any]], now: float, changes_for: Any,
                  fresh_out: list[dict[str, Any]] | None = None, texts: dict[int, str] | None = None,
                  feeding: list[Feed | None] | None = None, taking: list[dict[str, Any]] | None = None
                  ) -> tuple[int, int]:
    ids = [ev["id"] for ev in batch]
    seen: set[str] = set()
    for part in chunks(ids):
        seen.update(r[0] for r in c.execute(f"SELECT id FROM events WHERE id IN ({marks(part)})", part))
    fresh = []
    for ev in batch:
        if ev["id"] not in seen:
            seen.add(ev["id"])
            fresh.append(ev)
    c.executemany(
        "INSERT INTO events (id, received_at, occurred_at, type, cause, sku, product_id, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(ev["id"], now, ev["occurred_at"], ev["type"], ev["cause"], ev["sku"], ev["product_id"],
          (texts or {}).get(id(ev)) or _compact(ev)) for ev in fresh],
    )
    feed = feeding[0] if feeding else None
    rows, fed = [], []
    for ev in fresh:
        for kind, sku in changes_for(ev):
            if kind == "rename" and feeding:
                feed = feeding[0] = None  # stock after a rename waits for it in the queue (``due_stock``)
            taken = feed is not None and kind == "stock" and sku.strip() != ""
            rows.append((ev["id"], kind, sku, ev["occurred_at"], now, "done" if taken else "pending",
                         now if taken else None))
            if taken:
                fed.append(ev)
    c.executemany("INSERT INTO changes (event_id, kind, sku, occurred_at, created_at, status, done_at)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    count_inserted(c, len(fresh), {"done": len(fed), "pending": len(rows) - len(fed)})
    if fed and taking is not None:
        taking.extend(fed)  # queued as done above: the round hands them to the ledger at its end (``feed_round``)
    exclusions.apply_events(c, fresh, now)
    if fresh_out is not None:
        fresh_out.extend(fresh)
    return len(fresh), len(batch) - len(fresh)


def feed_round(c: sqlite3.Connection, feed: Feed, taken: list[dict[str, Any]]) -> bool:
    """Hand the round's stock events to the ledger in one go (one history line per SKU, not per batch).
    If the ledger cannot take them, their changes go back to pending in the same transaction: the
    queue's path decides them (and sets aside the one that fails), as if they had never been fed."""
    if not taken:
        return False
    c.execute("SAVEPOINT feed")
    try:
        feed(taken)
        c.execute("RELEASE feed")
        return True
    except Exception as exc:
        c.execute("ROLLBACK TO feed")
        c.execute("RELEASE feed")
        if disposition(exc) == RETRYABLE:
            raise
    ids = [ev["id"] for ev in taken]
    for part in chunks(ids):
        c.execute("UPDATE changes SET status = 'pending', done_at = NULL WHERE kind = 'stock' AND status = 'done'"
                  f" AND event_id IN ({marks(part)})", part)
    return False
