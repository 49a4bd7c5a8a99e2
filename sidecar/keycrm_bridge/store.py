"""The durable store: inbox of events, the change queue, the KeyCRM mirror, unmatched SKUs.

One SQLite file in WAL mode, shared by the web processes (which only append) and the worker
(which claims, marks done or failed). The queue follows Action Scheduler's shape: rows are
claimed with a token and a lease, then marked done, failed or released for a later attempt, so
a worker killed mid-batch loses nothing: its lease runs out and the rows are claimed again.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

PENDING, CLAIMED, DONE, SKIPPED, SUPERSEDED = "pending", "claimed", "done", "skipped", "superseded"

SCHEMA = """
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
    payload TEXT NOT NULL,
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
CREATE INDEX IF NOT EXISTS changes_sku ON changes (sku, kind);
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


@dataclass(frozen=True)
class Change:
    id: int
    event_id: str
    kind: str
    sku: str
    occurred_at: float
    payload: dict[str, Any]
    attempts: int


def connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE) so that a writer
    # takes the lock before it reads, which is what keeps claims exclusive across processes.
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = connect(path)
        self.db = sqlite_utils.Database(self.conn)
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # -- inbox -------------------------------------------------------------------------------

    def ingest(self, events: Iterable[dict[str, Any]], changes_for: Any, now: float) -> tuple[int, int]:
        """Store a batch atomically; returns (new events, duplicates).

        ``changes_for(event)`` yields (kind, sku, payload) for the queue; it runs only for events
        not seen before, which is what makes a resend apply once.
        """
        new = dup = 0
        with self.transaction() as c:
            for ev in events:
                cur = c.execute(
                    "INSERT OR IGNORE INTO events (id, received_at, occurred_at, type, cause, sku, product_id,"
                    " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (ev["id"], now, ev["occurred_at"], ev["type"], ev["cause"], ev["sku"], ev["product_id"],
                     json.dumps(ev, separators=(",", ":"))),
                )
                if cur.rowcount == 0:
                    dup += 1
                    continue
                new += 1
                for kind, sku, payload in changes_for(ev):
                    c.execute(
                        "INSERT INTO changes (event_id, kind, sku, occurred_at, payload, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (ev["id"], kind, sku, ev["occurred_at"], json.dumps(payload, separators=(",", ":")), now),
                    )
        return new, dup

    def count_events(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def event(self, event_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT payload FROM events WHERE id = ?", (event_id,)).fetchone()
        return json.loads(row[0]) if row else None

    # -- queue -------------------------------------------------------------------------------

    def queue_stats(self, now: float) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT count(*), min(created_at) FROM changes WHERE status IN ('pending', 'claimed')"
        ).fetchone()
        newest = self.conn.execute(
            "SELECT max(created_at) FROM changes WHERE status IN ('pending', 'claimed')"
        ).fetchone()[0]
        return {
            "queue_depth": int(row[0]),
            "oldest_pending_age_s": round(now - row[1], 3) if row[1] is not None else None,
            "newest_pending_at": newest,
        }

    def due_window(self, now: float) -> tuple[int, float | None, float | None]:
        """(count, oldest created_at, newest created_at) of changes the worker may claim now."""
        row = self.conn.execute(
            "SELECT count(*), min(created_at), max(created_at) FROM changes WHERE"
            " (status = 'pending' AND next_attempt_at <= ?) OR (status = 'claimed' AND claimed_until < ?)",
            (now, now),
        ).fetchone()
        return int(row[0]), row[1], row[2]

    def release_all_claims(self) -> int:
        """Give back every claim; only safe for the one worker that holds the worker lock."""
        with self.transaction() as c:
            cur = c.execute("UPDATE changes SET status = 'pending', claim_token = NULL, claimed_until = NULL"
                            " WHERE status = 'claimed'")
        return cur.rowcount

    def claim(self, now: float, lease_s: float, limit: int = 20000) -> tuple[str, list[Change]]:
        """Claim due changes (pending, or claimed by a worker whose lease ran out)."""
        token = uuid.uuid4().hex
        with self.transaction() as c:
            c.execute(
                "UPDATE changes SET status = 'claimed', claim_token = ?, claimed_until = ?"
                " WHERE id IN (SELECT id FROM changes WHERE"
                " ((status = 'pending' AND next_attempt_at <= ?) OR (status = 'claimed' AND claimed_until < ?))"
                " ORDER BY id LIMIT ?)",
                (token, now + lease_s, now, now, limit),
            )
            rows = c.execute(
                "SELECT id, event_id, kind, sku, occurred_at, payload, attempts FROM changes"
                " WHERE claim_token = ? AND status = 'claimed' ORDER BY id",
                (token,),
            ).fetchall()
        return token, [
            Change(r["id"], r["event_id"], r["kind"], r["sku"], r["occurred_at"], json.loads(r["payload"]),
                   r["attempts"])
            for r in rows
        ]

    def _finish(self, token: str, ids: Iterable[int], status: str, now: float, error: str | None = None) -> int:
        ids = list(ids)
        n = 0
        with self.transaction() as c:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                marks = ",".join("?" * len(part))
                cur = c.execute(
                    f"UPDATE changes SET status = ?, done_at = ?, last_error = ?, claim_token = NULL"  # noqa: S608
                    f" WHERE claim_token = ? AND id IN ({marks})",
                    (status, now, error, token, *part),
                )
                n += cur.rowcount
        return n

    def mark_done(self, token: str, ids: Iterable[int], now: float, status: str = DONE) -> int:
        return self._finish(token, ids, status, now)

    def mark_skipped(self, token: str, ids: Iterable[int], now: float, reason: str) -> int:
        return self._finish(token, ids, SKIPPED, now, reason)

    def release(self, token: str, ids: Iterable[int], retry_at: float, error: str) -> None:
        """Give claimed rows back for a later attempt (retryable failure)."""
        ids = list(ids)
        with self.transaction() as c:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                marks = ",".join("?" * len(part))
                c.execute(
                    f"UPDATE changes SET status = 'pending', claim_token = NULL, claimed_until = NULL,"  # noqa: S608
                    f" attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                    f" WHERE claim_token = ? AND id IN ({marks})",
                    (retry_at, error, token, *part),
                )

    def changes_by_status(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT status, count(*) FROM changes GROUP BY status")}

    def skipped(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT sku, kind, last_error, max(done_at) AS at FROM changes WHERE status = 'skipped'"
            " GROUP BY sku, kind ORDER BY at DESC LIMIT ?", (limit,)
        )
        return [dict(r) for r in rows]

    # -- what was pushed last, per SKU: guards against an older value overwriting a newer one --

    def last_pushed(self, kind: str, skus: Iterable[str]) -> dict[str, tuple[float, Any]]:
        out: dict[str, tuple[float, Any]] = {}
        skus = list(skus)
        for i in range(0, len(skus), 500):
            part = skus[i:i + 500]
            marks = ",".join("?" * len(part))
            for r in self.conn.execute(
                f"SELECT sku, occurred_at, value FROM pushed WHERE kind = ? AND sku IN ({marks})",  # noqa: S608
                (kind, *part),
            ):
                out[r["sku"]] = (r["occurred_at"], json.loads(r["value"]) if r["value"] else None)
        return out

    def record_pushed(self, kind: str, items: Iterable[tuple[str, float, Any]], now: float) -> None:
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO pushed (kind, sku, occurred_at, value, pushed_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, sku) DO UPDATE SET occurred_at = excluded.occurred_at,"
                " value = excluded.value, pushed_at = excluded.pushed_at"
                " WHERE excluded.occurred_at >= pushed.occurred_at",
                [(kind, sku, at, json.dumps(v), now) for sku, at, v in items],
            )

    # -- mirror of KeyCRM stock and offers -----------------------------------------------------

    def keycrm_stock(self, skus: Iterable[str]) -> dict[str, dict[int, dict[str, Any]]]:
        """sku -> warehouse_id -> {quantity, reserve, offer_id, fetched_at}."""
        out: dict[str, dict[int, dict[str, Any]]] = {}
        skus = list(skus)
        for i in range(0, len(skus), 500):
            part = skus[i:i + 500]
            marks = ",".join("?" * len(part))
            for r in self.conn.execute(
                f"SELECT * FROM keycrm_stock WHERE sku IN ({marks})", part  # noqa: S608
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
        skus = list(skus)
        for i in range(0, len(skus), 500):
            part = skus[i:i + 500]
            marks = ",".join("?" * len(part))
            for r in self.conn.execute(
                f"SELECT * FROM keycrm_offers WHERE sku IN ({marks})", part  # noqa: S608
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
        skus = list(skus)
        for i in range(0, len(skus), 500):
            part = skus[i:i + 500]
            marks = ",".join("?" * len(part))
            self.conn.execute(f"DELETE FROM unmatched WHERE sku IN ({marks})", part)  # noqa: S608

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
