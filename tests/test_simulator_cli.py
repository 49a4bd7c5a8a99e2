"""The simulator as a process: the README's run command and the helpers benches use."""

from __future__ import annotations

import time

import requests

from keycrm_bridge.simulator.testing import SimulatorProcess


def test_cli_starts_seeds_and_answers() -> None:
    origin = int(time.time())  # the shared start; the clock then runs 60x faster than real time
    with SimulatorProcess(seed_skus=3, warehouses=(1, 2), rate=100, clock=f"accelerated:60:{origin}") as sim:
        assert sim.api_url.endswith("/v1")
        assert sim.ready["event"] == "simulator_ready" and sim.ready["url"] == sim.url
        resp = requests.get(
            sim.api_url + "/offers/stocks",
            params={"filter[details]": "true"},
            headers={"Authorization": f"Bearer {sim.api_key}"},
            timeout=10,
        )
        assert resp.status_code == 200
        body = resp.json()
        assert body["total"] == 3
        assert [w["id"] for w in body["data"][0]["warehouse"]] == [1, 2]
        assert body["data"][0]["quantity"] == 10
        health = sim.control.health()
        assert health["warehouses"] == [1, 2] and health["time"] >= origin
        assert requests.get(sim.api_url + "/offers", timeout=10).status_code == 401
        sim.control.receive("SKU-000001", 5)
        assert sim.control.sellable("SKU-000001") == 15
    assert sim.proc is not None and sim.proc.returncode == 0


def test_cli_kill_is_immediate() -> None:
    sim = SimulatorProcess().start()
    sim.kill()
    assert sim.proc is not None and sim.proc.returncode == -9
