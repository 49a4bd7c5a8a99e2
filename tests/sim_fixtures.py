"""What the simulator's tests share: the simulator in a thread on a FakeClock, with a session that
carries the API key (the ``sim`` fixture is in conftest.py)."""

from __future__ import annotations

from typing import Any

import requests

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.simulator import ServerHandle, SimState, SimulatorOptions, serve_in_thread
from keycrm_bridge.simulator.control_client import SimControl

AUTH = {"Authorization": "Bearer sim-key"}


class Sim:
    def __init__(self, handle: ServerHandle, clock: FakeClock) -> None:
        self.handle = handle
        self.clock = clock
        self.control = SimControl(handle.url)
        self.http = requests.Session()
        self.http.headers.update(AUTH)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.handle.api_url + path, params=params, timeout=10)

    def put(self, path: str, body: Any) -> requests.Response:
        return self.http.put(self.handle.api_url + path, json=body, timeout=10)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.http.post(self.handle.api_url + path, json=body, timeout=10)


def start_sim(**options: Any) -> Sim:
    clock = FakeClock()
    opts = SimulatorOptions(**{"rate_limit": 0, **options})
    return Sim(serve_in_thread(SimState(clock), clock, opts), clock)
