"""The persisted ERP id ↔ SKU map: renames follow the item, duplicates and empty SKUs are listed.

1C keeps an item's ``<Ид>`` (a GUID, ``product#variant`` for a variant) for life while its
``<Артикул>`` may be edited; MoySklad likewise keeps the assortment id. Matching KeyCRM by SKU
therefore goes through this map: the id names the item, the map says which SKU it has now.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ..store import chunks, marks


class GuidMap:
    def __init__(self, conn: sqlite3.Connection, source: str) -> None:
        self.conn = conn
        self.source = source

    def lookup(self, guids: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in chunks(list(dict.fromkeys(guids))):
            for g, s in self.conn.execute(f"SELECT guid, sku FROM erp_guid_map WHERE guid IN ({marks(part)})", part):
                out[g] = s
        return out

    def learn(self, pairs: Iterable[tuple[str, str, str | None]], now: float) -> list[tuple[str, str, str]]:
        """Record (guid, sku, name); returns renames as (guid, old sku, new sku)."""
        pairs = list(pairs)
        known = self.lookup(g for g, _, _ in pairs)
        renames = [(g, known[g], s) for g, s, _ in pairs if g in known and known[g] != s]
        self.conn.executemany(
            "INSERT INTO erp_guid_map (guid, sku, name, source, seen_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (guid) DO UPDATE SET sku = excluded.sku, name = coalesce(excluded.name, erp_guid_map.name),"
            " seen_at = excluded.seen_at",
            [(g, s, n, self.source, now) for g, s, n in pairs])
        return renames

    def learn_staged(self, job_id: int, now: float) -> list[tuple[str, str, str]]:
        """``learn`` for every (guid, SKU) a staged package holds, in SQL: a 100,000-item package
        costs two statements, not a round trip per slice; returns renames (guid, old sku, new sku)."""
        staged = ("SELECT guid, sku, max(name) AS name, max(properties) AS properties FROM erp_stage"
                  " WHERE job_id = ? GROUP BY guid, sku")
        renames = [(r[0], r[1], r[2]) for r in self.conn.execute(
            f"SELECT s.guid, m.sku, s.sku FROM ({staged}) s JOIN erp_guid_map m ON m.guid = s.guid"
            " WHERE m.sku != s.sku", (job_id,))]
        self.conn.execute(
            f"INSERT INTO erp_guid_map (guid, sku, name, properties, source, seen_at) SELECT guid, sku, name,"
            f" properties, ?, ? FROM ({staged}) WHERE true ON CONFLICT (guid) DO UPDATE SET sku = excluded.sku,"
            " name = coalesce(excluded.name, erp_guid_map.name),"
            " properties = coalesce(excluded.properties, erp_guid_map.properties), seen_at = excluded.seen_at",
            (self.source, now, job_id))
        return renames

    def resolve(self, guid: str, sku: str | None, cache: dict[str, str]) -> str | None:
        """The SKU of an item: its own ``<Артикул>``, else the map's entry for it or for its product."""
        if sku and sku.strip():
            return sku.strip()
        if guid in cache:
            return cache[guid]
        product = guid.split("#", 1)[0]
        if "#" not in guid and product in cache:
            return cache[product]
        return None

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM erp_guid_map WHERE source = ?",
                                     (self.source,)).fetchone()[0])
