"""``keycrm-bridge doctor``: check every setting against the real thing and say what to fix, in plain words.

Each check asks the system it is about (KeyCRM, the shop's REST API, the data folder, the store's
record of the plugin's last request, the running sidecar) instead of re-reading the configuration,
because a value can be well formed and still wrong. Network checks use one or two attempts and
short timeouts so the whole run takes seconds, and KeyCRM calls go through the shared rate budget
like every other KeyCRM call.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from .clock import Clock
from .config import Settings
from .doctor_findings import (  # noqa: F401  (re-exported: the report and the tests name them)
    DATA_FOLDER,
    DATABASE,
    DEMO_DEFAULTS,
    DEMO_VALUES,
    DISK,
    ERP_CONNECTION,
    ERP_MAP,
    EVENTS_API,
    KEYCRM_CONNECTION,
    KEYCRM_KEY,
    KEYCRM_WAREHOUSES,
    PLUGIN_SIGNATURE,
    WOO_KEYS,
    WOO_URL,
    WORKER,
    Finding,
)
from .doctor_remote import check_keycrm, check_woocommerce  # noqa: F401  (re-exported for the tests)
from .store import Store
from .worker import WorkerLock

log = logging.getLogger("keycrm_bridge.doctor")


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _user() -> str:
    uid = os.getuid()
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


# -- data folder ----------------------------------------------------------------------------------


def check_data_folder(settings: Settings) -> Finding:
    if settings.database_path == ":memory:":
        return Finding(DATA_FOLDER, True, "the database is in memory (tests only): nothing is kept",
                       setting="DATABASE_PATH", warning=True)
    db = Path(settings.database_path)
    folder = db.parent
    fix = (f"point DATABASE_PATH into a folder that {_user()} may write, or give it the folder: "
           f"`chown -R {os.getuid()} {folder}` (in Docker, the sidecar-data volume must belong to user `bridge`)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return Finding(DATA_FOLDER, False, f"cannot create the data folder {folder}: {exc.strerror or exc}",
                       fix, "DATABASE_PATH")
    try:
        fd, probe = tempfile.mkstemp(prefix=".doctor-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return Finding(DATA_FOLDER, False, f"cannot write in the data folder {folder}: {exc.strerror or exc}",
                       fix, "DATABASE_PATH")
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return Finding(DATA_FOLDER, False, f"{path} exists but {_user()} may not write it", fix, "DATABASE_PATH")
    size = f"{db.stat().st_size / 1e6:.1f} MB" if db.exists() else "not created yet"
    return Finding(DATA_FOLDER, True, f"{folder} is writable (database {db.name}: {size})", setting="DATABASE_PATH")


def check_database(settings: Settings) -> list[Finding]:
    """Corruption and a full disk, named, with what to do (both make the sidecar not ready)."""
    from .health import CORRUPT_HINT, FULL_HINT, disk_problem, integrity
    from .inbox import inbox_path

    out = []
    damaged, path = None, settings.database_path
    for path in (settings.database_path, inbox_path(settings.database_path)):
        if damaged := integrity(path):
            break
    if damaged:
        out.append(Finding(DATABASE, False, f"the database {path} is corrupt ({damaged})",
                           f"stop the bridge, {CORRUPT_HINT}", "DATABASE_PATH"))
    else:
        out.append(Finding(DATABASE, True, "the database passes its integrity check (PRAGMA quick_check)"))
    full = disk_problem(settings)
    if full:
        out.append(Finding(DISK, False, f"the disk is full: {full}; the sidecar is not ready and the worker waits",
                           FULL_HINT, "DISK_FREE_MIN_MB"))
    else:
        out.append(Finding(DISK, True, f"more than {settings.disk_free_min_mb:g} MB free for the database"))
    return out


# -- the plugin and the running sidecar -----------------------------------------------------------


def check_plugin(store: Store | None, settings: Settings, now: float) -> Finding:
    setting = "BRIDGE_SHARED_SECRET"
    if store is None:
        return Finding(PLUGIN_SIGNATURE, True, "not checked: the database cannot be opened", setting=setting,
                       warning=True)
    last = store.get_meta("last_plugin_request")
    where = f"http://{settings.bind}"
    if not isinstance(last, dict):
        return Finding(PLUGIN_SIGNATURE, True, "no request from the plugin yet",
                       f"in WordPress → WooCommerce → KeyCRM Bridge, set the Sidecar URL (the address at which "
                       f"WordPress reaches {where}), paste BRIDGE_SHARED_SECRET as the Shared secret, save, and press "
                       "Test connection",
                       setting, warning=True)
    at = last.get("at")
    when = _ago(max(0.0, now - float(at))) if isinstance(at, int | float) else "at an unknown time"
    if last.get("ok"):
        return Finding(PLUGIN_SIGNATURE, True, f"the plugin's last request ({when}) was signed correctly",
                       setting=setting)
    reason = str(last.get("reason") or "")
    if "outside" in reason:
        return Finding(PLUGIN_SIGNATURE, False,
                       f"the plugin's last request ({when}) was refused: the WordPress server's clock and this "
                       "machine's differ by more than 5 minutes",
                       "set both machines' clocks by NTP (e.g. `timedatectl set-ntp true`)", setting)
    if "missing" in reason:
        return Finding(PLUGIN_SIGNATURE, False,
                       f"the last request to the sidecar ({when}) carried no signature",
                       "a proxy between WordPress and the sidecar may strip X-Bridge-* headers; or something other "
                       "than the plugin posts to the sidecar", setting)
    return Finding(PLUGIN_SIGNATURE, False,
                   f"the plugin's last request ({when}) was signed with a different secret"
                   f"{f' ({reason})' if reason and reason != 'bad signature' else ''}",
                   "paste the sidecar's BRIDGE_SHARED_SECRET into WordPress → WooCommerce → KeyCRM Bridge → Shared "
                   "secret (or set BRIDGE_SHARED_SECRET to the plugin's and restart the sidecar), then press Test "
                   "connection; the plugin resends what waited", setting)


def _local_url(bind: str) -> str:
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_events_api(settings: Settings, timeout_s: float) -> Finding:
    url = _local_url(settings.bind) + "/healthz"
    try:
        r = requests.get(url, timeout=min(timeout_s, 3.0))
        ok = r.status_code == 200
        detail = f"HTTP {r.status_code}"
    except requests.RequestException as exc:
        ok, detail = False, type(exc).__name__
    if ok:
        return Finding(EVENTS_API, True, f"the sidecar's events API answers at {url}", setting="BIND")
    return Finding(EVENTS_API, False, f"the sidecar's events API does not answer at {url} ({detail}): "
                   "events from the plugin wait in WordPress until it does",
                   "start it with `keycrm-bridge run` (or `keycrm-bridge web` and `keycrm-bridge worker`); if it "
                   "runs elsewhere, give doctor the same BIND", "BIND")


def check_worker(settings: Settings, clock: Clock) -> Finding:
    lock = WorkerLock(settings.database_path)
    try:
        free = lock.acquire(clock, wait=False)
    except OSError as exc:
        return Finding(WORKER, True, f"not checked: {exc.strerror or exc}", warning=True)
    finally:
        lock.release()
    if free:
        return Finding(WORKER, False, "no worker is running for this database: events are kept but nothing is "
                       "sent to KeyCRM or the shop",
                       "start it with `keycrm-bridge worker` (or `keycrm-bridge run`), with the same DATABASE_PATH",
                       "DATABASE_PATH")
    return Finding(WORKER, True, "a worker is running for this database")


def check_demo_defaults(settings: Settings) -> Finding:
    values = {"BRIDGE_SHARED_SECRET": settings.shared_secret, "WOO_CONSUMER_SECRET": settings.woo_consumer_secret,
              "KEYCRM_WEBHOOK_TOKEN": settings.webhook_token}
    left = [key for key, demo in DEMO_VALUES.items() if values[key] == demo]
    if not left:
        return Finding(DEMO_DEFAULTS, True, "no demo secrets in use")
    return Finding(DEMO_DEFAULTS, True, f"{', '.join(left)} still hold the public demo values of "
                   "docker/demo.env: fine for the demo, not for a shop others can reach",
                   "put your own values into .env (e.g. `openssl rand -hex 32`), then `docker compose up -d`",
                   ", ".join(left), warning=True)


# -- running them all -----------------------------------------------------------------------------


def _guarded(name: str, check: Callable[[], Any]) -> list[Finding]:
    try:
        result = check()
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        log.exception("doctor check failed", extra={"check": name})
        return [Finding(name, False, f"doctor could not run this check: {type(exc).__name__}: {exc}",
                        "run with LOG_LEVEL=DEBUG and report the error")]
    return result if isinstance(result, list) else [result]


def run_doctor(settings: Settings, env: Mapping[str, str] | None = None, *, clock: Clock | None = None,
               timeout_s: float = 5.0) -> list[Finding]:
    """Every check, in the order a person would fix things. ``env`` tells which keys were left unset."""
    from .wiring import make_clock

    env = os.environ if env is None else env
    clock = clock or make_clock(settings)
    findings = _guarded(DATA_FOLDER, lambda: check_data_folder(settings))
    data_ok = findings[0].ok and not findings[0].warning
    if data_ok:
        findings += _guarded(DATABASE, lambda: check_database(settings))
        data_ok = all(f.ok for f in findings)
    store: Store | None = None
    if data_ok:
        try:
            store = Store(settings.database_path)
        except (sqlite3.Error, OSError):
            store = None
    try:
        findings += _guarded(KEYCRM_CONNECTION, lambda: check_keycrm(settings, env, clock, timeout_s, data_ok))
        findings += _guarded(WOO_URL, lambda: check_woocommerce(settings, clock, timeout_s))
        findings += _guarded(PLUGIN_SIGNATURE, lambda: check_plugin(store, settings, clock.now()))
        findings += _guarded(EVENTS_API, lambda: check_events_api(settings, timeout_s))
        if data_ok:
            findings += _guarded(WORKER, lambda: check_worker(settings, clock))
        findings += _guarded(DEMO_DEFAULTS, lambda: check_demo_defaults(settings))
        if settings.erp is not None:
            from .erp.doctor_check import check_erp, check_erp_connection

            findings += _guarded(ERP_CONNECTION, lambda: Finding(ERP_CONNECTION, **check_erp_connection(
                settings, clock, store, timeout_s, _local_url(settings.bind))))
            findings += _guarded(ERP_MAP, lambda: Finding(ERP_MAP, setting="ERP_WAREHOUSE_MAP",
                                                          **check_erp(settings, store)))
    finally:
        if store is not None:
            store.close()
    return findings


def format_findings(findings: list[Finding]) -> str:
    problems = sum(1 for f in findings if not f.ok)
    warnings = sum(1 for f in findings if f.ok and f.warning)
    head = "keycrm-bridge doctor: " + (
        "everything checked is fine" if not problems else f"{problems} problem{'s' * (problems != 1)} to fix")
    if warnings:
        head += f", {warnings} warning{'s' * (warnings != 1)}"
    lines = [head]
    for f in findings:
        mark = "FAIL" if not f.ok else ("warn" if f.warning else "ok")
        setting = f" [{f.setting}]" if f.setting and (not f.ok or f.warning) else ""
        lines.append(f"  {mark:<4}  {f.name}{setting}: {f.message}")
        if f.fix and (not f.ok or f.warning):
            lines.append(f"        fix: {f.fix}")
    return "\n".join(lines)


def main(settings: Settings) -> int:
    """What `keycrm-bridge doctor` runs: prints the report; 0 when nothing failed, 1 otherwise."""
    package_log = logging.getLogger("keycrm_bridge")
    level = package_log.level
    if settings.log_level != "DEBUG":
        # The clients log each failed call; the report already says it in plain words.
        package_log.setLevel(logging.CRITICAL)
    started = time.monotonic()
    try:
        findings = run_doctor(settings, os.environ)
    finally:
        package_log.setLevel(level)
    print(format_findings(findings))
    print(f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return 0 if all(f.ok for f in findings) else 1
