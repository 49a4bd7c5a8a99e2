"""The README's run command and the container's commands, run as a user would."""

import json
import os
import signal
import subprocess
import sys
import time

import requests

from keycrm_bridge import signing

from bridge import event, free_port, wait_until


def test_simulator_subcommand_takes_its_own_flags_as_compose_passes_them():
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "keycrm_bridge.cli", "simulator", "--host", "127.0.0.1",
                          "--port", str(port), "--api-key", "sim-key", "--seed-skus", "2"],
                         stdout=subprocess.PIPE, text=True)
    try:
        ready = json.loads(p.stdout.readline())
        assert ready["event"] == "simulator_ready"
        r = requests.get(f"http://127.0.0.1:{port}/v1/offers/stocks", headers={"Authorization": "Bearer sim-key"},
                         timeout=5)
        assert r.status_code == 200 and r.json()["total"] == 2
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_run_without_keys_starts_simulator_web_and_worker(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYCRM_", "WOO_", "BRIDGE_", "SYNC_"))}
    env.update(BIND=f"127.0.0.1:{port}", SYNC_MODE="woocommerce", LOG_LEVEL="WARNING")
    p = subprocess.Popen([sys.executable, "-m", "keycrm_bridge.cli", "run", "--data-dir", str(tmp_path / "data"),
                          "--demo-skus", "5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        lines = []
        ready = None
        while ready is None:
            line = p.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("{") and '"bridge_ready"' in line:
                ready = json.loads(line)
        assert ready["sidecar_url"] == f"http://127.0.0.1:{port}"
        secret = (tmp_path / "data" / "shared-secret").read_text().strip()
        assert len(secret) >= 32
        shown = "".join(lines + [p.stdout.readline() for _ in range(4)])
        assert f"Shared secret: {secret}" in shown and f"http://127.0.0.1:{port}" in shown
        url = ready["sidecar_url"]
        wait_until(lambda: _up(url), what="sidecar up")
        body = json.dumps({"events": [event("SKU-000001", 3)]}).encode()
        r = requests.post(url + "/v1/events", data=body, headers=signing.signed_headers(secret, "POST", "/v1/events", body, time.time()),
                          timeout=5)
        assert r.status_code == 202

        def pushed():
            st = requests.get(url + "/v1/status", headers=signing.signed_headers(secret, "GET", "/v1/status", b"", time.time()),
                              timeout=5).json()
            return st["queue_depth"] == 0 and st["last_keycrm_success_at"] and st
        wait_until(pushed, timeout=30, what="the event pushed to the embedded simulator")
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=30)
    assert p.returncode == 0


def _up(url):
    try:
        return requests.get(url + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
