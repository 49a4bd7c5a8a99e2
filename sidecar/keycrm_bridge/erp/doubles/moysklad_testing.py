"""The MoySklad stand-in as a child process, for tests and benchmarks."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from typing import Any

import requests


class MoySkladProcess:
    def __init__(self, token: str = "ms-token", units_per_request: int = 4) -> None:  # noqa: S107
        self.token = token
        self.args = [sys.executable, "-m", "keycrm_bridge.erp.doubles.moysklad_sim", "--port", "0",
                     "--token", token, "--units-per-request", str(units_per_request)]
        self.proc: subprocess.Popen[str] | None = None
        self.url = self.api_url = ""

    def start(self) -> MoySkladProcess:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        ready = json.loads(line)
        self.url, self.api_url = ready["url"], ready["api_url"]
        return self

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        r = requests.request(method, self.url + path, json=body, timeout=30)
        r.raise_for_status()
        try:
            return r.json()
        except ValueError:
            return json.loads(gzip.decompress(r.content))

    def seed(self, stores: dict[str, str], items: list[dict[str, Any]]) -> Any:
        return self._call("POST", "/control/seed", {"stores": stores, "items": items})

    def change(self, changes: list[dict[str, Any]]) -> Any:
        return self._call("POST", "/control/stock", {"changes": changes})

    def config(self, **kw: Any) -> Any:
        return self._call("POST", "/control/config", kw)

    def log(self) -> dict[str, Any]:
        return dict(self._call("GET", "/control/log"))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
