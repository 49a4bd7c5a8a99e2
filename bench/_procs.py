"""Shared bench plumbing: the tests' real-process helpers, a C load generator (ApacheBench), server
CPU from /proc, and the latency models every bench runs with."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bridge import SECRET, Proc, Web, Worker, bridge_env, event, free_port, post_events, wait_until  # noqa: E402
from stack import Processes  # noqa: E402

HERE = Path(__file__).resolve().parent
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Latency:
    """What a real shop and KeyCRM take to answer (seconds); the benches' defaults, changeable by flags."""

    keycrm: float = 0.150
    woo_write: float = 0.120
    woo_item: float = 0.036
    woo_read: float = 0.060

    def peer_args(self) -> list[str]:
        return ["--latency-write", str(self.woo_write), "--latency-item", str(self.woo_item),
                "--latency-read", str(self.woo_read)]


def add_latency_flags(ap) -> None:  # type: ignore[no-untyped-def]
    d = Latency()
    ap.add_argument("--keycrm-latency", type=float, default=d.keycrm, help="s a KeyCRM request takes")
    ap.add_argument("--woo-write-latency", type=float, default=d.woo_write, help="s a WooCommerce write takes")
    ap.add_argument("--woo-item-latency", type=float, default=d.woo_item, help="s added per batch item")
    ap.add_argument("--woo-read-latency", type=float, default=d.woo_read, help="s a WooCommerce read page takes")


def latency_of(args) -> Latency:  # type: ignore[no-untyped-def]
    return Latency(args.keycrm_latency, args.woo_write_latency, args.woo_item_latency, args.woo_read_latency)


def tree_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and every live descendant (gunicorn's master and its workers)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) * TICK_S
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass(frozen=True)
class AbRun:
    requests: int
    failed: int
    per_s: float
    cpu_s_per_request: float


def ab(url: str, body: bytes, headers: dict[str, str], seconds: int, server_pid: int,
       concurrency: int = 8) -> AbRun:
    """ApacheBench POSTing ``body`` for ``seconds``; the server's CPU per request from /proc."""
    exe = shutil.which("ab")
    if exe is None:
        raise SystemExit("ApacheBench (ab) is needed: apt-get install apache2-utils")
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(body)
    # ab reads -t as a whole number (0.5 would mean no limit at all).
    args = [exe, "-q", "-t", str(max(1, round(seconds))), "-n", "10000000", "-c", str(concurrency), "-p", f.name,
            "-T", headers.get("Content-Type", "application/json")]
    for k, v in headers.items():
        if k != "Content-Type":
            args += ["-H", f"{k}: {v}"]
    cpu0 = tree_cpu_s(server_pid)
    out = subprocess.run([*args, url], capture_output=True, text=True, check=False).stdout
    cpu = tree_cpu_s(server_pid) - cpu0
    os.unlink(f.name)
    done = int(_field(out, r"Complete requests:\s+(\d+)"))
    bad = int(_field(out, r"Failed requests:\s+(\d+)")) + int(_field(out, r"Non-2xx responses:\s+(\d+)", "0"))
    if done == 0 or bad:
        raise RuntimeError(f"ab: {done} done, {bad} failed or not 2xx:\n{out[-1500:]}")
    return AbRun(done, bad, float(_field(out, r"Requests per second:\s+([\d.]+)")), cpu / done)


def _field(text: str, pattern: str, default: str | None = None) -> str:
    m = re.search(pattern, text)
    if m is None:
        if default is not None:
            return default
        raise RuntimeError(f"ab output without {pattern!r}:\n{text[-1500:]}")
    return m.group(1)


def gunicorn_bare(tmp: Path, workers: int) -> Proc:
    """The durable bare baseline (bare_app.py) under gunicorn, as `keycrm-bridge web` runs ours."""
    from keycrm_bridge.cli import gunicorn_args
    from keycrm_bridge.config import load_settings

    port = free_port()
    env = {**bridge_env(tmp / "unused.sqlite3"), "PYTHONPATH": str(HERE), "BARE_DATABASE_PATH": str(tmp / "bare.sqlite3"),
           "BIND": f"127.0.0.1:{port}", "WEB_WORKERS": str(workers)}
    args = gunicorn_args(load_settings(env))[:-1] + ["--chdir", str(HERE), "bare_app:app"]
    p = Proc([sys.executable, "-m", "gunicorn", *args], env, tmp / "bare.log").start()
    p.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return p


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return round(xs[max(0, int(len(xs) * 0.95 + 0.5) - 1)], 3)


__all__ = ["SECRET", "AbRun", "Latency", "Processes", "Proc", "Web", "Worker", "ab", "add_latency_flags",
           "bridge_env", "event", "free_port", "gunicorn_bare", "latency_of", "p95", "post_events",
           "tree_cpu_s", "wait_until"]
