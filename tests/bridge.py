"""Test helpers: real sidecar processes (gunicorn, worker) on loopback, and event builders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from keycrm_bridge import approval, signing
from keycrm_bridge.config import load_settings
from keycrm_bridge.store import Store

SECRET = "test-shared-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll a real process's observable state with a bounded deadline (not a sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def bridge_env(db: Path, keycrm_url: str = "http://127.0.0.1:9/v1", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYCRM_", "WOO_", "SYNC_", "BRIDGE_"))}
    env.update({
        "BRIDGE_SHARED_SECRET": SECRET,
        "KEYCRM_API_KEY": "sim-key",
        "KEYCRM_BASE_URL": keycrm_url,
        "KEYCRM_WRITE_WAREHOUSE_ID": "1",
        "DATABASE_PATH": str(db),
        "SYNC_MODE": "woocommerce",
        "LOG_LEVEL": "WARNING",
    })
    env.update(extra)
    return env


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        fh = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Web(Proc):
    def __init__(self, env: dict[str, str], log: Path, workers: int = 2) -> None:
        self.port = free_port()
        env = {**env, "BIND": f"127.0.0.1:{self.port}", "WEB_WORKERS": str(workers)}
        super().__init__([sys.executable, "-m", "keycrm_bridge.cli", "web"], env, log)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Web:
        super().start()

        def up() -> bool:
            try:
                return requests.get(self.url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
                return False

        wait_until(up, what="gunicorn /healthz")
        return self


class Worker(Proc):
    """The worker; ``reviewed`` (the default) records the owner's first-sync approval first, as a
    shop that has been running for a while has it. First-contact tests pass ``reviewed=False``."""

    def __init__(self, env: dict[str, str], log: Path, reviewed: bool = True) -> None:
        super().__init__([sys.executable, "-m", "keycrm_bridge.cli", "worker"], env, log)
        self.reviewed = reviewed

    def start(self) -> Worker:
        if self.reviewed:
            approve_first_sync(self.env)
        super().start()
        return self


def approve_first_sync(env: dict[str, str]) -> None:
    settings = load_settings(env)
    store = Store(settings.database_path)
    try:
        approval.approve(store, settings, time.time(), "test")
    finally:
        store.close()


def event(sku: str, qty: float | None = None, *, type: str = "stock.set", cause: str = "manual",
          product_id: int = 1, occurred_at: float | None = None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "id": uuid.uuid4().hex, "type": type, "occurred_at": occurred_at or time.time(),
        "product_id": product_id, "parent_id": 0, "sku": sku, "cause": cause,
    }
    if type == "stock.set":
        ev["stock_quantity"] = qty
    ev.update(extra)
    return ev


def post_events(url: str, events: list[dict[str, Any]], secret: str = SECRET, session: Any = requests,
                now: float | None = None) -> requests.Response:
    body = json.dumps({"site": "https://shop.test", "events": events}).encode()
    headers = signing.signed_headers(secret, "POST", "/v1/events", body, time.time() if now is None else now)
    return session.post(url + "/v1/events", data=body, headers=headers, timeout=30)


def get_status(url: str) -> dict[str, Any]:
    headers = signing.signed_headers(SECRET, "GET", "/v1/status", b"", time.time())
    r = requests.get(url + "/v1/status", headers=headers, timeout=10)
    r.raise_for_status()
    return dict(r.json())
