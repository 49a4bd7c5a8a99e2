"""A full resync as the HTTP API, the plugin's progress bar and the CLI see it: its status with an ETA,
and the routes that create a job and serve its report (only job rows are written here)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from . import door
from .clock import Clock
from .config import Settings
from .keycrm_client import PAGE_LIMIT, STOCKS_PUT_MAX_ROWS
from .resync_batches import WOO_BATCH
from .resync_plan import FINISHED, AlreadyRunning, ResyncJobs
from .status import budget_used
from .store import Store

log = logging.getLogger("keycrm_bridge.resync")


# -- status, ETA ---------------------------------------------------------------------------------------------

def status_of(job: dict[str, Any], settings: Settings, store: Store, now: float) -> dict[str, Any]:
    """What GET /v1/resync/{id}, the plugin's progress bar and the CLI's bar show."""
    out: dict[str, Any] = {
        "id": job["id"], "phase": job["phase"], "dry_run": job["dry_run"], "create_missing": job["create_missing"],
        "mode": job["mode"], "done": int(job["done"]), "total": max(int(job["total"]), int(job["done"])),
        "errors": int(job["errors"]), "eta_s": None if job["phase"] in FINISHED else eta_s(job, settings, store, now),
        "created_at": job["created_at"], "started_at": job["started_at"], "finished_at": job["finished_at"],
        "counts": job["counts"] or None, "last_error": job["last_error"],
        "retry_at": job["retry_at"] if job["retry_at"] > now else None,
    }
    if job["phase"] in FINISHED and job["counts"]:
        base = f"/v1/resync/{job['id']}/plan"
        out["report"] = {"json": base + ".json", "csv": base + ".csv"}
    if settings.erp is not None and job["phase"] in FINISHED:
        from .erp.review import erp_review  # erp mode: what the ERP will write to KeyCRM, too

        out["erp"] = erp_review(store, settings, str(job["id"]), now)
    return out


def eta_s(job: dict[str, Any], settings: Settings, store: Store, now: float) -> float:
    """Seconds left: the KeyCRM requests still to make at the budget's pace, plus WooCommerce time.

    The first ``per_minute - used_last_minute`` requests can start at once; every further one waits
    for a slot, which frees at ``per_minute`` a minute.
    """
    cur = job["cursor"] or {}
    kc_left, woo_left = _requests_left(job, store)
    per_minute = max(1, settings.rate_per_minute)
    free_now = max(0, per_minute - budget_used(store, now))
    kc_s = max(0, kc_left - free_now) * 60.0 / per_minute
    woo_each = (cur.get("woo_s", 0.0) / cur["woo_requests"]) if cur.get("woo_requests") else 0.2
    wait = max(0.0, float(job["retry_at"] or 0) - now)
    return round(kc_s + woo_left * woo_each + wait, 1)


def _requests_left(job: dict[str, Any], store: Store) -> tuple[int, int]:
    cur = job["cursor"] or {}
    c = store.conn
    if job["phase"] in ("planning_keycrm", "planning_woo", "planned"):
        kc_total = cur.get("kc_total_stocks")
        stock_pages = math.ceil(kc_total / PAGE_LIMIT) if isinstance(kc_total, int) else None
        if stock_pages is None:
            guess = int(c.execute("SELECT count(*) FROM keycrm_offers").fetchone()[0]) or 50
            stock_pages = math.ceil(guess / PAGE_LIMIT)
        kc = cur.get("kc", "stocks")
        page = int(cur.get("page", 1))
        offer_pages = stock_pages if job["create_missing"] else 1  # else only the first, to compare totals
        if kc == "stocks":
            kc_left = stock_pages + offer_pages - page + 1
        elif kc == "offers":
            offers_total = cur.get("kc_total_offers")
            if isinstance(offers_total, int) and page > 1:
                offer_pages = math.ceil(offers_total / PAGE_LIMIT)
            kc_left = offer_pages - page + 1
        else:
            kc_left = 0
        woo_left = 0
        if cur.get("woo") != "done":
            woo_pages = math.ceil(stock_pages / 2) - int(cur.get("woo_page", 1)) + 1
            woo_left = len(cur.get("var_queue") or []) + max(0, woo_pages)
        return max(0, kc_left), woo_left
    pending = {r[0]: r[1] for r in c.execute(
        "SELECT side, count(*) FROM resync_batches WHERE job = ? AND status IN ('pending', 'inflight') GROUP BY side",
        (job["id"],))}
    unassigned_kc = int(c.execute("SELECT count(*) FROM resync_plan WHERE job = ? AND kc_status IN ('planned',"
                                  " 'created') AND kc_batch IS NULL", (job["id"],)).fetchone()[0])
    unassigned_woo = int(c.execute("SELECT count(*) FROM resync_plan WHERE job = ? AND woo_status = 'planned'"
                                   " AND woo_batch IS NULL", (job["id"],)).fetchone()[0])
    kc_left = pending.get("keycrm", 0) + 2 * pending.get("create", 0) + math.ceil(unassigned_kc / STOCKS_PUT_MAX_ROWS)
    return kc_left, pending.get("woocommerce", 0) + math.ceil(unassigned_woo / WOO_BATCH)


def job_named(store: Store, job_id: str) -> dict[str, Any] | None:
    """The job a route names: its id, or ``latest``."""
    jobs = ResyncJobs(store)
    return jobs.latest() if job_id == "latest" else jobs.get(job_id)


# -- HTTP ----------------------------------------------------------------------------------------------------

def register_resync_routes(app: Flask, settings: Settings, clock: Clock, store: Callable[[], Store],
                           unsigned: Callable[[bytes], Any]) -> None:
    """POST /v1/resync, GET /v1/resync/<id>, GET /v1/resync/<id>/plan.json|.csv (all signed).

    Only job rows are written here; the worker does every KeyCRM and WooCommerce call.
    """

    def _err(status: int, error: str, detail: Any = None) -> tuple[Response, int]:
        body: dict[str, Any] = {"error": error}
        if detail is not None:
            body["detail"] = detail
        return jsonify(body), status

    @app.post("/v1/resync")
    def resync_start() -> tuple[Response, int]:
        body = request.get_data(cache=True)
        denied = unsigned(body)
        if denied:
            return denied
        try:
            data = door.loads(body) if body.strip() else {}
        except door.Refused as exc:
            return _err(400, "body is not JSON", str(exc))
        if not isinstance(data, dict):
            return _err(400, "bad request", 'expected {"dry_run": true|false, "create_missing": true|false}')
        flags = {k: data.get(k, default) for k, default in (("dry_run", True), ("create_missing", False))}
        if any(not isinstance(v, bool) for v in flags.values()):
            return _err(422, "dry_run and create_missing must be true or false")
        try:
            job = ResyncJobs(store()).create(dry_run=flags["dry_run"], create_missing=flags["create_missing"],
                                             mode=settings.sync_mode, now=clock.now(), source="api")
        except AlreadyRunning as exc:
            return jsonify({"error": "a resync is already running", "id": exc.job_id}), 409
        log.info("resync requested", extra={"job": job["id"], **flags})
        return jsonify(status_of(job, settings, store(), clock.now())), 202

    @app.get("/v1/resync/<job_id>")
    def resync_status(job_id: str) -> tuple[Response, int]:
        denied = unsigned(b"")
        if denied:
            return denied
        job = job_named(store(), job_id)
        if job is None:
            return _err(404, "no such resync", job_id)
        return jsonify(status_of(job, settings, store(), clock.now())), 200

    @app.get("/v1/resync/<job_id>/plan.<fmt>")
    def resync_plan(job_id: str, fmt: str) -> Any:
        denied = unsigned(b"")
        if denied:
            return denied
        if fmt not in ("json", "csv"):
            return _err(404, "not found", "use plan.json or plan.csv")
        job = job_named(store(), job_id)
        if job is None:
            return _err(404, "no such resync", job_id)
        if not job["counts"]:
            return _err(409, "the plan is not ready yet", {"phase": job["phase"]})
        jobs = ResyncJobs(store())
        headers = {"Content-Disposition": f'attachment; filename="keycrm-resync-{job["id"]}.{fmt}"'}
        if fmt == "csv":
            return Response(jobs.report_csv(job), mimetype="text/csv", headers=headers)
        return Response(jobs.report_json(job, status_of(job, settings, store(), clock.now())),
                        mimetype="application/json", headers=headers)
