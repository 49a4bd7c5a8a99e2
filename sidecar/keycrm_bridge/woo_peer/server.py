"""The peer itself: a WSGI app serving wc/v3 under /wp-json/wc/v3/ and test controls under /__peer/."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from ..clock import Clock, SystemClock
from .auth import MARKER_PARAM, AuthError, OAuthVerifier, marker_state
from .catalog import Catalog
from .plugin import EventFactory, EventSender
from .rest import BATCH_LIMIT, RestAnswer, RestCall, dispatch, permission_error, wc_error
from .stock_route import STOCK_PATH, handle_stock

log = logging.getLogger("keycrm_bridge.woo_peer")

REST_PREFIX = "/wp-json/wc/v3/"
CONTROL_PREFIX = "/__peer/"


@dataclass
class Faults:
    """Injected trouble for REST calls (never for /__peer/)."""

    status: int = 503
    error_rate: float = 0.0
    fail_next: int = 0
    hang_rate: float = 0.0
    hang_next: int = 0
    hang_seconds: float = 0.0
    path_contains: str = ""
    after_commit: bool = False  # apply the write, then answer the error (a lost response)
    retry_after: float | None = None  # sent as Retry-After with injected errors (e.g. 429)


@dataclass(frozen=True)
class Latency:
    """How long a real shop takes to answer, in clock seconds (measured on a 2-core WordPress host:
    ~120 ms a write request, +36 ms per batch item, ~60 ms a read page). Zero by default: the
    tests want a fast peer; the benches turn it on."""

    write_s: float = 0.0
    item_s: float = 0.0
    read_s: float = 0.0

    def of(self, method: str, body: Any) -> float:
        if method in ("GET", "HEAD", "OPTIONS"):
            return self.read_s
        items = 0
        if isinstance(body, dict):
            items = sum(len(v) for k in ("create", "update", "delete") if isinstance(v := body.get(k), list))
        return self.write_s + self.item_s * items


class RequestLog:
    def __init__(self, cap: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=cap)
        self._seq = 0
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)

    def since(self, seq: int) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            return [e for e in self._entries if e["seq"] > seq], self._seq

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class WooPeer:
    """State and behaviour of one fake shop; ``wsgi_app`` serves it."""

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        shared_secret: str | None = None,
        sidecar_url: str | None = None,
        clock: Clock | None = None,
        home_url: str = "",
        accept_basic_auth: bool = False,
        log_cap: int = 200_000,
        seed: int = 0,
        batch_limit: int = BATCH_LIMIT,
        latency: Latency | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.latency = latency or Latency()
        # OAuth timestamps come from the client's real time (the package calls time()), not from
        # a test clock, so the OAuth window is checked against the wall clock.
        self.wall_clock: Clock = SystemClock()
        self.home_url = home_url.rstrip("/")
        self.accept_basic_auth = accept_basic_auth
        # A shop can lower the batch limit with the woocommerce_rest_batch_items_limit filter.
        self.batch_limit = batch_limit
        self.key_permissions = "read_write"  # or "read": a key that may not write
        self.catalog = Catalog(self.clock.now)
        self.verifier = OAuthVerifier(consumer_key, consumer_secret)
        self.events = EventFactory(self.clock.now)
        self.sender = EventSender(self.clock.now, site=self.home_url)
        self.sender.sidecar_url = sidecar_url
        self.sender.shared_secret = shared_secret
        self.requests = RequestLog(log_cap)
        self.faults = Faults()
        self._faults_lock = threading.Lock()
        self._rng = random.Random(seed)
        self._release = threading.Event()  # set to end every injected hang at once
        self.orders: dict[int, dict[str, Any]] = {}
        self._next_order = 1000
        self.orders_lock = threading.Lock()

    @property
    def shared_secret(self) -> str | None:
        return self.sender.shared_secret

    def set_home_url(self, url: str) -> None:
        self.home_url = url.rstrip("/")
        self.sender.site = self.home_url

    def next_order_id(self) -> int:
        with self.orders_lock:
            self._next_order += 1
            return self._next_order

    # -- faults ------------------------------------------------------------------------------
    def set_faults(self, **kw: Any) -> Faults:
        with self._faults_lock:
            self.faults = Faults(**kw)
            self._release.clear()
            return self.faults

    def clear_faults(self) -> None:
        with self._faults_lock:
            self.faults = Faults()
        self._release.set()

    def _draw_faults(self, path: str) -> tuple[float, int | None, Faults]:
        """(hang seconds, error status or None, the fault settings) for this request."""
        with self._faults_lock:
            f = self.faults
            if f.path_contains and f.path_contains not in path:
                return 0.0, None, f
            hang = 0.0
            if f.hang_next > 0:
                f.hang_next -= 1
                hang = f.hang_seconds
            elif f.hang_rate and self._rng.random() < f.hang_rate:
                hang = f.hang_seconds
            status: int | None = None
            if f.fail_next > 0:
                f.fail_next -= 1
                status = f.status
            elif f.error_rate and self._rng.random() < f.error_rate:
                status = f.status
            return hang, status, f

    # -- WSGI --------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path
        if path.startswith(CONTROL_PREFIX):
            from .control import handle_control

            response = handle_control(self, request, path[len(CONTROL_PREFIX) :])
        elif path.startswith(REST_PREFIX):
            response = self._handle_rest(request, path)
        elif path.rstrip("/") == STOCK_PATH:
            response = handle_stock(self, request)
        else:
            response = _json_response(
                wc_error("rest_no_route", "No route was found matching the URL and request method.", 404)
            )
        return response(environ, start_response)

    def _authenticate(self, request: Request, path: str, query: dict[str, str]) -> RestAnswer | None:
        denied = self._authenticate_key(request, path, query)
        if denied is None and request.method not in ("GET", "HEAD", "OPTIONS") and self.key_permissions == "read":
            return wc_error(
                "woocommerce_rest_authentication_error", "The API key provided does not have write permissions.", 401
            )
        return denied

    def _authenticate_key(self, request: Request, path: str, query: dict[str, str]) -> RestAnswer | None:
        if "oauth_signature" in query or "oauth_consumer_key" in query:
            try:
                self.verifier.verify(request.method, self.home_url + path, query, self.wall_clock.now())
                return None
            except AuthError as exc:
                return wc_error(exc.code, exc.message, exc.status)
        header = request.headers.get("Authorization", "")
        if self.accept_basic_auth and header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                self.verifier.verify_basic(user, password)
                return None
            except (binascii.Error, UnicodeDecodeError):
                return wc_error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
            except AuthError as exc:
                return wc_error(exc.code, exc.message, exc.status)
        # Over plain HTTP WooCommerce ignores Basic auth: the request is simply not logged in.
        return permission_error(request.method, path[len(REST_PREFIX) :])

    def _handle_rest(self, request: Request, path: str) -> Response:
        # PHP's $_GET: a repeated key keeps its last value (the package sends its params twice).
        query = dict(parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True))
        raw = request.get_data(cache=True)
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        marker = marker_state(query.get(MARKER_PARAM), self.shared_secret, self.clock.now())
        call = RestCall(
            method=request.method,
            route=path[len(REST_PREFIX) :],
            query=query,
            body=body,
            cause="sidecar" if marker == "valid" else "rest",
        )
        hang, fault_status, faults = self._draw_faults(path)
        if hang > 0:
            self._release.wait(hang)
        answer: RestAnswer
        if fault_status is not None and not faults.after_commit:
            answer = wc_error("internal_server_error", "Injected fault.", fault_status)
        else:
            denied = self._authenticate(request, path, query)
            if denied is not None:
                answer = denied
            elif bad_json:
                answer = wc_error("rest_invalid_json", "Invalid JSON body passed.", 400)
            elif request.method == "GET":
                answer = dispatch(self, call)
            else:
                # Writes commit and queue their events under one lock, so batches leave in commit
                # order (the plugin's outbox rows are numbered at hook time).
                with self.catalog.lock:
                    answer = dispatch(self, call)
                    self.sender.enqueue(call.events)
            if fault_status is not None:
                answer = wc_error("internal_server_error", "Injected fault after commit.", fault_status)
        if fault_status is not None and faults.retry_after is not None:
            answer.headers["Retry-After"] = str(faults.retry_after)
        # Outside the catalogue lock: PHP-FPM serves several requests at once.
        self.clock.sleep(self.latency.of(request.method, body))
        self.requests.add(
            {
                "at": self.clock.now(),
                "method": request.method,
                "path": path,
                "query": {k: v for k, v in query.items() if not k.startswith("oauth_")},
                "body": body,
                "status": answer.status,
                "marked": marker == "valid",
                "marker": marker,
                "user_agent": request.headers.get("User-Agent", ""),
                "events": len(call.events),
            }
        )
        return _json_response(answer)

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.catalog.clear()
        self.requests.clear()
        self.clear_faults()
        self.sender.clear()
        with self.orders_lock:
            self.orders.clear()

    def close(self) -> None:
        self._release.set()
        self.sender.stop()

    def faults_dict(self) -> dict[str, Any]:
        with self._faults_lock:
            return asdict(self.faults)


def _json_response(answer: RestAnswer) -> Response:
    return Response(
        json.dumps(answer.payload, ensure_ascii=False),
        status=answer.status,
        headers=answer.headers,
        content_type="application/json; charset=UTF-8",
    )


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without its per-request access log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class PeerServer:
    """A WooPeer bound to a socket and served by a threaded werkzeug server."""

    def __init__(self, peer: WooPeer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.peer = peer
        self.server: BaseWSGIServer = make_server(
            host, port, peer.wsgi_app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}"
        if not peer.home_url:
            peer.set_home_url(self.url)
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        # A short poll interval keeps shutdown() quick (tests start and stop many peers).
        self.server.serve_forever(poll_interval=0.05)

    def start(self) -> PeerServer:
        self._thread = threading.Thread(target=self.serve_forever, name="woo-peer-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.peer.close()
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PeerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
