"""One package file into the staging table: SKUs resolved through the GUID map, bad items set aside.

Nothing here writes KeyCRM. A file is read in slices of ``BATCH`` items; each slice learns its
ids, resolves SKUs (``<Артикул>``, else the map) and stages rows in SQLite, so memory does not
grow with the package. An item without a SKU, with an unreadable figure, or sharing its SKU with
another item of the same package is set aside with its reason: listed, never applied.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import Clock, SystemClock
from ..store import Store
from .aside import ErpAside
from .commerceml import Item, PackageInfo, Reader
from .guidmap import GuidMap
from .safety import Limits

BATCH = 2000
NO_SKU = "no SKU: the item has an empty <Артикул> and no earlier package named one"


@dataclass
class FileReport:
    kind: str = ""
    version: str = ""
    changes_only: bool | None = None
    items: int = 0
    staged: int = 0
    set_aside: Counter[str] = field(default_factory=Counter)
    renames: list[tuple[str, str, str]] = field(default_factory=list)
    warehouses: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "changes_only": self.changes_only,
                "items": self.items, "staged": self.staged, "set_aside": dict(self.set_aside),
                "renames": [{"guid": g, "from": a, "to": b} for g, a, b in self.renames[:20]],
                "renamed": len(self.renames), "warehouses": self.warehouses}


def _slices(items: Iterable[Item]) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for it in items:
        batch.append(it)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class Intake:
    def __init__(self, store: Store, source: str, limits: Limits | None = None,
                 price_type: str = "", clock: Clock | None = None) -> None:
        self.store = store
        self.aside = ErpAside(store, source, clock or SystemClock())
        self.conn = store.conn
        self.source = source
        self.limits = limits or Limits()
        self.price_type = price_type
        self.map = GuidMap(store.conn, source)

    def read_file(self, job_id: int, path: Path, now: float, name: str | None = None) -> FileReport:
        with open(path, "rb") as fh:
            reader = Reader(fh, name or path.name, self.limits, self.price_type)
            report = self.stage(job_id, reader, now)
            info: PackageInfo = reader.info
        report.kind, report.version, report.changes_only = info.kind, info.version, info.changes_only
        report.warehouses = dict(list(info.warehouses.items())[:50])
        return report

    def stage(self, job_id: int, items: Iterable[Item], now: float) -> FileReport:
        report = FileReport()
        for batch in _slices(items):
            report.items += len(batch)
            self._slice(job_id, batch, now, report)
        self._drop_duplicates(job_id, now, report)
        report.renames = []
        report.staged = int(self.conn.execute("SELECT count(DISTINCT sku) FROM erp_stage WHERE job_id = ?",
                                              (job_id,)).fetchone()[0])
        return report

    def _slice(self, job_id: int, batch: list[Item], now: float, report: FileReport) -> None:
        aside: list[tuple[str, str | None, str, str | None]] = []
        # Ids are learned into the map only when the whole file was read (``commit``): a file
        # refused half-way teaches nothing. Within the file, its own <Артикул> values count at once.
        cache = self.map.lookup([g for it in batch for g in (it.guid, it.guid.split("#", 1)[0])])
        cache.update({it.guid: it.sku.strip() for it in batch if it.guid and it.sku and it.sku.strip()})
        stage: list[tuple[Any, ...]] = []
        for it in batch:
            if it.problem:
                aside.append((it.guid or it.sku or "", it.sku, it.problem, it.guid))
                continue
            sku = self.map.resolve(it.guid, it.sku, cache)
            props = properties_json(it.properties)
            if not it.is_offer:
                if sku:  # a product without a SKU of its own is normal when its variants carry them
                    stage.append((job_id, it.guid, sku, None, None, it.name, None, props))
                continue
            if not sku:
                aside.append((it.guid, None, NO_SKU, it.guid))
                continue
            price = float(it.price) if it.price is not None else None
            if it.stock is None:
                stage.append((job_id, it.guid, sku, None, None, it.name, price, props))
            for wid, qty in (it.stock or {}).items():
                stage.append((job_id, it.guid, sku, wid, float(qty), it.name, price, props))
        with self.store.transaction():
            self.conn.executemany("INSERT INTO erp_stage (job_id, guid, sku, erp_warehouse, quantity, name, price,"
                                  " properties) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", stage)
            self.aside.add(aside, job_id)
        report.set_aside.update(r.split(":")[0] for _, _, r, _ in aside)

    def commit(self, job_id: int, now: float) -> list[tuple[str, str, str]]:
        """The file was read whole: learn its ids, clear what it fixed; returns renames (guid, old, new)."""
        with self.store.transaction() as c:  # one commit for the package, statements over the staged rows
            renames = self.map.learn_staged(job_id, now)
            self.aside.clear_staged(job_id)
            # An old SKU is no longer the ERP's: it must not count as "missing" in the next full package.
            c.executemany("DELETE FROM erp_stock WHERE sku = ? AND source = ?",
                          [(old, self.source) for _g, old, _n in renames])
        return renames

    def discard(self, job_id: int) -> None:
        """A refused file leaves nothing behind: no staged rows, no items listed from it."""
        self.conn.execute("DELETE FROM erp_stage WHERE job_id = ?", (job_id,))
        self.aside.discard_job(job_id)

    def _drop_duplicates(self, job_id: int, now: float, report: FileReport) -> None:
        """Set aside every item of a SKU that two items of this package carry: which one's stock it
        is cannot be told. A product's own catalogue row (a ``<Товар>`` without stock or price) does
        not compete with its variants: when it shares its article with one of them, that variant is
        the SKU's item (the row stays, for the product's name)."""
        dups = self.conn.execute(
            "SELECT sku, group_concat(DISTINCT guid) FROM erp_stage WHERE job_id = ?"
            " GROUP BY sku HAVING count(DISTINCT guid) > 1", (job_id,)).fetchall()
        aside = []
        for sku, guids in dups:
            ids = sorted(set(guids.split(",")))
            if len(self._competing(job_id, sku, ids)) < 2:
                continue
            aside += [(g, sku, duplicate_reason(ids), g) for g in ids]
            self.conn.execute("DELETE FROM erp_stage WHERE job_id = ? AND sku = ?", (job_id, sku))
        if aside:
            self.aside.add(aside, job_id)
            report.set_aside["duplicate SKU"] += len(aside)

    def _competing(self, job_id: int, sku: str, ids: list[str]) -> list[str]:
        naming_only = {r[0] for r in self.conn.execute(
            "SELECT guid FROM erp_stage WHERE job_id = ? AND sku = ? GROUP BY guid"
            " HAVING max(erp_warehouse) IS NULL AND max(price) IS NULL", (job_id, sku))}
        return [g for g in ids if not ("#" not in g and g in naming_only and any(h.startswith(g + "#") for h in ids))]


def duplicate_reason(ids: list[str]) -> str:
    products = {g.split("#", 1)[0] for g in ids}
    if len(products) == 1 and sum("#" in g for g in ids) > 1:
        # Where characteristics have no article of their own (often so in 1C:УТ), each is sent with the product's.
        return (f"duplicate SKU: {sum('#' in g for g in ids)} variants of product {next(iter(products))} carry"
                " the same article (the product's?); give each characteristic its own article in the ERP."
                " None is applied until then")
    return f"duplicate SKU: ERP items {', '.join(ids[:5])} all carry it; none is applied until one changes"


def properties_json(props: list[tuple[str, str]] | None) -> str | None:
    """A variant's characteristics as KeyCRM takes an offer's ``properties`` ([{name, value}]);
    None when the item gave none (an earlier package's stay known)."""
    if not props:
        return None
    return json.dumps([{"name": n, "value": v} for n, v in props], ensure_ascii=False, separators=(",", ":"))


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, separators=(",", ":"))
