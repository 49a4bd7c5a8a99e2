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
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .budget import Priority, RateBudget
from .clock import Clock
from .config import Settings
from .errors import BridgeError, RetryableError
from .keycrm_client import KeyCRMClient
from .metrics import RecordingSession
from .store import Store
from .woo_client import WooClient
from .worker import WorkerLock

# Names of the checks, as the report prints them.
DATA_FOLDER = "data folder"
DATABASE = "database"
DISK = "free disk"
KEYCRM_CONNECTION = "KeyCRM connection"
KEYCRM_KEY = "KeyCRM API key"
KEYCRM_WAREHOUSES = "KeyCRM warehouses"
WOO_URL = "WooCommerce URL"
WOO_KEYS = "WooCommerce keys"
PLUGIN_SIGNATURE = "plugin signature"
EVENTS_API = "events API"
WORKER = "worker"
DEMO_DEFAULTS = "demo defaults"
ERP_MAP = "ERP warehouse map"

# The values docker/demo.env gives the demo (`docker compose --env-file docker/demo.env --profile demo up`)
# so that it needs no setup. They are public, so a bridge reachable by others must not keep them.
DEMO_VALUES = {
    "BRIDGE_SHARED_SECRET": "demo-shared-secret-please-change-me",
    "WOO_CONSUMER_SECRET": "cs_demo_keycrm_bridge_change_me",
    "KEYCRM_WEBHOOK_TOKEN": "demo-webhook-token-change-me",
}
# Longer than this to wait for a KeyCRM budget slot and the check is skipped, not waited for.
MAX_BUDGET_WAIT_S = 10.0

log = logging.getLogger("keycrm_bridge.doctor")


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    message: str
    fix: str = ""
    setting: str = ""  # the environment key(s) to change, when one is to blame
    warning: bool = False  # ok, but worth a look (the check could not be made, or a risky value)


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


# -- KeyCRM ---------------------------------------------------------------------------------------


def _keycrm_budget(settings: Settings, clock: Clock, data_ok: bool) -> RateBudget:
    if data_ok:
        try:
            return RateBudget(settings.database_path, clock, per_minute=settings.rate_per_minute)
        except (sqlite3.Error, OSError):
            pass
    # The data folder is broken (reported on its own): still check KeyCRM, with a private budget.
    return RateBudget(":memory:", clock, per_minute=settings.rate_per_minute)


def check_keycrm(settings: Settings, env: Mapping[str, str], clock: Clock, timeout_s: float,
                 data_ok: bool) -> list[Finding]:
    base = settings.keycrm_base_url
    budget = _keycrm_budget(settings, clock, data_ok)
    try:
        wait = budget.next_slot_in(Priority.READ)
        if wait > MAX_BUDGET_WAIT_S:
            msg = (f"not checked: the KeyCRM request budget is used up for the next {wait:.0f} s "
                   "(the worker is busy, or KeyCRM answered 429)")
            return [Finding(KEYCRM_CONNECTION, True, msg, "run doctor again in a minute", warning=True)]
        session = RecordingSession(settings.database_path, base) if data_ok else requests.Session()
        # One attempt: a second one after a 429 would wait out Retry-After, and doctor must answer now.
        client = KeyCRMClient(base, settings.keycrm_api_key, budget, clock, session=session,
                              timeout=(3.05, timeout_s), max_attempts=1, rng=random.Random())
        try:
            ids = client.warehouse_ids()
        except BridgeError as exc:
            return _keycrm_failure(base, exc)
        finally:
            session.close()
            if isinstance(session, RecordingSession):
                session.recorder.close()
    finally:
        budget.close()
    found = [Finding(KEYCRM_CONNECTION, True, f"KeyCRM answers at {base}", setting="KEYCRM_BASE_URL"),
             Finding(KEYCRM_KEY, True, "KeyCRM accepted the API key", setting="KEYCRM_API_KEY")]
    return found + [_warehouses(settings, env, ids)]


