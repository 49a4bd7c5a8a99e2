"""A small live bridge for the door's tests and the hostile bench: the KeyCRM simulator, gunicorn and
the worker as real processes, and the one liveness check every hostile test ends with (a good change
sent afterwards reaches KeyCRM within seconds)."""

from __future__ import annotations

import itertools
import json
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import requests

from keycrm_bridge import signing
from keycrm_bridge.inbox import inbox_path
from keycrm_bridge.simulator.testing import SimulatorProcess

from bridge import SECRET, Web, Worker, bridge_env, event, post_events, wait_until

TOKEN = "door-webhook-token-0123456789abcdef"
LIVE_SKU = "LIVE-1"


class DoorBridge:
    """KeyCRM simulator + gunicorn + worker on one SQLite file (``woocommerce`` mode by default)."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp, self.db = tmp, tmp / "db.sqlite3"
        self.sim = SimulatorProcess().start()
        self.sim.control.seed(offers=[{"sku": LIVE_SKU, "quantity": 10}])
        self.env = bridge_env(self.db, self.sim.api_url, KEYCRM_WEBHOOK_TOKEN=TOKEN, PUSH_DEBOUNCE_S="0.05",
                              PUSH_MAX_WAIT_S="0.2", LOG_LEVEL="DEBUG", **env)
        self.web = Web(self.env, tmp / "web.log").start()
        self.worker = Worker(self.env, tmp / "worker.log").start()
        self._qty = itertools.count(11)

    @property
    def url(self) -> str:
        return self.web.url

    def stop(self) -> None:
        self.worker.stop()
        self.web.stop()
        self.sim.stop()

    def signed(self, method: str, target: str, body: bytes = b"", **headers: str) -> requests.Response:
        h = {**signing.signed_headers(SECRET, method, target, body, time.time()), **headers}
        return requests.request(method, self.url + target, data=body or None, headers=h, timeout=30)

    def webhook(self, body: bytes, token: str = TOKEN) -> requests.Response:
        return requests.post(f"{self.url}/v1/keycrm/webhook/{token}", data=body,
                             headers={"Content-Type": "application/json"}, timeout=30)

    def rows(self) -> dict[str, int]:
        """Rows ever stored by the door (batch inbox, webhook inbox): their AUTOINCREMENT counters, which
        the worker's draining does not lower."""
        seq: dict[str, int] = {}
        for path in (inbox_path(str(self.db)), str(self.db)):
            with sqlite3.connect(path) as c:
                seq |= dict(c.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
        return {t: int(seq.get(t, 0)) for t in ("inbox", "keycrm_inbox")}

    def good_change_arrives(self, timeout: float = 10.0) -> float:
        """Send a good stock change now; return how long it took to reach KeyCRM (raises after ``timeout``)."""
        qty = next(self._qty)
        t0 = time.monotonic()
        r = post_events(self.url, [event(LIVE_SKU, qty)])
        assert r.status_code == 202, r.text
        wait_until(lambda: self.sim.control.sellable(LIVE_SKU) == qty, timeout=timeout,
                   what=f"{LIVE_SKU} = {qty} in KeyCRM")
        return time.monotonic() - t0

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.tmp / "web.log", self.tmp / "worker.log"))


def batch(*events: dict[str, Any]) -> bytes:
    return json.dumps({"site": "https://shop.test", "events": list(events)}).encode()


class Slowloris:
    """``n`` connections that send a request's headers a few bytes at a time and never finish them."""

    def __init__(self, url: str, n: int = 50, path: str = "/v1/keycrm/webhook/x") -> None:
        self.host, self.port = url.removeprefix("http://").split(":")
        self.n, self.path = n, path
        self.socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> Slowloris:
        for _ in range(self.n):
            s = socket.create_connection((self.host, int(self.port)), timeout=5)
            s.sendall(f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n".encode())
            self.socks.append(s)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            for s in self.socks:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    def open_count(self) -> int:
        """How many are still open (the server has not dropped them)."""
        alive = 0
        for s in self.socks:
            try:
                s.setblocking(False)
                alive += s.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
            finally:
                s.setblocking(True)
        return alive

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for s in self.socks:
            s.close()
