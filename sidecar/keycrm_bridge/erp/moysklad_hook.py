"""MoySklad's stock webhook: stored by ``requestId`` and answered at once (MoySklad waits 1,500 ms).

It is a doorbell: the worker reads its ``reportUrl`` with our token. The token in our URL is the
only secret (MoySklad does not sign webhooks), so a wrong one looks like a missing route.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..clock import Clock
from ..config import Settings
from ..store import Store

MAX_BODY = 64 * 1024


def make_moysklad_blueprint(settings: Settings, clock: Clock, store: Callable[[], Store]) -> Blueprint:
    assert settings.erp is not None
    secret = settings.erp.moysklad_webhook_token
    bp = Blueprint("erp_moysklad", __name__)

    def err(status: int, text: str) -> tuple[Response, int]:
        return jsonify({"error": text}), status

    @bp.post("/v1/erp/moysklad/webhook/<token>")
    def webhook(token: str) -> tuple[Response, int]:
        if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
            return err(404, "not found")
        if (request.content_length or 0) > MAX_BODY:
            return err(413, "payload too large")
        request_id = request.args.get("requestId", "")
        if not request_id or len(request_id) > 100:
            return err(400, "requestId is missing")
        try:
            body: Any = json.loads(request.get_data(cache=False)[:MAX_BODY])
        except (ValueError, UnicodeDecodeError):
            return err(400, "body is not JSON")
        url = body.get("reportUrl") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
            return err(422, "not a MoySklad stock webhook (reportUrl expected)")
        c = store().conn
        cur = c.execute("INSERT OR IGNORE INTO moysklad_webhooks (request_id, received_at, report_url)"
                        " VALUES (?, ?, ?)", (request_id, clock.now(), url))
        return jsonify({"accepted": True, "duplicate": cur.rowcount == 0}), 200

    return bp
