"""Helpers for tests and benchmarks: run the peer (process or thread) and drive its controls."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

import requests

from .. import signing
from ..clock import Clock, SystemClock
from .server import PeerServer, WooPeer


class WooPeerControl:
    """Client of the peer's /__peer/ API."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        resp = self._session.request(
            method, f"{self.url}/__peer/{route}", json=body, params=params or None, timeout=self.timeout
        )
        if resp.status_code >= 400:
            raise PeerControlError(resp.status_code, resp.json() if resp.content else None)
        return resp.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def seed(
        self,
        simple: int = 0,
        variable: int = 0,
        variations: int = 3,
        stock: int = 10,
        sku_prefix: str = "SKU-",
        products: list[dict[str, Any]] | None = None,
        allow_duplicate_skus: bool = False,
        manage_stock: bool = True,
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            "seed",
            {
                "simple": simple,
                "variable": variable,
                "variations": variations,
                "stock": stock,
                "sku_prefix": sku_prefix,
                "products": products or [],
                "allow_duplicate_skus": allow_duplicate_skus,
                "manage_stock": manage_stock,
            },
        )

    def set_stock(
        self, quantity: int, *, sku: str | None = None, product_id: int | None = None, cause: str = "manual"
    ) -> dict[str, Any]:
        """An admin edit of the stock field (event cause manual unless told)."""
        return self._call("POST", "stock", {"sku": sku, "product_id": product_id, "quantity": quantity, "cause": cause})

    def edit(self, *, sku: str | None = None, product_id: int | None = None, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "edit", {"sku": sku, "product_id": product_id, **fields})

    def rename(
        self, new_sku: str, *, sku: str | None = None, product_id: int | None = None, force: bool = False
    ) -> dict[str, Any]:
        return self._call("POST", "rename", {"sku": sku, "product_id": product_id, "new_sku": new_sku, "force": force})

    def delete(self, *, sku: str | None = None, product_id: int | None = None) -> dict[str, Any]:
        return self._call("POST", "delete", {"sku": sku, "product_id": product_id})

    def place_order(self, items: list[dict[str, Any]], allow_backorder: bool = False) -> dict[str, Any]:
        """items: [{"sku" or "product_id", "quantity"}]."""
        return self._call("POST", "orders", {"items": items, "allow_backorder": allow_backorder})

    def cancel_order(self, order_id: int) -> dict[str, Any]:
        return self._call("POST", f"orders/{order_id}/cancel")

    def refund_order(self, order_id: int) -> dict[str, Any]:
        return self._call("POST", f"orders/{order_id}/refund")

    def product(self, sku: str) -> dict[str, Any] | None:
        """The product with this SKU (the lowest id when duplicated), or None."""
        found = self._call("GET", "products", sku=sku)["products"]
        return found[0] if found else None

    def products_by_sku(self, sku: str) -> list[dict[str, Any]]:
        return self._call("GET", "products", sku=sku)["products"]

    def product_by_id(self, product_id: int) -> dict[str, Any]:
        return self._call("GET", f"products/{product_id}")

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", "log", since=since)["entries"]

    def log_position(self) -> int:
        return int(self._call("GET", "log", since=1 << 62)["last"])

    def clear_log(self) -> None:
        self._call("POST", "log/clear")

    def reset(self) -> None:
        self._call("POST", "reset")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """status, error_rate, fail_next, hang_rate, hang_next, hang_seconds, path_contains, after_commit."""
        return self._call("POST", "faults", faults)

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "faults")

    def events(self, since: int = 0) -> dict[str, Any]:
        return self._call("GET", "events", since=since)

    def retry_events(self) -> None:
        self._call("POST", "events/retry")

    def configure(
        self,
        *,
        sidecar_url: str | None = None,
        shared_secret: str | None = None,
        batch_limit: int | None = None,
        key_permissions: str | None = None,
    ) -> dict[str, Any]:
        """Plugin options and shop settings; key_permissions "read" makes the REST key read-only."""
        body: dict[str, Any] = {}
        if key_permissions is not None:
            body["key_permissions"] = key_permissions
        if batch_limit is not None:
            body["batch_limit"] = batch_limit
        if sidecar_url is not None:
            body["sidecar_url"] = sidecar_url
        if shared_secret is not None:
            body["shared_secret"] = shared_secret
        return self._call("POST", "config", body)

    def wait_events_sent(self, timeout: float = 10.0) -> dict[str, Any]:
        """Poll (bounded) until the plugin outbox is empty; returns the final status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.events()
            if status["pending"] == 0:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"peer still has {status['pending']} event batches pending: {status}")
            time.sleep(0.02)


class PeerControlError(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(f"peer control answered {status}: {payload}")
        self.status = status
        self.payload = payload


class ThreadPeer:
    """An in-process peer; ``.peer`` gives direct access to its state."""

    def __init__(self, server: PeerServer) -> None:
        self.server = server
        self.peer: WooPeer = server.peer
        self.url = server.url
        self.control = WooPeerControl(self.url)

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> ThreadPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(
    *,
    consumer_key: str = "ck_test",
    consumer_secret: str = "cs_test",  # noqa: S107 - a test peer's well-known default
    shared_secret: str | None = None,
    sidecar_url: str | None = None,
    clock: Clock | None = None,
    seed: int = 0,
    accept_basic_auth: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    batch_limit: int = 100,
) -> ThreadPeer:
    peer = WooPeer(
        batch_limit=batch_limit,
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        shared_secret=shared_secret,
        sidecar_url=sidecar_url,
        clock=clock,
        accept_basic_auth=accept_basic_auth,
    )
    server = PeerServer(peer, host, port).start()
    handle = ThreadPeer(server)
    if seed:
        handle.control.seed(simple=seed)
    return handle


class WooPeerProcess:
    """``python -m keycrm_bridge.woo_peer`` as a child process, ready when its JSON line arrives."""

    def __init__(
        self,
        *,
        sidecar_url: str | None = None,
        secret: str | None = None,
        key: str = "ck_test",
        secret_key: str = "cs_test",  # noqa: S107 - a test peer's well-known default
        seed: int = 0,
        port: int = 0,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "keycrm_bridge.woo_peer",
            "--port",
            str(port),
            "--key",
            key,
            "--secret-key",
            secret_key,
            "--seed",
            str(seed),
        ]
        if sidecar_url:
            self.args += ["--sidecar-url", sidecar_url]
        if secret:
            self.args += ["--secret", secret]
        self.args += extra_args or []
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.ready: dict[str, Any] = {}
        self._stderr: IO[str] | None = None

    def start(self) -> WooPeerProcess:
        self._stderr = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=self.env)
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"woo peer did not start: {self.stderr_text()[-2000:]}")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") == "woo_peer_ready":
                self.ready = msg
                self.url = str(msg["url"])
                return self

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()

    @property
    def control(self) -> WooPeerControl:
        return WooPeerControl(self.url)

    def kill(self) -> None:
        """SIGKILL: the shop's server dies without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> WooPeerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()


