"""The change queue: rows claimed with a token and a lease, then marked done, failed or released.

It follows Action Scheduler's shape, so a worker killed mid-batch loses nothing: its lease runs out
and the rows are claimed again. Stock changes need no lease (``take_stock``): they only feed the
ledger, in the same transaction that marks them done. ``Store`` holds these methods (a mixin: one
connection, one transaction); this module keeps the queue's SQL in one place.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

PENDING, CLAIMED, DONE, SKIPPED, SUPERSEDED = "pending", "claimed", "done", "skipped", "superseded"


@dataclass(frozen=True)
class Change:
    id: int
    event_id: str
    kind: str
    sku: str
    occurred_at: float
    payload: dict[str, Any]
    attempts: int


def chunks(items: Iterable[Any], n: int = 500) -> Iterator[list[Any]]:
    """Slices small enough for one ``IN (?, …)`` (SQLite allows 999 parameters by default)."""
    items = list(items)
    for i in range(0, len(items), n):
        yield items[i:i + n]


def marks(part: list[Any]) -> str:
    return ",".join("?" * len(part))


class ChangeQueue:
    conn: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # Store's

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
                "SELECT c.id, c.event_id, c.kind, c.sku, c.occurred_at, e.payload, c.attempts FROM changes c"
                " JOIN events e ON e.id = c.event_id WHERE c.claim_token = ? AND c.status = 'claimed' ORDER BY c.id",
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
            for part in chunks(ids):
                cur = c.execute(
                    f"UPDATE changes SET status = ?, done_at = ?, last_error = ?, claim_token = NULL"
                    f" WHERE claim_token = ? AND id IN ({marks(part)})",
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
            for part in chunks(ids):
                c.execute(
                    f"UPDATE changes SET status = 'pending', claim_token = NULL, claimed_until = NULL,"
                    f" attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                    f" WHERE claim_token = ? AND id IN ({marks(part)})",
                    (retry_at, error, token, *part),
                )

    def defer(self, token: str, ids: Iterable[int], retry_at: float) -> None:
        """Give claimed rows back untried (their turn for the budget has not come): no attempt counted."""
        ids = list(ids)
        with self.transaction() as c:
            for part in chunks(ids):
                c.execute(
                    f"UPDATE changes SET status = 'pending', claim_token = NULL, claimed_until = NULL,"
                    f" next_attempt_at = ? WHERE claim_token = ? AND id IN ({marks(part)})",
                    (retry_at, token, *part),
                )

    def changes_by_status(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT substr(name, 9), value FROM counters WHERE name LIKE 'changes.%' AND value > 0")
        return {r[0]: int(r[1]) for r in rows}

    def skipped(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT sku, kind, last_error, max(done_at) AS at FROM changes WHERE status = 'skipped'"
            " GROUP BY sku, kind ORDER BY at DESC LIMIT ?", (limit,)
        )
        return [dict(r) for r in rows]

    # -- what was pushed last, per SKU: guards against an older value overwriting a newer one --

    def last_pushed(self, kind: str, skus: Iterable[str]) -> dict[str, tuple[float, Any]]:
        out: dict[str, tuple[float, Any]] = {}
        for part in chunks(skus):
            for r in self.conn.execute(
                f"SELECT sku, occurred_at, value FROM pushed WHERE kind = ? AND sku IN ({marks(part)})",
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

    def due_stock(self, now: float, limit: int) -> tuple[list[int], list[dict[str, Any]]]:
        """Pending stock changes (ids, their events) that no pending rename comes before: a rename
        goes first through ``claim`` so that the stock after it finds the offer under its new SKU.
        Changes of an empty SKU are left to ``claim``, which sets them aside with a reason."""
        rows = self.conn.execute(
            "SELECT c.id, c.sku, e.payload FROM changes c JOIN events e ON e.id = c.event_id"
            " WHERE c.status = 'pending' AND c.next_attempt_at <= ? AND c.kind = 'stock' AND c.id <"
            " coalesce((SELECT min(id) FROM changes WHERE status IN ('pending', 'claimed') AND kind = 'rename'),"
            " 9223372036854775807) ORDER BY c.id LIMIT ?", (now, limit)).fetchall()
        rows = [r for r in rows if r[1].strip()]
        return [r[0] for r in rows], [json.loads(r[2]) for r in rows]

    def finish_unclaimed(self, ids: list[int], now: float) -> None:
        """Mark pending changes done in the caller's transaction (``due_stock``'s, nothing claimed)."""
        for part in chunks(ids):
            self.conn.execute(f"UPDATE changes SET status = 'done', done_at = ? WHERE status = 'pending'"
                              f" AND id IN ({marks(part)})", (now, *part))
