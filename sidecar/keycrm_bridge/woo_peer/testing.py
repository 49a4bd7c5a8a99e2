"""Helpers for tests and benchmarks: run the peer (process or thread); ``.control`` drives it
(``control_client.WooPeerControl``)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

from ..clock import Clock
from .control_client import WooPeerControl
from .server import PeerServer, WooPeer


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