@dataclass
class ReceivedBatch:
    timestamp: str
    signature: str
    body: bytes
    payload: Any
    signature_ok: bool
    status: int


class EventReceiver:
    """A stand-in for the sidecar's POST /v1/events: checks the signature, records, answers 202.

    ``fail_next`` answers that many batches with ``fail_status`` first (to test the plugin's
    in-order retries). Signature rule: the sidecar's (``signing.verify``), ±300 s.
    """

    def __init__(self, secret: str, *, clock: Clock | None = None, fail_next: int = 0, fail_status: int = 503) -> None:
        self.secret = secret
        self.clock = clock or SystemClock()
        self.fail_next = fail_next
        self.fail_status = fail_status
        self.batches: list[ReceivedBatch] = []
        self.failed: list[ReceivedBatch] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._receive(
                    self.path,
                    self.headers.get("X-Bridge-Timestamp", ""),
                    self.headers.get("X-Bridge-Signature", ""),
                    body,
                )
                if status == 202:  # the sidecar's acknowledgement: this batch's count and body hash
                    count = len(json.loads(body).get("events") or [])
                    answer: dict[str, Any] = {"accepted": count, "batch_sha256": hashlib.sha256(body).hexdigest()}
                else:
                    answer = {"accepted": 0} if status < 400 else {"error": "refused"}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="event-receiver", daemon=True
        )

    def _receive(self, path: str, timestamp: str, signature: str, body: bytes) -> int:
        if path.rstrip("/") != "/v1/events":
            return 404
        ok = signing.verify(self.secret, "POST", "/v1/events", "", timestamp, signature, body, self.clock.now()) is None
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.failed.append(ReceivedBatch(timestamp, signature, body, payload, ok, self.fail_status))
                return self.fail_status
            status = 202 if ok else 401
            self.batches.append(ReceivedBatch(timestamp, signature, body, payload, ok, status))
            return status

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e for b in self.batches if b.status == 202 for e in b.payload["events"]]

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll (bounded) until at least ``count`` events were accepted."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if len(events) >= count:
                return events
            if time.monotonic() > deadline:
                raise TimeoutError(f"received {len(events)} events, expected {count}")
            time.sleep(0.02)

    def start(self) -> EventReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> EventReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
