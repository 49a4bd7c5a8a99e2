"""What the owner reviews before the first sync: the plan's rows, paged and searchable, and Cancel.

``GET /v1/resync/<id>/rows?offset=&limit=&sku=&action=&problem=`` pages through the comparison
(both sides' values, the planned targets, the reason); ``POST /v1/resync/<id>/cancel`` stops a
running job. Both are signed like every other plugin call; only job rows are read or written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from . import reasons
from .clock import Clock
from .config import Settings
from .resync_api import job_named, status_of
from .resync_plan import ACTIONS, ResyncJobs
from .resync_report import rows_page
from .store import Store

MAX_PAGE = 200


def register_review_routes(app: Flask, settings: Settings, clock: Clock, store: Callable[[], Store],
                           unsigned: Callable[[bytes], Any]) -> None:
    @app.get("/v1/resync/<job_id>/rows")
    def resync_rows(job_id: str) -> tuple[Response, int]:
        denied = unsigned(b"")
        if denied:
            return denied
        job = job_named(store(), job_id)
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
        page = rows_page(store().conn, job["id"], offset=offset, limit=limit, sku=request.args.get("sku", "")[:200],
                         action=action, problem=request.args.get("problem", "")[:60])
        page["rows"] = [reasons.coded(r) for r in page["rows"]]
        return jsonify({"job": status_of(job, settings, store(), clock.now()), **page}), 200

    @app.post("/v1/resync/<job_id>/cancel")
    def resync_cancel(job_id: str) -> tuple[Response, int]:
        denied = unsigned(request.get_data(cache=True))
        if denied:
            return denied
        job = job_named(store(), job_id)
        if job is None:
            return jsonify({"error": "no such resync", "detail": job_id}), 404
        if not ResyncJobs(store()).cancel(job["id"], clock.now()):
            return jsonify({"error": "the resync has already finished", "phase": job["phase"]}), 409
        return jsonify(status_of(ResyncJobs(store()).get(job["id"]) or job, settings, store(), clock.now())), 202
