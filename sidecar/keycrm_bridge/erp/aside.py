"""ERP items that cannot be used, in the shared quarantine (stage ``erp``): listed, never applied.

The same list as every other set-aside item: ``keycrm-bridge quarantine list|retry|drop``,
``/v1/status``, ``/metrics``. A row's key is ``<source>|<what>``: the ERP's item id for an item of
a package (no SKU, a duplicate SKU, an unreadable figure), ``missing:SKU`` for a SKU a full package
lacked, ``keycrm:SKU`` for one KeyCRM has no offer for, ``created:SKU`` for one the bridge created.
The payload says which package (``job_id``) listed it, so a refused package takes its rows back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from ..clock import Clock
from ..quarantine import ERP, Quarantine
from ..store import Store, chunks, marks

log = logging.getLogger("keycrm_bridge.erp")


class ErpAside:
    def __init__(self, store: Store, source: str, clock: Clock) -> None:
        self.conn, self.source = store.conn, source
        self.quarantine = Quarantine(store, clock)

    def key(self, what: str) -> str:
        return f"{self.source}|{what}"

    def add(self, rows: Iterable[tuple[str, str | None, str, str | None]], job_id: int | None) -> int:
        """Set aside (what, sku, reason, ERP item id)."""
        return self.quarantine.add_many(ERP, [
            (self.key(what), reason, {"source": self.source, "guid": guid, "sku": sku, "job_id": job_id}, sku)
            for what, sku, reason, guid in rows])

    def clear(self, whats: list[str], keep_job: int | None = None) -> None:
        """These items are fine now (a package named their SKU, KeyCRM has the offer); rows the
        package ``keep_job`` itself listed stay."""
        for part in chunks(whats):
            keys = [self.key(w) for w in part]
            self.conn.execute(f"DELETE FROM quarantine WHERE stage = ? AND key IN ({marks(keys)})"
                              " AND coalesce(json_extract(payload, '$.job_id'), -1) IS NOT ?", (ERP, *keys, keep_job))

    def clear_staged(self, job_id: int) -> None:
        """``clear`` for every item of the staged package ``job_id`` (one statement, whatever its size)."""
        self.conn.execute("DELETE FROM quarantine WHERE stage = ? AND key IN (SELECT DISTINCT ? || '|' || guid"
                          " FROM erp_stage WHERE job_id = ?) AND coalesce(json_extract(payload, '$.job_id'), -1) != ?",
                          (ERP, self.source, job_id, job_id))

    def discard_job(self, job_id: int) -> None:
        """A refused package lists nothing."""
        self.conn.execute("DELETE FROM quarantine WHERE stage = ? AND json_extract(payload, '$.job_id') = ?",
                          (ERP, job_id))

    def has(self, what: str) -> bool:
        return self.conn.execute("SELECT 1 FROM quarantine WHERE stage = ? AND key = ?",
                                 (ERP, self.key(what))).fetchone() is not None

    def retry_due(self) -> int:
        """The owner's ``quarantine retry``: a SKU KeyCRM lacked (or that was created) is looked up
        again, and created again if still missing and allowed; an item of a package, or a SKU a full
        package lacked, leaves the list and comes back with the ERP's next package if still so."""
        items = self.quarantine.due_retries((ERP,))
        now = self.quarantine.clock.now()
        for item in items:
            self.quarantine.resolved(item["id"])
            what = item["key"].split("|", 1)[-1]
            kind, _, sku = what.partition(":")
            if kind in ("keycrm", "created") and sku:
                self.conn.execute("INSERT OR IGNORE INTO erp_to_read (sku, at) VALUES (?, ?)", (sku, now))
            log.info("ERP item handed back", extra={"sku": item["sku"], "key": item["key"]})
        return len(items)


def aside_reasons(conn: Any, limit: int = 20) -> list[dict[str, Any]]:
    return [{"reason": r[0], "count": r[1]} for r in conn.execute(
        "SELECT reason, count(*) FROM quarantine WHERE stage = ? GROUP BY reason ORDER BY count(*) DESC LIMIT ?",
        (ERP, limit))]


def aside_count(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) FROM quarantine WHERE stage = ?", (ERP,)).fetchone()[0])


def aside_rows(conn: Any, sku: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest set-aside ERP items (of one SKU), with the quarantine id ``retry``/``drop`` take."""
    where, args = ("AND sku = ?", (ERP, sku, limit)) if sku is not None else ("", (ERP, limit))
    out = []
    for r in conn.execute(f"SELECT id, sku, reason, payload, last_at FROM quarantine WHERE stage = ? {where}"
                          " ORDER BY last_at DESC, id DESC LIMIT ?", args):
        payload = json.loads(r["payload"] or "{}")
        out.append({"id": r["id"], "sku": r["sku"], "guid": payload.get("guid"), "reason": r["reason"],
                    "at": r["last_at"]})
    return out
