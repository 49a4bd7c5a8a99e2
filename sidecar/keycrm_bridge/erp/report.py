"""What the ERP source did, for ``status``, ``/v1/status``, ``explain SKU`` and ``/metrics``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..config import Settings
from ..store import Store
from .aside import aside_count, aside_reasons, aside_rows


def erp_status(store: Store, settings: Settings, now: float) -> dict[str, Any]:
    assert settings.erp is not None
    c = store.conn
    last = c.execute("SELECT id, filename, status, kind, changes_only, report, message, finished_at FROM erp_jobs"
                     " WHERE status IN ('done', 'failed') AND filename != '*finalize*' ORDER BY id DESC LIMIT 1"
                     ).fetchone()
    last_job = None
    if last is not None:
        rep = json.loads(last["report"] or "{}")
        last_job = {"id": last["id"], "file": last["filename"], "status": last["status"],
                    "package": None if last["kind"] is None else
                    ("changes only" if last["changes_only"] else "full"),
                    "at": last["finished_at"], "message": last["message"],
                    "rows_applied": rep.get("rows_written", 0), "rows_unchanged": rep.get("rows_unchanged", 0),
                    "set_aside": rep.get("set_aside", {}), "missing": rep.get("missing"), "read": rep.get("read")}
    return {
        "source": settings.erp.erp,
        "last_package": last_job,
        "last_failure": store.get_meta("erp_last_failure"),
        "jobs_waiting": int(c.execute("SELECT count(*) FROM erp_jobs WHERE status IN ('queued', 'running')"
                                      ).fetchone()[0]),
        "keycrm_lookups_waiting": int(c.execute("SELECT count(*) FROM erp_to_read").fetchone()[0]),
        # (the shared quarantine's stage "erp": `keycrm-bridge quarantine list|retry|drop` acts on them)
        "set_aside_count": aside_count(c),
        "set_aside": aside_reasons(c),
        "set_aside_examples": aside_rows(c),
        "skus_known": int(c.execute("SELECT count(DISTINCT sku) FROM erp_stock").fetchone()[0]),
        "warehouse_map": [{"erp": k, "keycrm": v} for k, v in settings.erp.warehouse_map],
        "moysklad": store.get_meta("moysklad_state") if settings.erp.erp == "moysklad" else None,
    }


def erp_explain(store: Store, sku: str) -> dict[str, Any] | None:
    """The ERP's side of one SKU: its ids, stock per ERP warehouse, what was written, why set aside."""
    c = store.conn
    if not c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'erp_stock'").fetchone():
        return None  # not an ERP bridge
    return {
        "ids": [dict(r) for r in c.execute("SELECT guid, name, source, seen_at FROM erp_guid_map WHERE sku = ?",
                                           (sku,))],
        "stock": [dict(r) for r in c.execute("SELECT erp_warehouse, quantity, source, at FROM erp_stock"
                                             " WHERE sku = ?", (sku,))],
        "written_to_keycrm": [dict(r) for r in c.execute("SELECT warehouse_id, quantity, at FROM erp_applied"
                                                         " WHERE sku = ?", (sku,))],
        "set_aside": aside_rows(c, sku),
    }


def format_erp_status(erp: dict[str, Any]) -> list[str]:
    lines = [f"ERP: {erp['source']}, {erp['skus_known']} SKUs known, {erp['jobs_waiting']} package(s) waiting"]
    last = erp.get("last_package")
    if last:
        lines.append(f"  last package: {last['file']} ({last['package'] or last['status']}): {last['message']}")
    if erp.get("last_failure"):
        lines.append(f"  last refusal: {erp['last_failure']['file']}: {erp['last_failure']['error']}")
    for r in erp.get("set_aside") or []:
        lines.append(f"  set aside: {r['count']} × {r['reason']}")
    return lines


def format_erp_explain(info: dict[str, Any] | None) -> list[str]:
    if not info:
        return []
    lines = []
    for i in info["ids"]:
        lines.append(f"  ERP item {i['guid']} ({i['source']}): {i['name'] or ''}")
    for s in info["stock"]:
        lines.append(f"  ERP on hand at {s['erp_warehouse'] or 'no warehouse'}: {s['quantity']:g}")
    for w in info["written_to_keycrm"]:
        lines.append(f"  written to KeyCRM warehouse {w['warehouse_id']}: {w['quantity']:g}")
    for a in info["set_aside"]:
        lines.append(f"  ERP item {a['guid'] or ''} set aside (quarantine id {a['id']}): {a['reason']}")
    return lines


def erp_metrics(store: Store, prefix: str) -> Iterator[Metric]:
    """The ERP source on /metrics: packages by outcome, rows written, items set aside, last package."""
    c = store.conn
    if not c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'erp_jobs'").fetchone():
        return
    jobs = CounterMetricFamily(prefix + "erp_packages", "ERP packages (1C files, MoySklad reports) by outcome.",
                               labels=["source", "status"])
    rows = CounterMetricFamily(prefix + "erp_stock_rows", "ERP stock rows: written to KeyCRM or unchanged.",
                               labels=["source", "result"])
    for source, status, n, written, unchanged in c.execute(
            "SELECT source, status, count(*), sum(coalesce(json_extract(report, '$.rows_written'), 0)),"
            " sum(coalesce(json_extract(report, '$.rows_unchanged'), 0)) FROM erp_jobs"
            " WHERE filename != '*finalize*' GROUP BY source, status"):
        jobs.add_metric([source, status], n)
        if status == "done":
            rows.add_metric([source, "written"], written or 0)
            rows.add_metric([source, "unchanged"], unchanged or 0)
    yield jobs
    yield rows
    aside = GaugeMetricFamily(prefix + "erp_set_aside_items", "ERP items not applied, by reason.", labels=["reason"])
    for reason, n in c.execute("SELECT substr(reason, 1, 60), count(*) FROM quarantine WHERE stage = 'erp' GROUP BY 1"):
        aside.add_metric([reason], n)
    yield aside
    last = c.execute("SELECT max(finished_at) FROM erp_jobs WHERE status = 'done'").fetchone()[0]
    yield GaugeMetricFamily(prefix + "erp_last_package_timestamp_seconds",
                            "Unix time of the last ERP package applied; 0: never.", value=float(last or 0))
