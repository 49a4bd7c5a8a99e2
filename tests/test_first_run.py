"""A shop owner's first hour, as the README tells it: `make run` in a clean copy of the repository.

The copy holds the repository's files as they stand (no data/, no .venv); the existing virtualenv
is reused through PATH and VENV instead of reinstalling. Everything after the start is done from a
second process with no extra environment, as a second terminal would: status, explain, doctor, the
first-sync review, and a stock change on each side of the demo seen on the other.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

from bridge import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
IDLE_S = 60.0


def clean_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if rel.startswith("data/") or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


def user_env(copy: Path) -> dict[str, str]:
    """A shell with nothing of the bridge's set; the copy's code first on the path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KEYCRM_", "WOO_", "BRIDGE_", "SYNC_", "DATABASE_", "BIND", "LOG_LEVEL"))}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(copy / "sidecar")
    env["COLUMNS"] = "200"
    return env


class Lines(threading.Thread):
    """Collects a stream's lines with the time each arrived."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def since(self, t: float) -> list[str]:
        return [text for at, text in list(self.lines) if at >= t]


def second_terminal(copy: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["keycrm-bridge", *args], cwd=copy, env=user_env(copy), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def worker_of(root: psutil.Process) -> psutil.Process:
    for p in root.children(recursive=True):
        if "keycrm_bridge.cli" in " ".join(p.cmdline()) and p.cmdline()[-1] == "worker":
            return p
    raise AssertionError("no worker process under make run")


def test_first_run_from_a_clean_copy(tmp_path):
    copy = clean_copy(tmp_path / "repo")
    port = free_port()
    env = {**user_env(copy), "BIND": f"127.0.0.1:{port}"}  # the one variable: 8787 may be taken on CI
    make = subprocess.Popen(["make", "-o", f"{VENV_BIN}/.installed", "run", f"VENV={VENV_BIN.parent}"], cwd=copy,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out, err = Lines(make.stdout), Lines(make.stderr)
    out.start()
    err.start()
    try:
        screen = wait_until(lambda: _screen(out), timeout=90, interval=0.2, what="the hand-off screen")
        text = "\n".join(screen)
        assert len(screen) <= 24, "one screen"
        secret = (copy / "data" / "shared-secret").read_text().strip()
        saved = json.loads((copy / "data" / "runtime.json").read_text())
        shop, keycrm = saved["demo"]["shop_url"], saved["demo"]["keycrm_url"]
        for needle in (f"http://127.0.0.1:{port}", "KeyCRM simulator", "demo shop", "not a real shop", shop,
                       keycrm, str(copy / "data"), "shared-secret", "keycrm-bridge resync",
                       f"Shared secret: {secret}", "__peer/stock", "__sim/receive", "explain SKU-000001"):
            assert needle in text, f"{needle!r} missing from the hand-off screen:\n{text}"
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200

        status = second_terminal(copy, "status")
        assert status.returncode == 0, status.stderr
        assert "mode: two-way" in status.stdout and "not writing stock yet: first sync" in status.stdout
        doctor = second_terminal(copy, "doctor")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert f"KeyCRM answers at {keycrm}/v1" in doctor.stdout and "a worker is running" in doctor.stdout

        review = second_terminal(copy, "resync", "--yes", timeout=240)
        assert review.returncode == 0, review.stdout + review.stderr
        assert "SKUs compared: 100; the same on both sides: 100" in review.stdout, review.stdout
        wait_until(lambda: "not writing stock yet" not in second_terminal(copy, "status").stdout,
                   what="status after the review")

        # Idle: the worker barely uses the CPU and the log stays quiet.
        worker = worker_of(psutil.Process(make.pid))
        time.sleep(3)  # the review's own last lines and the first rounds after it
        t0, cpu0 = time.monotonic(), sum(worker.cpu_times()[:2])
        time.sleep(IDLE_S)  # measuring a quiet minute: nothing to wait for but time
        used = sum(worker.cpu_times()[:2]) - cpu0
        lines = out.since(t0) + err.since(t0)
        print(f"idle {IDLE_S:.0f} s: worker CPU {used:.2f} s ({100 * used / IDLE_S:.2f} % of a core), "
              f"{len(lines)} log lines")
        assert used < 0.02 * IDLE_S, f"worker used {used:.2f} s of CPU in {IDLE_S:.0f} s"
        assert len(lines) < 10, lines

        # A stock change on each side of the demo, seen on the other.
        requests.post(f"{shop}/__peer/stock", json={"sku": "SKU-000001", "quantity": 7}, timeout=10).raise_for_status()
        requests.post(f"{keycrm}/__sim/receive", json={"sku": "SKU-000002", "delta": 5}, timeout=10).raise_for_status()
        wait_until(lambda: _kc_sellable(keycrm, "SKU-000001") == 7, timeout=60, what="the shop's 7 in KeyCRM")
        wait_until(lambda: _shop_stock(shop, "SKU-000002") == 15, timeout=60, what="KeyCRM's 15 in the shop")

        explain = second_terminal(copy, "explain", "SKU-000002")
        assert explain.returncode == 0, explain.stderr
        assert "15" in explain.stdout and "KeyCRM" in explain.stdout
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=60)
        out.join(timeout=5)
        err.join(timeout=5)


def _screen(out: Lines) -> list[str] | None:
    texts = [t for _, t in list(out.lines)]
    ends = [i for i, t in enumerate(texts) if t.startswith("Ctrl-C stops")]
    if not ends:
        return None
    starts = [i for i, t in enumerate(texts) if t.startswith("keycrm-bridge is ready")]
    assert starts, texts
    return texts[starts[0]:ends[0] + 1]


def _kc_sellable(keycrm: str, sku: str) -> float | None:
    truth = requests.get(f"{keycrm}/__sim/truth", params={"skus": sku}, timeout=10).json()
    return _first_sellable(truth, sku)


def _first_sellable(truth, sku: str) -> float | None:
    row = truth.get(sku) if isinstance(truth, dict) else None
    if row is None and isinstance(truth, dict):
        row = next((r for r in truth.get("skus", truth.get("items", [])) if r.get("sku") == sku), None)
    return None if row is None else row.get("sellable")


def _shop_stock(shop: str, sku: str) -> float | None:
    found = requests.get(f"{shop}/__peer/products", params={"sku": sku}, timeout=10).json()
    items = found if isinstance(found, list) else found.get("products", [found])
    return items[0].get("stock_quantity") if items else None