def _keycrm_failure(base: str, exc: BridgeError) -> list[Finding]:
    status = exc.status
    not_checked_key = Finding(KEYCRM_KEY, True, "not checked: KeyCRM did not answer", setting="KEYCRM_API_KEY",
                              warning=True)
    not_checked_wh = Finding(KEYCRM_WAREHOUSES, True, "not checked: KeyCRM did not answer",
                             setting="KEYCRM_WRITE_WAREHOUSE_ID", warning=True)
    if status in (401, 403):
        key = Finding(
            KEYCRM_KEY, False,
            f"KeyCRM rejected the API key (HTTP {status}): it is wrong, was revoked, or belongs to another account",
            "copy the key again from KeyCRM → Settings → API into KEYCRM_API_KEY (no spaces or quotes), "
            "then restart the sidecar",
            "KEYCRM_API_KEY")
        wh = Finding(KEYCRM_WAREHOUSES, True, "not checked until KeyCRM accepts the key",
                     setting="KEYCRM_WRITE_WAREHOUSE_ID", warning=True)
        return [Finding(KEYCRM_CONNECTION, True, f"KeyCRM answers at {base}", setting="KEYCRM_BASE_URL"), key, wh]
    if status == 429:
        return [Finding(KEYCRM_CONNECTION, True,
                        "KeyCRM is limiting this key right now (HTTP 429): other programs use the same key too",
                        "lower KEYCRM_RATE_PER_MINUTE so that all users of the key stay within 60 a minute",
                        "KEYCRM_RATE_PER_MINUTE", warning=True), not_checked_key, not_checked_wh]
    if status == 404:
        message = f"no KeyCRM API at {base} (HTTP 404)"
        fix = "set KEYCRM_BASE_URL to https://openapi.keycrm.app/v1 (it must end in /v1), or leave it unset"
    elif status is None and not isinstance(exc, RetryableError):
        message = f"KEYCRM_BASE_URL {base} is not a usable URL ({exc})"
        fix = "set KEYCRM_BASE_URL to https://openapi.keycrm.app/v1, or leave it unset"
    elif status is None:
        message = f"could not reach KeyCRM at {base}: {str(exc).split(': ')[-1]}"
        fix = ("check KEYCRM_BASE_URL and that this machine can open HTTPS connections to it "
               "(DNS, firewall, proxy); with the demo, that the keycrm-simulator service is running")
    elif status >= 500:
        message = f"KeyCRM answered HTTP {status}: KeyCRM itself has trouble right now"
        fix = "nothing to change here; the worker keeps every change and retries. Run doctor again later"
    else:
        message = f"KeyCRM refused the request: {exc}"
        fix = "check KEYCRM_BASE_URL; if it is right, report this message"
    return [Finding(KEYCRM_CONNECTION, False, message, fix, "KEYCRM_BASE_URL"), not_checked_key, not_checked_wh]


def _warehouse_words(ids: list[int]) -> str:
    return ("warehouse " if len(ids) == 1 else "warehouses ") + ", ".join(str(i) for i in ids)


def _warehouses(settings: Settings, env: Mapping[str, str], ids: list[int]) -> Finding:
    setting = "KEYCRM_WRITE_WAREHOUSE_ID, KEYCRM_READ_WAREHOUSE_IDS"
    if not ids:
        return Finding(KEYCRM_WAREHOUSES, True,
                       "not checked: KeyCRM lists no stock yet, so its warehouse ids cannot be seen",
                       "turn on stock accounting in KeyCRM and add stock (import or a receiving), then run doctor "
                       "again", setting, warning=True)
    known = ", ".join(str(i) for i in ids)
    wanted = [settings.write_warehouse_id, *(i for i in settings.read_warehouse_ids
                                             if i != settings.write_warehouse_id)]
    missing = [i for i in wanted if i not in ids]
    if missing:
        which = "write warehouse" if settings.write_warehouse_id in missing else "read warehouse"
        return Finding(
            KEYCRM_WAREHOUSES, False,
            f"KeyCRM has no {_warehouse_words(missing)} (the {which} configured); "
            f"its stock lists {_warehouse_words(ids)}",
            f"set KEYCRM_WRITE_WAREHOUSE_ID (and KEYCRM_READ_WAREHOUSE_IDS) to ids among {known}: the ids are in "
            "GET /offers/stocks?filter[details]=true",
            setting)
    message = f"{_warehouse_words(wanted)} {'exists' if len(wanted) == 1 else 'exist'} in KeyCRM " \
              f"(writes go to {settings.write_warehouse_id})"
    others = [i for i in ids if i not in settings.read_warehouse_ids]
    if others and not env.get("KEYCRM_READ_WAREHOUSE_IDS"):
        message += (f"; {_warehouse_words(others)} {'is' if len(others) == 1 else 'are'} not counted as sellable "
                    "(set KEYCRM_READ_WAREHOUSE_IDS if the shop sells from there)")
    return Finding(KEYCRM_WAREHOUSES, True, message, setting=setting)


# -- WooCommerce ----------------------------------------------------------------------------------


