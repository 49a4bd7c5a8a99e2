"""Helpers for tests and benches: run the simulator as a process and drive it.

with SimulatorProcess(seed_skus=100, warehouses=(1, 2)) as sim:
    client = MyKeyCrmClient(base_url=sim.api_url, api_key=sim.api_key)
    sim.control.receive("SKU-000001", 5)
    assert sim.control.truth(["SKU-000001"])["SKU-000001"]["sellable"] == 15

``sim.control`` is a ``control_client.SimControl``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from keycrm_bridge.simulator.control_client import SimControl
from keycrm_bridge.simulator.state import generated_sku

__all__ = ["SimulatorProcess", "generated_sku"]


class SimulatorProcess:
    """The simulator CLI in a child process on a free port. A context manager; ``.url``, ``.api_url``
    (ending ``/v1``), ``.api_key``, ``.control`` (:class:`SimControl`), ``.stop()``, ``.kill()``."""

    def __init__(
        self,
        *,
        seed_skus: int = 0,
        seed_quantity: float = 10,
        warehouses: Sequence[int] = (1,),
        api_key: str = "sim-key",
        rate: int = 60,
        rate_window: float = 60.0,
        webhook_url: str | None = None,
        webhook_warehouses: Sequence[int] | None = None,
        webhook_delay: float = 0.0,
        latency: float = 0.0,
        clock: str | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.startup_timeout = startup_timeout
        self.args = [
            sys.executable,
            "-m",
            "keycrm_bridge.simulator",
            "--host",
            host,
            "--port",
            "0",
            "--api-key",
            api_key,
            "--rate",
            str(rate),
            "--rate-window",
            str(rate_window),
            "--seed-skus",
            str(seed_skus),
            "--seed-quantity",
            str(seed_quantity),
            "--warehouses",
            ",".join(str(w) for w in warehouses),
            "--webhook-delay",
            str(webhook_delay),
            "--latency",
            str(latency),
        ]
        if webhook_url:
            self.args += ["--webhook-url", webhook_url]
        if webhook_warehouses:
            self.args += ["--webhook-warehouses", ",".join(str(w) for w in webhook_warehouses)]
        if clock:
            self.args += ["--clock", clock]
        self.args += list(extra_args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}
        self._stderr: IO[str] | None = None
        self._control: SimControl | None = None

    @property
    def url(self) -> str:
        return str(self.ready["url"])

    @property
    def api_url(self) -> str:
        return self.url + "/v1"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def control(self) -> SimControl:
        if self._control is None:
            self._control = SimControl(self.url)
        return self._control

    def start(self) -> SimulatorProcess:
        self._stderr = tempfile.TemporaryFile("w+")  # closed in _cleanup
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=self.env
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:
            try:
                for line in stdout:
                    lines.put(line)
            except (ValueError, OSError):
                return  # the pipe was closed by stop()/kill()

        threading.Thread(target=pump, name="simulator-stdout", daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                break
            try:
                line = lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "simulator_ready":
                self.ready = event
                return self
        error = self._stderr_text()
        self.kill()
        raise RuntimeError(f"simulator did not become ready within {self.startup_timeout}s: {error[-2000:]}")

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait (bounded), then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._cleanup()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL at once (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
