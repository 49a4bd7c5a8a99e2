"""A scripted local KeyCRM for the client's tests (its ``stub`` and ``budget`` fixtures are in
conftest.py).

The stub answers whatever a test scripts (statuses, Retry-After, pages of 50, a hang past the
client's timeout) and checks every request the client sends against KeyCRM's published OpenAPI
document (through the simulator's spec validator), so "matches the spec" is tested on every call.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from keycrm_bridge.budget import RateBudget
from keycrm_bridge.clock import FakeClock
from keycrm_bridge.keycrm_client import KeyCRMClient
from keycrm_bridge.simulator.validation import get_validator

API_KEY = "sk-test-SECRET-9f1c2e"
T_SIM = 1_800_000_000.0

Handler = Callable[[Request], Response]


def json_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    return Response(
        "" if body is None else json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


@dataclass
class Seen:
    method: str
    path: str  # relative to /v1
    args: dict[str, str]
    headers: dict[str, str]
    body: Any
    url: str
    spec_status: int  # 0 when the request is valid per KeyCRM's OpenAPI document
    spec_errors: list[dict[str, Any]] = field(default_factory=list)


class StubKeyCRM:
    """A tiny threaded HTTP server; ``routes[(METHOD, path)]`` is a handler or a list of answers."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler | list[Response]] = {}
        self.seen: list[Seen] = []
        self.release = threading.Event()  # lets a hanging handler go at teardown
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, method: str, path: str, answers: Handler | list[Response]) -> None:
        self.routes[(method, path)] = answers

    def calls(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path.removeprefix("/v1")
        raw = request.get_data()
        result = get_validator().validate(
            request.method, path, request.args, request.headers, raw or None, request.content_type
        )
        seen = Seen(
            method=request.method,
            path=path,
            args=dict(request.args),
            headers=dict(request.headers),
            body=json.loads(raw) if raw else None,
            url=request.url,
            spec_status=result.status,
            spec_errors=result.errors,
        )
        with self._lock:
            self.seen.append(seen)
            answer = self.routes.get((request.method, path))
            if isinstance(answer, list):
                response = answer.pop(0) if answer else json_response(500, {"message": "script exhausted"})
            else:
                response = None
        if answer is None:
            response = json_response(404, {"message": "Not found."})
        elif callable(answer):
            response = answer(request)
        assert response is not None
        return response(environ, start_response)


class MaxRandom(random.Random):
    """Full jitter at its ceiling, so expected backoff sleeps are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


def make_client(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock, **kw: Any) -> KeyCRMClient:
    kw.setdefault("rng", MaxRandom())
    return KeyCRMClient(stub.base_url, API_KEY, budget, clock, **kw)


def paged(rows: list[dict[str, Any]], *, meta: str = "full") -> Handler:
    """Serve ``rows`` in pages like KeyCRM (``meta``: full | next_only | none)."""

    def handler(request: Request) -> Response:
        limit = int(request.args.get("limit", 15))
        page = int(request.args.get("page", 1))
        data = rows[(page - 1) * limit : page * limit]
        last_page = max(1, -(-len(rows) // limit))
        body: dict[str, Any] = {"data": data}
        if meta in ("full", "next_only"):
            body["next_page_url"] = f"{request.base_url}?page={page + 1}" if page < last_page else None
        if meta == "full":
            body.update(total=len(rows), current_page=page, per_page=limit, last_page=last_page)
        return json_response(200, body)

    return handler


def stock_rows(n: int, prefix: str = "SKU-") -> list[dict[str, Any]]:
    return [
        {
            "id": i + 1,
            "sku": f"{prefix}{i:04d}",
            "quantity": 10,
            "reserve": 1,
            "warehouse": [{"id": 1, "name": "Main", "quantity": 10, "reserve": 1}],
        }
        for i in range(n)
    ]
