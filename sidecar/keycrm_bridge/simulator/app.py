"""The simulator's Flask app: KeyCRM's API under ``/v1`` and the control API under ``/__sim``.

Every API request goes through one pipeline, in this order:

1. route lookup in the spec (unknown path 404, wrong method 405);
2. ``down`` fault -> 503;
3. bearer key (``options.api_key``) -> 401;
4. rate limit (sliding window on the injected clock) -> 429 + ``Retry-After``; rejected requests
   do not use up the budget, everything admitted does (errors included);
5. injected faults: added latency (clock seconds), a hang (real seconds, then 504), a 5xx;
6. spec validation -> 422 ``{"message", "errors": [...]}``;
7. the operation's handler.

Each API request lands in the request log with its final status. The control API is neither rate
limited nor logged.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from keycrm_bridge.clock import Clock
from keycrm_bridge.simulator.api_routes import HANDLERS, Call
from keycrm_bridge.simulator.faults import Faults
from keycrm_bridge.simulator.ratelimit import SlidingWindowLimiter
from keycrm_bridge.simulator.requestlog import RequestLog
from keycrm_bridge.simulator.state import SimError, SimState
from keycrm_bridge.simulator.validation import SpecValidator, get_validator
from keycrm_bridge.simulator.webhooks import WebhookConfig, WebhookDispatcher

log = logging.getLogger("keycrm_bridge.simulator")

API_PREFIX = "/v1"
EXTENSION_KEY = "keycrm_simulator"


@dataclass
class SimulatorOptions:
    api_key: str = "sim-key"
    rate_limit: int = 60  # requests per rate_window; 0 disables the limit
    rate_window: float = 60.0
    webhook_url: str | None = None
    webhook_warehouses: list[int] | None = None  # None: sums over all warehouses
    webhook_delay: float = 0.0
    latency: float = 0.0  # clock seconds every admitted API request takes (a real KeyCRM answers in ~150 ms)
    extra: dict[str, Any] = field(default_factory=dict)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json", headers=headers
    )


class Simulator:
    """Everything a running simulator holds besides the catalogue: budget, faults, log, webhooks."""

    def __init__(
        self, state: SimState, clock: Clock, options: SimulatorOptions, validator: SpecValidator | None = None
    ) -> None:
        self.state = state
        self.clock = clock
        self.options = options
        self.validator = validator or get_validator()
        self.limiter = SlidingWindowLimiter(clock, options.rate_limit, options.rate_window)
        self.faults = Faults()
        self.log = RequestLog()
        self.webhooks = WebhookDispatcher(
            clock,
            WebhookConfig(
                url=options.webhook_url, warehouses=options.webhook_warehouses, delay=options.webhook_delay
            ),
        )
        # Set on stop/reset so that requests held by a hang fault let go at once.
        self.release = threading.Event()
        state.add_stock_listener(self._on_stock_change)

    def _on_stock_change(self, offer_ids: list[int]) -> None:
        cfg = self.webhooks.config
        if cfg.enabled and cfg.url:
            self.webhooks.submit(self.state.webhook_rows(offer_ids, cfg.warehouses))

    def reset(self) -> None:
        """Empty catalogue, orders, log, faults, rate window and queued webhooks; keep configuration."""
        self.release.set()
        self.state.clear()
        self.faults.clear()
        self.log.clear()
        self.limiter.reset()
        self.webhooks.drop_pending()
        self.release = threading.Event()

    def close(self) -> None:
        self.release.set()
        self.webhooks.stop()

    # --------------------------------------------------------------- pipeline
    def handle_api(self, subpath: str) -> Response:
        path = "/" + subpath
        raw = request.get_data(cache=True)
        entry: dict[str, Any] = {
            "time": self.clock.now(),
            "method": request.method,
            "path": path,
            "query": {k: (v[0] if len(v) == 1 else v) for k, v in request.args.to_dict(flat=False).items()},
        }
        status, body, headers = self._answer(path, raw, entry)
        entry["status"] = status
        self.log.append(entry, raw)
        return json_response(status, body, headers)

    def _answer(self, path: str, raw: bytes, entry: dict[str, Any]) -> tuple[int, Any, dict[str, str] | None]:
        op, _params, known = self.validator.match(request.method, path)
        if not known:
            return 404, {"message": "Not found."}, None
        if op is None:
            return 405, {"message": "Method not allowed."}, None
        if self.faults.is_down():
            entry["fault"] = "down"
            return 503, {"message": "Service Unavailable"}, None
        if request.headers.get("Authorization", "") != f"Bearer {self.options.api_key}":
            return 401, {"message": "Unauthenticated."}, None
        retry_after = self.limiter.try_acquire()
        if retry_after is not None:
            entry["retry_after"] = retry_after
            return (
                429,
                {"message": "Too Many Attempts.", "retry_after": retry_after},
                {"Retry-After": str(retry_after)},
            )
        decision = self.faults.decide(request.method, path)
        if self.options.latency + decision.latency > 0:
            self.clock.sleep(self.options.latency + decision.latency)
        if decision.hang_seconds > 0:
            entry["fault"] = "hang"
            self.release.wait(decision.hang_seconds)
            return 504, {"message": "Gateway Timeout"}, None
        if decision.status is not None:
            entry["fault"] = "error"
            return decision.status, {"message": "Server Error"}, None
        v = self.validator.validate(
            request.method, path, request.args, request.headers, raw, request.content_type
        )
        if not v.ok:
            entry["errors"] = v.errors
            return v.status, {"message": v.message, "errors": v.errors}, None
        handler = HANDLERS.get(v.operation_id or "")
        if handler is None:
            return 501, {"message": f"{v.operation_id} is in the spec but not simulated."}, None
        try:
            status, body, extra = handler(Call(self.state, v, request.base_url))
        except SimError as exc:
            entry["errors"] = [{"message": str(exc)}]
            return exc.status, {"message": str(exc), "errors": [{"message": str(exc)}]}, None
        entry.update(extra)
        return status, body, None


def create_app(state: SimState, clock: Clock, options: SimulatorOptions | None = None) -> Flask:
    """Build the simulator app. ``app.extensions["keycrm_simulator"]`` is the :class:`Simulator`."""
    from keycrm_bridge.simulator.control import control_blueprint

    sim = Simulator(state, clock, options or SimulatorOptions())
    app = Flask("keycrm_simulator")
    app.extensions[EXTENSION_KEY] = sim

    @app.route(f"{API_PREFIX}/<path:subpath>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def api(subpath: str) -> Response:
        return sim.handle_api(subpath)

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        return json_response(404, {"message": "Not found."})

    @app.errorhandler(405)
    def not_allowed(_exc: Exception) -> Response:
        return json_response(405, {"message": "Method not allowed."})

    @app.errorhandler(Exception)
    def crashed(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return json_response(exc.code or 500, {"message": exc.description})
        log.exception("simulator error", extra={"path": request.path})
        return json_response(500, {"message": f"simulator error: {type(exc).__name__}: {exc}"})

    app.register_blueprint(control_blueprint(sim), url_prefix="/__sim")
    return app