def check_woocommerce(settings: Settings, clock: Clock, timeout_s: float) -> list[Finding]:
    keys = "WOO_CONSUMER_KEY, WOO_CONSUMER_SECRET"
    if not settings.has_woocommerce:
        needed = settings.sync_mode != "woocommerce"
        message = ("WOO_URL is not set, so KeyCRM stock cannot be written into the shop" if needed else
                   "WOO_URL is not set (needed only to copy KeyCRM stock into the shop and for a full resync)")
        fix = ("set WOO_URL to the shop's address and WOO_CONSUMER_KEY / WOO_CONSUMER_SECRET to a REST key "
               "(WooCommerce → Settings → Advanced → REST API → Add key, permissions Read/Write)")
        return [Finding(WOO_URL, not needed, message, fix, "WOO_URL", warning=not needed)]
    url = settings.woo_url
    client = WooClient(url, settings.woo_consumer_key, settings.woo_consumer_secret, settings.shared_secret, clock,
                       timeout=timeout_s, max_attempts=1)
    reachable = Finding(WOO_URL, True, f"the WooCommerce REST API answers at {url}/wp-json/wc/v3", setting="WOO_URL")
    try:
        client.newest_modified()  # GET products?per_page=1: reads one product
    except BridgeError as exc:
        return _woo_failure(url, exc, "read", keys)
    try:
        # An empty batch changes nothing but needs write permission (a read-only key gets 401).
        client.check_write_access()
    except BridgeError as exc:
        if exc.status in (401, 403):
            return [reachable, Finding(
                WOO_KEYS, False, f"the WooCommerce key may read but not write (HTTP {exc.status})",
                "WooCommerce → Settings → Advanced → REST API: edit the key and set Permissions to Read/Write",
                keys)]
        return _woo_failure(url, exc, "write", keys)
    return [reachable, Finding(WOO_KEYS, True, "WooCommerce accepted the consumer key and secret (read and write)",
                               setting=keys)]


def _woo_failure(url: str, exc: BridgeError, what: str, keys: str) -> list[Finding]:
    status = exc.status
    if status in (401, 403):
        detail = str(exc).split(f"-> {status}", 1)[-1].strip()
        return [Finding(WOO_URL, True, f"the WooCommerce REST API answers at {url}/wp-json/wc/v3", setting="WOO_URL"),
                Finding(WOO_KEYS, False, f"WooCommerce rejected the consumer key or secret (HTTP {status}"
                        f"{': ' + detail if detail else ''})",
                        "create a key in WooCommerce → Settings → Advanced → REST API (permissions Read/Write) and put "
                        "it into WOO_CONSUMER_KEY and WOO_CONSUMER_SECRET; restart the sidecar", keys)]
    unchecked = Finding(WOO_KEYS, True, "not checked until WooCommerce answers", setting=keys, warning=True)
    if status is None and isinstance(exc, RetryableError):
        message = f"could not reach WooCommerce at {url}: {str(exc).rsplit(': ', 1)[-1]}"
        fix = ("check WOO_URL (scheme, host, port) and that this machine can reach the shop; in Docker use the "
               "service name (http://wordpress), not localhost")
    elif status == 404:
        message = f"no WooCommerce REST API at {url}/wp-json/wc/v3 (HTTP 404)"
        fix = ("WOO_URL must be the shop's home address; WooCommerce must be active, and Settings → Permalinks "
               "must not be 'Plain'")
    elif status is not None and status >= 500:
        message = f"WooCommerce answered HTTP {status} to a {what}: the shop has trouble (see its PHP error log)"
        fix = "fix the shop's error, then run doctor again; the bridge retries meanwhile"
    elif status == 429:
        message = "the shop (or a firewall in front of it) is limiting requests (HTTP 429)"
        fix = "allow the sidecar's address in the shop's rate limiter or firewall"
    else:
        message = f"WooCommerce refused the {what}: {exc}"
        fix = "check WOO_URL; if it is right, report this message"
    return [Finding(WOO_URL, False, message, fix, "WOO_URL"), unchecked]


def check_database(settings: Settings) -> list[Finding]:
    """Corruption and a full disk, named, with what to do (both make the sidecar not ready)."""
    from .health import CORRUPT_HINT, FULL_HINT, disk_problem, integrity

    out = []
    damaged = integrity(settings.database_path)
    if damaged:
        out.append(Finding(DATABASE, False, f"the database {settings.database_path} is corrupt ({damaged})",
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
            from .erp.doctor_check import check_erp

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
