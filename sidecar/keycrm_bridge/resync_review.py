"""What the owner reviews before the first sync: the plan's rows, paged and searchable, and Cancel.

``GET /v1/resync/<id>/rows?offset=&limit=&sku=&action=&problem=`` pages through the comparison
(both sides' values, the planned targets, the reason); ``POST /v1/resync/<id>/cancel`` stops a
running job. Both are signed like every other plugin call; only job rows are read or written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from .clock import Clock
from .config import Settings
from .resync import status_of
from .resync_plan import ACTIONS, ResyncJobs, _num
from .store import Store

MAX_PAGE = 200


def rows_page(store: Store, job_id: str, *, offset: int = 0, limit: int = 50, sku: str = "",
              action: str = "", problem: str = "") -> dict[str, Any]:
    """One page of the plan; ``sku`` matches anywhere in the SKU, case-insensitively."""
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
    conn = store.conn
    total = int(conn.execute(f"SELECT count(*) FROM resync_plan WHERE {cond}", args).fetchone()[0])
    rows = conn.execute(
        f"SELECT sku, action, problems, probable_match, woo_stock, kc_sellable, woo_target, kc_target, reason,"
        f" woo_status, kc_status, error FROM resync_plan WHERE {cond} ORDER BY (action = 'none'), n LIMIT ? OFFSET ?",
        (*args, limit, offset)).fetchall()
    return {"total": total, "offset": offset, "limit": limit, "rows": [
        {"sku": r["sku"], "action": r["action"], "problems": [p for p in r["problems"].split(";") if p],
         "probable_match": r["probable_match"], "woo_stock": _num(r["woo_stock"]),
         "keycrm_sellable": _num(r["kc_sellable"]), "woo_target": _num(r["woo_target"]),
         "keycrm_target": _num(r["kc_target"]), "reason": r["reason"], "woo_status": r["woo_status"],
         "keycrm_status": r["kc_status"], "error": r["error"]} for r in rows]}


def register_review_routes(app: Flask, settings: Settings, clock: Clock, store: Callable[[], Store],
                           unsigned: Callable[[bytes], Any]) -> None:
    def _job(job_id: str) -> dict[str, Any] | None:
        jobs = ResyncJobs(store())
        return jobs.latest() if job_id == "latest" else jobs.get(job_id)

    @app.get("/v1/resync/<job_id>/rows")
    def resync_rows(job_id: str) -> tuple[Response, int]:
        denied = unsigned(b"")
        if denied:
            return denied
        job = _job(job_id)
        if job is None:
            return jsonify({"error": "no such resync", "detail": job_id}), 404
        try:
            offset = max(0, int(request.args.get("offset", 0)))
            limit = min(MAX_PAGE, max(1, int(request.args.get("limit", 50))))
        except ValueError:
            return jsonify({"error": "offset and limit must be whole numbers"}), 400
        action = request.args.get("action", "")
        if action and action not in ACTIONS:
            return jsonify({"error": "unknown action", "detail": list(ACTIONS)}), 400
        page = rows_page(store(), job["id"], offset=offset, limit=limit, sku=request.args.get("sku", "")[:200],
                         action=action, problem=request.args.get("problem", "")[:60])
        return jsonify({"job": status_of(job, settings, store(), clock.now()), **page}), 200

    @app.post("/v1/resync/<job_id>/cancel")
    def resync_cancel(job_id: str) -> tuple[Response, int]:
        denied = unsigned(request.get_data(cache=True))
        if denied:
            return denied
        job = _job(job_id)
        if job is None:
            return jsonify({"error": "no such resync", "detail": job_id}), 404
        if not ResyncJobs(store()).cancel(job["id"], clock.now()):
            return jsonify({"error": "the resync has already finished", "phase": job["phase"]}), 409
        return jsonify(status_of(ResyncJobs(store()).get(job["id"]) or job, settings, store(), clock.now())), 202
