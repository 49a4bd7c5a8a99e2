"""A stand-in for the sidecar's events endpoint, for tests of what the plugin (or the peer acting
as it) sends: it checks each batch's signature, records it and answers as the sidecar does."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .. import signing
from ..clock import Clock, SystemClock


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
