"""``keycrm-bridge run``: web and worker together; without KeyCRM keys, a complete demo.

Without ``KEYCRM_API_KEY`` it starts the KeyCRM simulator and, unless ``WOO_URL`` is set, a demo
shop (the WooCommerce REST stand-in the tests use) with the same catalogue, so that both directions
can be watched. It says ready only once ``/healthz`` answers, prints one screen for the person at
the terminal, writes ``runtime.json`` for the commands run beside it, and then stays quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from . import runtime
from .config import ConfigError, load_settings

DEMO_STOCK = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_taken(bind: str) -> bool:
    host, _, port = bind.rpartition(":")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]") or "0.0.0.0", int(port)))  # noqa: S104 - only a probe
        except OSError:
            return True
    return False


def _wait_ready(proc: subprocess.Popen[str], event: str, what: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("event") == event:
            return dict(msg)
    raise RuntimeError(f"{what} did not start in time")


def _wait_healthy(url: str, procs: list[subprocess.Popen[str]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a bridge process exited with {p.returncode} before {url}/healthz answered")
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}/healthz did not answer within {timeout:.0f} s")


class Demo:
    """The stand-ins ``run`` starts when no KeyCRM key is given."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.keycrm_url = ""
        self.shop_url = ""

    def start(self, env: dict[str, str], sidecar: str, skus: int) -> None:
        token = env.setdefault("KEYCRM_WEBHOOK_TOKEN", secrets.token_urlsafe(24))
        sim = subprocess.Popen(
            [sys.executable, "-m", "keycrm_bridge.simulator", "--host", "127.0.0.1", "--port", str(_free_port()),
             "--api-key", "sim-key", "--seed-skus", str(skus), "--seed-quantity", str(DEMO_STOCK),
             "--webhook-url", f"{sidecar}/v1/keycrm/webhook/{token}"],
            stdout=subprocess.PIPE, text=True, env=env)
        self.procs.append(sim)
        self.keycrm_url = _wait_ready(sim, "simulator_ready", "the KeyCRM simulator")["url"]
        env["KEYCRM_API_KEY"] = "sim-key"
        env["KEYCRM_BASE_URL"] = self.keycrm_url + "/v1"
        env.setdefault("KEYCRM_WRITE_WAREHOUSE_ID", "1")
        if env.get("WOO_URL"):
            return
        shop = subprocess.Popen(
            [sys.executable, "-m", "keycrm_bridge.woo_peer", "--port", str(_free_port()), "--sidecar-url", sidecar,
             "--secret", env["BRIDGE_SHARED_SECRET"], "--key", "ck_demo", "--secret-key", "cs_demo",
             "--seed", str(skus), "--stock", str(DEMO_STOCK)],
            stdout=subprocess.PIPE, text=True, env=env)
        self.procs.append(shop)
        self.shop_url = _wait_ready(shop, "woo_peer_ready", "the demo shop")["url"]
        env.update(WOO_URL=self.shop_url, WOO_CONSUMER_KEY="ck_demo", WOO_CONSUMER_SECRET="cs_demo")
        # Both directions can be watched only when both sides are masters.
        env.setdefault("SYNC_MODE", "two-way")


def handoff_screen(env: dict[str, str], data: Path, sidecar: str, demo: Demo | None, skus: int) -> str:
    secret_file = data / "shared-secret"
    mode = env.get("SYNC_MODE") or "keycrm"
    out = ["", f"keycrm-bridge is ready at {sidecar} (mode {mode})."]
    if demo:
        out.append("Demo: no KEYCRM_API_KEY is set, so stand-ins run on this machine (nothing real is touched):")
        out.append(f"  KeyCRM simulator   {demo.keycrm_url}/v1   ({skus} offers SKU-000001…, {DEMO_STOCK} each)")
        if demo.shop_url:
            out.append(f"  demo shop          {demo.shop_url}   (a WooCommerce REST stand-in, not a real shop;"
                       " same SKUs)")
    out.append(f"  data               {data.resolve()}   (database, runtime.json)")
    out.append(f"  shared secret      {secret_file.resolve() if secret_file.exists() else 'BRIDGE_SHARED_SECRET'}")
    out.append("")
    out.append("Nothing is written to either side until you review the first comparison:")
    out.append("  keycrm-bridge resync            (shows what would change, then asks to apply)")
    if demo and demo.shop_url:
        sku = "SKU-000001"
        out.append("Then change stock on either side and watch it arrive on the other:")
        out.append(f"  shop:   curl -s -X POST {demo.shop_url}/__peer/stock -H 'Content-Type: application/json'"
                   f" -d '{{\"sku\":\"{sku}\",\"quantity\":7}}'")
        out.append(f"  KeyCRM: curl -s -X POST {demo.keycrm_url}/__sim/receive -H 'Content-Type: application/json'"
                   f" -d '{{\"sku\":\"{sku}\",\"delta\":5}}'")
        out.append(f"  see:    keycrm-bridge explain {sku}     (status, doctor, guard, quarantine work here too)")
    out.append("")
    out.append(f"To connect a WordPress shop: WooCommerce → KeyCRM Bridge, Sidecar URL {sidecar},"
               f" Shared secret: {env['BRIDGE_SHARED_SECRET']}")
    out.append("Ctrl-C stops everything. From here on only warnings and the bridge's writes are logged.")
    return "\n".join(out) + "\n"


