"""Health that tells the truth: liveness (``/healthz``) apart from readiness (``/readyz``).

Ready means the bridge can keep its promises now: the database opens and takes a write, its
integrity check passed when this process started, the disk has more than ``DISK_FREE_MIN_MB`` free
(a 202 needs room to be durable), and the worker's heartbeat is fresh. ``doctor`` uses the same
checks and says what to do. The free-disk probe is an input, so tests can give it any answer.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings

HEARTBEAT_MAX_AGE_S = 30.0   # the worker writes it every 2 s; a lane stuck longer than this is not ready
CORRUPT_HINT = "restore the last backup (docs/operations.md, Backups), then run a full resync as a dry run"
FULL_HINT = "free space on that disk (or move DATABASE_PATH); the bridge waits and goes on by itself"

DiskProbe = Callable[[str], int]


def free_bytes(path: str) -> int:
    """Free bytes on the filesystem holding ``path`` (its nearest existing folder)."""
    p = Path(path).resolve().parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def integrity(path: str) -> str | None:
    """None when the file passes ``PRAGMA quick_check`` (or does not exist yet), else what is wrong."""
    if path == ":memory:" or not Path(path).exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(str(r) for r in rows[:5])


def disk_problem(settings: Settings, probe: DiskProbe = free_bytes) -> str | None:
    if settings.database_path == ":memory:":
        return None
    free = probe(settings.database_path)
    floor = settings.disk_free_min_mb * 1024 * 1024
    if free >= floor:
        return None
    return (f"only {free / 1048576:.1f} MB free on the disk of {settings.database_path} "
            f"(DISK_FREE_MIN_MB is {settings.disk_free_min_mb:g})")


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def readiness(settings: Settings, open_store: Callable[[], Any], started_integrity: str | None, now: float,
              probe: DiskProbe = free_bytes) -> Readiness:
    checks: dict[str, dict[str, Any]] = {}
    checks["integrity"] = ({"ok": True} if started_integrity is None else
                           {"ok": False, "error": f"the database is damaged: {started_integrity}", "fix": CORRUPT_HINT})
    heartbeat: Any = None
    try:
        store = open_store()
        with store.transaction() as c:
            c.execute("INSERT INTO meta (key, value) VALUES ('readyz_probe', ?) ON CONFLICT (key) DO UPDATE"
                      " SET value = excluded.value", (str(now),))
        heartbeat = store.get_meta("worker_heartbeat")
        checks["database"] = {"ok": True}
    except sqlite3.Error as exc:
        corrupt = isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
        checks["database"] = {"ok": False, "error": f"the database cannot be written: {exc}",
                              "fix": CORRUPT_HINT if corrupt else FULL_HINT}
    disk = disk_problem(settings, probe)
    checks["disk"] = {"ok": True} if disk is None else {"ok": False, "error": disk, "fix": FULL_HINT}
    at = heartbeat.get("at") if isinstance(heartbeat, dict) else None
    if isinstance(at, int | float) and now - at <= HEARTBEAT_MAX_AGE_S:
        checks["worker"] = {"ok": True, "heartbeat_age_s": round(now - at, 1)}
    else:
        checks["worker"] = {"ok": False, "error": "no worker heartbeat" if at is None else
                            f"the worker's last heartbeat is {now - at:.0f} s old",
                            "fix": "start `keycrm-bridge worker` with the same DATABASE_PATH; see its log"}
    return Readiness(all(c["ok"] for c in checks.values()), checks)
