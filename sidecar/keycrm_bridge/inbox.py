"""Plugin batches into events and queued changes, inside the store's transaction (``Store.expand_inbox``).

A batch whose events cannot all be stored is halved until the events that cannot stand alone: those
are handed to ``set_aside`` (the quarantine), every other event of the batch goes in.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from . import exclusions
from .errors import RETRYABLE, describe, disposition
from .store import SetAside, chunks, marks

# One encoder for every stored event (json.dumps with options builds a new one per call).
_compact = json.JSONEncoder(separators=(",", ":")).encode


def expand_batch(c: sqlite3.Connection, b: sqlite3.Row, changes_for: Any, set_aside: SetAside | None,
                 fresh: list[dict[str, Any]] | None) -> tuple[int, int]:
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
        try:
            n, d = expand_events(c, part, b["received_at"], changes_for, fresh, texts)
            c.execute("RELEASE expand")
            new, dup = new + n, dup + d
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
                  fresh_out: list[dict[str, Any]] | None = None, texts: dict[int, str] | None = None
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
    c.executemany(
        "INSERT INTO changes (event_id, kind, sku, occurred_at, created_at) VALUES (?, ?, ?, ?, ?)",
        [(ev["id"], kind, sku, ev["occurred_at"], now) for ev in fresh for kind, sku in changes_for(ev)],
    )
    exclusions.apply_events(c, fresh, now)
    if fresh_out is not None:
        fresh_out.extend(fresh)
    return len(fresh), len(batch) - len(fresh)
