"""The README's run command and the container's commands, run as a user would."""

import json
import os
import signal
import subprocess
import sys
import time

import requests

from keycrm_bridge import runtime, signing

from bridge import approve_first_sync, event, free_port, wait_until


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
        while not lines or not lines[-1].startswith("Ctrl-C stops"):
            line = p.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("{") and '"bridge_ready"' in line:
                ready = json.loads(line)
        assert ready and ready["sidecar_url"] == f"http://127.0.0.1:{port}"
        secret = (tmp_path / "data" / "shared-secret").read_text().strip()
        assert len(secret) >= 32
        shown = "".join(lines)
        assert f"Shared secret: {secret}" in shown and f"http://127.0.0.1:{port}" in shown
        url = ready["sidecar_url"]
        assert _up(url), "ready is said only once /healthz answers"
        # The owner's review, recorded as `keycrm-bridge resync` would (test_first_run does it for real).
        approve_first_sync(runtime.merged_env({"KEYCRM_BRIDGE_DATA": str(tmp_path / "data")}))
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


def test_run_on_a_taken_port_says_bind_in_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYCRM_", "WOO_", "BRIDGE_", "SYNC_"))}
        env["BIND"] = f"127.0.0.1:{port}"
        r = subprocess.run([sys.executable, "-m", "keycrm_bridge.cli", "run", "--data-dir", str(tmp_path / "d")],
                           env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "BIND" in r.stderr and f"127.0.0.1:{port}" in r.stderr
