"""``doctor``'s checks of the two remote systems: KeyCRM (key, warehouses) and the shop's REST API (keys).

Each asks the system itself, with one attempt and short timeouts; KeyCRM calls go through the shared
rate budget like every other KeyCRM call.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Mapping

import requests

from .budget import Priority, RateBudget
from .clock import Clock
from .config import Settings
from .doctor_findings import (
    KEYCRM_CONNECTION,
    KEYCRM_KEY,
    KEYCRM_WAREHOUSES,
    MAX_BUDGET_WAIT_S,
    WOO_KEYS,
    WOO_URL,
    Finding,
)
from .errors import BridgeError, RetryableError
from .keycrm_client import KeyCRMClient
from .metrics import RecordingSession
from .woo_client import WooClient

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
