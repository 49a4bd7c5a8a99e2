"""Items set aside after admission: one poisoned event, webhook row or SKU never stops the rest.

A stage that cannot process an item (its ``disposition`` is permanent or skip) records it here with
the stage, the reason and what is needed to try it again, and goes on with everything else. The
owner sees the list in ``status`` (CLI, ``/v1/status``, the wp-admin page) and in ``/metrics``, and
answers with ``keycrm-bridge quarantine retry ID`` or ``drop ID``. A retry only marks the row; the
worker lane that owns the stage picks it up (``due_retries``), because only the worker may act.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .clock import Clock
from .store import Store

log = logging.getLogger("keycrm_bridge.quarantine")

# The stages an item can be set aside at (one per worker step that handles items).
INTAKE, SKUMAP, PUSH, WEBHOOK, SYNC, ERP = "intake", "skumap", "push", "webhook", "sync", "erp"
STAGES = (INTAKE, SKUMAP, PUSH, WEBHOOK, SYNC, ERP)
HELD, RETRY = "held", "retry"


def safe_text(value: Any, limit: int = 300) -> str:
    """Any value as text SQLite can store: a lone surrogate or a NUL becomes its escape, not an error."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:limit]


def safe_json(value: Any) -> str:
    # ASCII JSON holds any payload, NaN and lone surrogates included, so a retry sees what came.
    return json.dumps(value, ensure_ascii=True, default=str, allow_nan=True)


class Quarantine:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.conn = store.conn

    def add(self, stage: str, key: str, reason: str, payload: Any = None, sku: Any = None) -> int:
        """Set one item aside (again: the same stage and key update the row and count the attempt)."""
        now = self.clock.now()
        key, reason = safe_text(key, 200), safe_text(reason, 500)
        sku_text = None if sku is None else safe_text(sku, 200)
        self.conn.execute(
            "INSERT INTO quarantine (stage, key, sku, reason, payload, first_at, last_at, attempts, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 1, 'held') ON CONFLICT (stage, key) DO UPDATE SET"
            " reason = excluded.reason, payload = excluded.payload, last_at = excluded.last_at,"
            " attempts = quarantine.attempts + 1, status = 'held'",
            (stage, key, sku_text, reason, safe_json(payload), now, now),
        )
        row = self.conn.execute("SELECT id FROM quarantine WHERE stage = ? AND key = ?", (stage, key)).fetchone()
        log.warning("item set aside", extra={"stage": stage, "sku": sku_text, "key": key, "reason": reason})
        return int(row[0])

    def add_many(self, stage: str, rows: list[tuple[str, str, Any, Any]]) -> int:
        """Set many items aside at once, as (key, reason, payload, sku): an ERP package may bring
        thousands, so one statement and one log line, not one of each per item."""
        if not rows:
            return 0
        now = self.clock.now()
        self.conn.executemany(
            "INSERT INTO quarantine (stage, key, sku, reason, payload, first_at, last_at, attempts, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 1, 'held') ON CONFLICT (stage, key) DO UPDATE SET"
            " reason = excluded.reason, payload = excluded.payload, sku = excluded.sku,"
            " last_at = excluded.last_at, attempts = quarantine.attempts + 1, status = 'held'",
            [(stage, safe_text(k, 200), None if sku is None else safe_text(sku, 200), safe_text(r, 500),
              safe_json(p), now, now) for k, r, p, sku in rows])
        log.warning("items set aside", extra={"stage": stage, "items": len(rows),
                                              "skus": [safe_text(r[3], 200) for r in rows[:20] if r[3] is not None],
                                              "reason": safe_text(rows[0][1], 300)})
        return len(rows)

    def items(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, stage, key, sku, reason, first_at, last_at, attempts, status FROM quarantine"
            " ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.conn.execute("SELECT stage, count(*) FROM quarantine GROUP BY stage")}

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def request_retry(self, item_id: int) -> bool:
        cur = self.conn.execute("UPDATE quarantine SET status = 'retry' WHERE id = ?", (item_id,))
        return bool(cur.rowcount)

    def drop(self, item_id: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT stage, key, sku FROM quarantine WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return None
        self.conn.execute("DELETE FROM quarantine WHERE id = ?", (item_id,))
        log.info("set-aside item dropped", extra={"id": item_id, "stage": row[0], "key": row[1], "sku": row[2]})
        return dict(row)

    def due_retries(self, stages: tuple[str, ...]) -> list[dict[str, Any]]:
        """Rows the owner asked to retry, for the lane that owns these stages."""
        q = f"SELECT id, stage, key, sku, payload FROM quarantine WHERE status = 'retry' AND stage IN ({','.join('?' * len(stages))}) ORDER BY id LIMIT 100"  # noqa: E501
        return [{**dict(r), "payload": json.loads(r["payload"])} for r in self.conn.execute(q, stages)]

    def resolved(self, item_id: int) -> None:
        self.conn.execute("DELETE FROM quarantine WHERE id = ?", (item_id,))

    def clear(self, stage: str, key: str) -> None:
        """The item went through after all (a later change of it succeeded)."""
        self.conn.execute("DELETE FROM quarantine WHERE stage = ? AND key = ?", (stage, safe_text(key, 200)))
