"""The plan as the owner reads it: each row as one dict, streamed as JSON or CSV for the report, and
paged and searched for the review screen (``GET /v1/resync/<id>/rows``). The one place a plan row is
turned into what is shown, and the one place plan rows are paged."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from .decide import json_number

REPORT_COLUMNS = ("sku", "action", "problems", "probable_match", "woo_product_ids", "woo_parent_id", "woo_stock",
                  "keycrm_offer_ids", "keycrm_product_id", "keycrm_sellable", "woo_target", "keycrm_target",
                  "woo_status", "keycrm_status", "error", "reason")


def _num(v: float | None) -> float | int | None:
    return None if v is None else json_number(v)


def _ids(text: str | None) -> list[int]:
    return [int(i) for i in (text or "").split(",") if i]


def plan_row(r: sqlite3.Row) -> dict[str, Any]:
    """One ``resync_plan`` row as the report, the review screen and the CLI show it."""
    return {
        "sku": r["sku"], "action": r["action"], "problems": [p for p in r["problems"].split(";") if p],
        "probable_match": r["probable_match"], "woo_product_ids": _ids(r["woo_ids"]),
        "woo_parent_id": r["woo_parent"], "woo_stock": _num(r["woo_stock"]), "keycrm_offer_ids": _ids(r["kc_ids"]),
        "keycrm_product_id": r["kc_product_id"], "keycrm_sellable": _num(r["kc_sellable"]),
        "woo_target": _num(r["woo_target"]), "keycrm_target": _num(r["kc_target"]),
        "woo_status": r["woo_status"], "keycrm_status": r["kc_status"], "error": r["error"], "reason": r["reason"],
    }


def rows_page(conn: sqlite3.Connection, job_id: str, *, offset: int = 0, limit: int = 50, sku: str = "",
              action: str = "", problem: str = "") -> dict[str, Any]:
    """One page of the plan, rows to change first; ``sku`` matches anywhere in the SKU, case-insensitively."""
    where, args = ["job = ?"], [job_id]
    if sku:
        where.append("lower(sku) LIKE ? ESCAPE '\\'")
        args.append("%" + sku.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if action:
        where.append("action = ?")
        args.append(action)
    if problem:
        where.append("instr(';' || problems || ';', ?) > 0")
        args.append(f";{problem};")
    cond = " AND ".join(where)
    total = int(conn.execute(f"SELECT count(*) FROM resync_plan WHERE {cond}", args).fetchone()[0])
    rows = conn.execute(f"SELECT * FROM resync_plan WHERE {cond} ORDER BY (action = 'none'), n LIMIT ? OFFSET ?",
                        (*args, limit, offset)).fetchall()
    return {"total": total, "offset": offset, "limit": limit, "rows": [plan_row(r) for r in rows]}


class ReportRows:
    """The report of ``ResyncJobs`` (which sets ``conn``)."""

    conn: sqlite3.Connection

    def report_rows(self, job_id: str, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT * FROM resync_plan WHERE job = ? AND n > ? ORDER BY n LIMIT ?", (job_id, last, chunk)
            ).fetchall()
            if not rows:
                return
            last = rows[-1]["n"]
            yield from (plan_row(r) for r in rows)

    def report_json(self, job: dict[str, Any], status: dict[str, Any]) -> Iterator[str]:
        """The plan as one JSON document, streamed: {"job": status, "items": [...]}."""
        yield '{"job": ' + json.dumps(status, ensure_ascii=False) + ', "items": ['
        first = True
        for row in self.report_rows(job["id"]):
            yield ("" if first else ",\n") + json.dumps(row, ensure_ascii=False)
            first = False
        yield "]}\n"

    def report_csv(self, job: dict[str, Any]) -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(REPORT_COLUMNS)
        for n, row in enumerate(self.report_rows(job["id"]), start=1):
            writer.writerow([";".join(str(x) for x in v) if isinstance(v, list) else ("" if v is None else v)
                             for v in (row[k] for k in REPORT_COLUMNS)])
            if n % 500 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()
