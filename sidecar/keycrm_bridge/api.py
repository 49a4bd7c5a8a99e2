"""The HTTP layer: check, store durably, answer. It never calls KeyCRM or WooCommerce."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import events, signing
from .clock import Clock, clock_from_spec
from .config import Settings
from .status import build_status
from .store import Store

log = logging.getLogger("keycrm_bridge.api")


def _error(status: int, error: str, detail: Any = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": error}
    if detail is not None:
        body["detail"] = detail
    return jsonify(body), status


def create_app(settings: Settings, clock: Clock | None = None) -> Flask:
    app = Flask("keycrm_bridge")
    app.config["MAX_CONTENT_LENGTH"] = events.MAX_BODY_BYTES
    clock = clock or clock_from_spec(settings.clock_spec)
    local = threading.local()

    def store() -> Store:
        # One connection per thread and per gunicorn worker (created after the fork).
        s = getattr(local, "store", None)
        if s is None:
            s = local.store = Store(settings.database_path)
        return s

    store()  # fail fast on an unusable database path
    app.extensions["keycrm_bridge"] = {"settings": settings, "clock": clock, "store": store}

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]

    def _unsigned(body: bytes) -> tuple[Response, int] | None:
        reason = signing.verify(
            settings.shared_secret,
            request.headers.get(signing.TIMESTAMP_HEADER),
            request.headers.get(signing.SIGNATURE_HEADER),
            body,
            clock.now(),
        )
        if reason:
            log.warning("rejected request", extra={"reason": reason, "path": request.path,
                                                   "request_id": g.request_id})
            return _error(401, "unauthorized", reason)
        return None

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        names = {413: "payload too large", 404: "not found", 405: "method not allowed", 400: "bad request"}
        return _error(code, names.get(code, exc.name.lower()), exc.description if code != 413 else
                      f"the body may hold at most {events.MAX_BODY_BYTES} bytes")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error", extra={"path": request.path, "request_id": g.get("request_id")})
        return _error(500, "internal error", "see the sidecar log")

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        store().conn.execute("SELECT 1")
        return jsonify({"ok": True}), 200

    @app.post("/v1/events")
    def post_events() -> tuple[Response, int]:
        length = request.content_length
        if length is not None and length > events.MAX_BODY_BYTES:
            return _error(413, "payload too large", f"the body may hold at most {events.MAX_BODY_BYTES} bytes")
        body = request.get_data(cache=True)
        if len(body) > events.MAX_BODY_BYTES:
            return _error(413, "payload too large", f"the body may hold at most {events.MAX_BODY_BYTES} bytes")
        denied = _unsigned(body)
        if denied:
            return denied
        try:
            batch = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "body is not JSON")
        if isinstance(batch, dict) and isinstance(batch.get("events"), list) \
                and len(batch["events"]) > events.MAX_EVENTS:
            return _error(413, "too many events", f"a batch may hold at most {events.MAX_EVENTS} events")
        problems = events.schema_errors(batch)
        if problems:
            return _error(422, "batch does not match the event schema", problems)
        count = len(batch["events"])
        store().append_batch(body.decode("utf-8"), count, clock.now())
        log.debug("batch accepted", extra={"events": count, "request_id": g.request_id,
                                           "skus": sorted({e["sku"] for e in batch["events"]})[:20]})
        return jsonify({"accepted": count}), 202

    @app.get("/v1/status")
    def status() -> tuple[Response, int]:
        denied = _unsigned(b"")
        if denied:
            return denied
        return jsonify(build_status(store(), settings, clock.now())), 200

    return app
