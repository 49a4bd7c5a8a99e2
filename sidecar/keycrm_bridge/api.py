"""The HTTP layer: check, store durably, answer. It never calls KeyCRM or WooCommerce."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sqlite3
import threading
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import __version__, door, events, health, signing
from .clock import Clock, clock_from_spec
from .config import Settings
from .explain import explain
from .inbox import inbox_path
from .ledger import Ledger
from .metrics import register_metrics
from .quarantine import Quarantine
from .resync import register_resync_routes
from .resync_review import register_review_routes
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
    app.config["KCB_DISK_PROBE"] = health.free_bytes  # an input: tests may answer "full"
    clock = clock or clock_from_spec(settings.clock_spec)
    stores: dict[tuple[int, int], Store] = {}

    def store() -> Store:
        # One connection per OS thread and per gunicorn worker (created after the fork). The greenlets
        # of a gevent worker share their thread's: none yields inside a SQLite call or transaction.
        key = (os.getpid(), threading.get_native_id())
        s = stores.get(key)
        if s is None:
            s = stores[key] = Store(settings.database_path, durable=True)
        return s

    started_integrity = (health.integrity(settings.database_path)
                         or health.integrity(inbox_path(settings.database_path)))
    try:
        store()  # a damaged or full database keeps the process alive (liveness) but not ready
    except sqlite3.DatabaseError as exc:
        log.error("the database cannot be opened; /readyz says why", extra={"error": str(exc)[:300]})
        started_integrity = started_integrity or str(exc)
    register_metrics(app, store, settings, clock)
    app.extensions["keycrm_bridge"] = {"settings": settings, "clock": clock, "store": store}

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]

    last_seen = {"ok": 0.0, "fail": 0.0, "legacy": 0.0}

    def _remember(ok: bool, reason: str = "") -> None:
        # What doctor and the status page need to tell "wrong shared secret" from "no plugin yet";
        # written at most every 10 s per process so it costs nothing on the ingest path.
        now = clock.now()
        key = "ok" if ok else "fail"
        if now - last_seen[key] < 10:
            return
        last_seen[key] = now
        store().set_meta("last_plugin_request", {"at": now, "ok": ok, "reason": reason})

    def _unsigned(body: bytes) -> tuple[Response, int] | None:
        reason = signing.verify(
            settings.shared_secret,
            request.method,
            request.path,
            request.query_string.decode("utf-8", "replace"),
            request.headers.get(signing.TIMESTAMP_HEADER),
            request.headers.get(signing.SIGNATURE_HEADER),
            body,
            clock.now(),
        )
        if reason:
            log.warning("rejected request", extra={"reason": reason, "path": _route(),
                                                   "request_id": g.request_id})
            if reason != "missing signature headers":
                _remember(False, reason)
            return _error(401, "unauthorized", reason)
        _remember(True)
        legacy = (request.headers.get(signing.SIGNATURE_HEADER) or "").strip().startswith(signing.LEGACY_PREFIX)
        if legacy and clock.now() - last_seen["legacy"] >= 10:
            last_seen["legacy"] = clock.now()
            log.warning("old signature form accepted on /v1/events: upgrade the plugin",
                        extra={"request_id": g.request_id})
        return None

    def _capped_body() -> bytes | None:
        """The body, read up to the limit before anything else looks at it (None: over the limit).

        A chunked body has no length up front: reading with a cap is what answers it 413 rather than
        verifying a signature over a truncated copy."""
        cap = events.MAX_BODY_BYTES
        if request.content_length is not None and request.content_length > cap:
            return None
        parts, size = [], 0
        try:
            while size <= cap:
                part = request.stream.read(min(65536, cap + 1 - size))
                if not part:
                    break
                parts.append(part)
                size += len(part)
        except RequestEntityTooLarge:
            return None
        return None if size > cap else b"".join(parts)

    def _too_large() -> tuple[Response, int]:
        return _error(413, "payload too large", f"the body may hold at most {events.MAX_BODY_BYTES} bytes")

    def _route() -> str:
        # The rule, not the path: the webhook's path holds its token, which no log line may show.
        return request.url_rule.rule if request.url_rule is not None else "(no route)"

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        names = {413: "payload too large", 404: "not found", 405: "method not allowed", 400: "bad request"}
        return _error(code, names.get(code, exc.name.lower()), exc.description if code != 413 else
                      f"the body may hold at most {events.MAX_BODY_BYTES} bytes")

    @app.errorhandler(sqlite3.DatabaseError)
    def _database(exc: sqlite3.DatabaseError) -> tuple[Response, int]:
        # Not our bug and not the caller's: the file is damaged, the disk is full or it is locked too long.
        log.error("database error", extra={"path": request.path, "error": str(exc)[:300]})
        return _error(503, "database unavailable", "see GET /readyz and `keycrm-bridge doctor`")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error", extra={"path": _route(), "request_id": g.get("request_id")})
        return _error(500, "internal error", "see the sidecar log")

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Liveness: this process answers. Whether the bridge can do its work is /readyz."""
        return jsonify({"ok": True}), 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        r = health.readiness(settings, store, started_integrity, clock.now(), app.config["KCB_DISK_PROBE"])
        return jsonify({"ready": r.ready, "checks": r.checks}), 200 if r.ready else 503

    @app.post("/v1/events")
    def post_events() -> tuple[Response, int]:
        body = _capped_body()
        if body is None:
            return _too_large()
        denied = _unsigned(body)
        if denied:
            return denied
        try:
            batch = door.loads(body)
        except door.Refused as exc:
            return _error(400, "body is not JSON", str(exc))
        if isinstance(batch, dict) and isinstance(batch.get("events"), list) \
                and len(batch["events"]) > events.MAX_EVENTS:
            return _error(413, "too many events", f"a batch may hold at most {events.MAX_EVENTS} events")
        problems = events.schema_errors(batch) or events.future_events(batch, clock.now())
        if problems:
            return _error(422, "batch does not match the event schema", problems)
        count = len(batch["events"])
        # A replay (or the plugin's resend after a lost answer) gets the same answer and is stored once.
        store().append_batch(body.decode("utf-8"), count, clock.now())
        log.debug("batch accepted", extra={"events": count, "request_id": g.request_id,
                                           "skus": sorted({e["sku"] for e in batch["events"]})[:20]})
        # The plugin deletes events only on an answer naming exactly its batch: count and body hash.
        return jsonify({"accepted": count, "batch_sha256": hashlib.sha256(body).hexdigest()}), 202

    @app.post("/v1/ping")
    def ping() -> tuple[Response, int]:
        """The plugin's connection test: proves the URL, the secret and the clocks agree."""
        denied = _unsigned(request.get_data(cache=True))
        if denied:
            return denied
        return jsonify({"ok": True, "mode": settings.sync_mode, "version": __version__}), 200

    @app.post("/v1/keycrm/webhook/<token>")
    def keycrm_webhook(token: str) -> tuple[Response, int]:
        # KeyCRM does not sign webhooks: the token in the URL is the secret. A wrong one looks
        # exactly like a missing route, so the endpoint cannot be probed.
        if not settings.webhook_token or not hmac.compare_digest(token.encode(), settings.webhook_token.encode()):
            return _error(404, "not found")
        raw = _capped_body()
        if raw is None:
            return _too_large()
        try:
            body = door.loads(raw)
        except door.Refused as exc:
            return _error(400, "body is not JSON", str(exc))
        rows, why = door.webhook_rows(body)
        if rows is None:
            return _error(422, "not a KeyCRM stock webhook",
                          f'expected [{{"offer_id", "sku", "in_stock", "in_reserve"}}, …]: {why}')
        store().append_webhook(rows, clock.now())
        return jsonify({"accepted": len(rows)}), 202

    @app.get("/v1/skus/<path:sku>")
    def sku_detail(sku: str) -> tuple[Response, int]:
        denied = _unsigned(b"")
        if denied:
            return denied
        return jsonify(explain(store(), sku)), 200

    @app.get("/v1/guards")
    def guards() -> tuple[Response, int]:
        denied = _unsigned(b"")
        if denied:
            return denied
        return jsonify({"held": Ledger(store()).holds("held")}), 200

    @app.post("/v1/guards/<int:hold_id>/<action>")
    def guard_action(hold_id: int, action: str) -> tuple[Response, int]:
        denied = _unsigned(request.get_data(cache=True))
        if denied:
            return denied
        if action not in ("confirm", "dismiss"):
            return _error(404, "not found", "use /confirm or /dismiss")
        status = "confirmed" if action == "confirm" else "dismissed"
        if not Ledger(store()).set_hold_status(hold_id, status, clock.now()):
            return _error(404, "no such held cycle", f"nothing is held under id {hold_id}")
        return jsonify({"id": hold_id, "status": status}), 202

    @app.post("/v1/quarantine/<int:item_id>/<action>")
    def quarantine_action(item_id: int, action: str) -> tuple[Response, int]:
        """The plugin page's Retry / Drop of one set-aside item (as `keycrm-bridge quarantine retry|drop`)."""
        denied = _unsigned(request.get_data(cache=True))
        if denied:
            return denied
        if action not in ("retry", "drop"):
            return _error(404, "not found", "use /retry or /drop")
        q = Quarantine(store(), clock)
        done = q.request_retry(item_id) if action == "retry" else q.drop(item_id) is not None
        if not done:
            return _error(404, "nothing set aside under this id", f"no item {item_id}")
        return jsonify({"id": item_id, "status": "retry" if action == "retry" else "dropped"}), 202

    @app.get("/v1/status")
    def status() -> tuple[Response, int]:
        denied = _unsigned(b"")
        if denied:
            return denied
        return jsonify(build_status(store(), settings, clock.now())), 200

    register_resync_routes(app, settings, clock, store, _unsigned)
    register_review_routes(app, settings, clock, store, _unsigned)
    if settings.erp is not None:
        from .erp.routes import register_erp_routes

        register_erp_routes(app, settings, clock, store)
    return app
