"""Health that tells the truth, over real processes: /healthz is liveness, /readyz readiness (the
database takes a write, passed its integrity check at start, the disk has room, the worker's
heartbeat is fresh). A corrupt file and a full disk make the bridge not ready, `doctor` names them
and says what to do, and a worker started on either does not exit: it waits, and goes on once the
cause is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from keycrm_bridge.store import Store

from bridge import Web, Worker, bridge_env, event, get_status, post_events, wait_until


def readyz(web: Web) -> tuple[int, dict]:
    r = requests.get(web.url + "/readyz", timeout=10)
    return r.status_code, r.json()


def doctor(env: dict[str, str]) -> str:
    r = subprocess.run([sys.executable, "-m", "keycrm_bridge.cli", "doctor"], env=env, capture_output=True,
                       text=True, timeout=120)
    return r.stdout


def test_ready_only_with_a_fresh_worker_heartbeat(tmp_path):
    env = bridge_env(tmp_path / "db.sqlite3")
    web = Web(env, tmp_path / "web.log").start()
    try:
        code, body = readyz(web)
        assert code == 503 and not body["checks"]["worker"]["ok"] and body["checks"]["database"]["ok"]
        worker = Worker(web.env, tmp_path / "worker.log").start()
        try:
            wait_until(lambda: readyz(web)[0] == 200, timeout=30, what="ready with a worker")
        finally:
            worker.stop()
    finally:
        web.stop()


def test_corrupt_database_is_not_ready_and_doctor_says_restore(tmp_path):
    db = tmp_path / "db.sqlite3"
    Store(str(db)).close()
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    with open(db, "r+b") as fh:  # the header and the first pages overwritten: what a bad disk leaves
        fh.write(os.urandom(8192))
    env = bridge_env(db)
    web = Web(env, tmp_path / "web.log").start()            # alive: /healthz answers
    worker = Worker(web.env, tmp_path / "worker.log", reviewed=False).start()  # (nothing to approve in it)
    try:
        code, body = readyz(web)
        assert code == 503 and not body["checks"]["integrity"]["ok"]
        assert "restore" in body["checks"]["integrity"]["fix"]
        report = doctor(web.env)
        assert "FAIL  database" in report and "corrupt" in report and "restore the last backup" in report
        wait_until(lambda: "worker waiting" in (tmp_path / "worker.log").read_text(), timeout=30,
                   what="the worker saying why it waits")
        assert worker.proc.poll() is None, "the worker exited on a damaged database"
        r = post_events(web.url, [event("X-1", 1)])
        assert r.status_code == 503 and r.json()["error"] == "database unavailable"
    finally:
        worker.stop()
        web.stop()


def test_full_disk_is_not_ready_the_worker_waits_and_goes_on_after(tmp_path):
    db = tmp_path / "db.sqlite3"
    # A floor above any free space this machine has is a full disk as the bridge sees it.
    full = bridge_env(db, DISK_FREE_MIN_MB="1000000000")
    web = Web(full, tmp_path / "web.log").start()
    worker = Worker(web.env, tmp_path / "worker.log").start()
    try:
        code, body = readyz(web)
        assert code == 503 and not body["checks"]["disk"]["ok"] and "MB free" in body["checks"]["disk"]["error"]
        report = doctor(web.env)
        assert "FAIL  free disk" in report and "the disk is full" in report
        wait_until(lambda: "worker waiting" in (tmp_path / "worker.log").read_text(), timeout=30,
                   what="the worker saying why it waits")
        assert worker.proc.poll() is None, "the worker exited on a full disk"
        assert post_events(web.url, [event("Y-1", 4)]).status_code == 202  # kept for later
    finally:
        worker.stop()
        web.stop()
    # Room again: the same database, a normal floor; what waited arrives, and the bridge is ready.
    web = Web(bridge_env(db), tmp_path / "web.log").start()
    worker = Worker(web.env, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: readyz(web)[0] == 200, timeout=30, what="ready again")
        wait_until(lambda: get_status(web.url)["changes"].get("done"), timeout=30, what="the kept event handled")
    finally:
        worker.stop()
        web.stop()