def cmd_run(args: argparse.Namespace) -> int:
    from .cli import gunicorn_args

    env = dict(os.environ)
    data = runtime.data_dir(env, args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    env.setdefault("DATABASE_PATH", str(data / "keycrm-bridge.sqlite3"))
    bind = env.get("BIND", "").strip() or "127.0.0.1:8787"
    if ":" in bind and bind.rpartition(":")[2].isdigit() and _port_taken(bind):
        print(f"keycrm-bridge: {bind} is already in use; set BIND to a free address, e.g. "
              f"BIND=127.0.0.1:8788 keycrm-bridge run", file=sys.stderr)
        return 2
    sidecar = f"http://{bind}"
    if not env.get("BRIDGE_SHARED_SECRET"):
        secret_file = data / "shared-secret"
        if not secret_file.exists():
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        env["BRIDGE_SHARED_SECRET"] = secret_file.read_text().strip()
    demo = Demo() if not env.get("KEYCRM_API_KEY") else None
    children: list[subprocess.Popen[str]] = []
    try:
        if demo:
            demo.start(env, sidecar, args.demo_skus)
            children += demo.procs
        try:
            settings = load_settings(env)
        except ConfigError as exc:
            print(f"keycrm-bridge: configuration error: {exc}", file=sys.stderr)
            return 2
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", *gunicorn_args(settings)], env=env, text=True)
        worker = subprocess.Popen([sys.executable, "-m", "keycrm_bridge.cli", "worker"], env=env, text=True)
        children += [web, worker]
        _wait_healthy(sidecar, [web])
        runtime.write(data, env, {"pid": os.getpid(), "sidecar_url": sidecar,
                                  "demo": {"keycrm_url": demo.keycrm_url, "shop_url": demo.shop_url} if demo else None})
        # One write per line: gunicorn and the worker write to the same stream, and print() sends the
        # text and its newline separately, so another process's line could land between them.
        ready = json.dumps({"event": "bridge_ready", "sidecar_url": sidecar, "mode": settings.sync_mode,
                            "database": settings.database_path})
        sys.stderr.write(ready + "\n")
        sys.stderr.flush()
        # Shown once, to the person starting the bridge: it is what they paste into the plugin;
        # the structured logs never carry the secret.
        sys.stdout.write(handoff_screen(env, data, sidecar, demo, args.demo_skus) + "\n")
        sys.stdout.flush()
        return _supervise(children, worker, env)
    except RuntimeError as exc:
        print(f"keycrm-bridge: {exc}", file=sys.stderr)
        return 1
    finally:
        # runtime.json stays: `status` and `explain` still read the database after a stop.
        _stop_all(children)


def _supervise(children: list[subprocess.Popen[str]], worker: subprocess.Popen[str], env: dict[str, str]) -> int:
    stopping = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping:
        for i, child in enumerate(children):
            if child.poll() is None:
                continue
            if child is worker:
                # The worker is restartable at any moment by design; keep the bridge up.
                worker = subprocess.Popen([sys.executable, "-m", "keycrm_bridge.cli", "worker"], env=env, text=True)
                children[i] = worker
            else:
                print(f"keycrm-bridge: a process exited with {child.returncode}; stopping", file=sys.stderr)
                return 1
        time.sleep(0.5)
    return 0


def _stop_all(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
