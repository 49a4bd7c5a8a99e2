"""What ``doctor`` reports: one finding per check, and the checks' names as the report prints them."""

from __future__ import annotations

from dataclasses import dataclass

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
ERP_CONNECTION = "ERP"

# The values docker/demo.env gives the demo (`docker compose --env-file docker/demo.env --profile demo up`)
# so that it needs no setup. They are public, so a bridge reachable by others must not keep them.
DEMO_VALUES = {
    "BRIDGE_SHARED_SECRET": "demo-shared-secret-please-change-me",
    "WOO_CONSUMER_SECRET": "cs_demo_keycrm_bridge_change_me",
    "KEYCRM_WEBHOOK_TOKEN": "demo-webhook-token-change-me",
}
# Longer than this to wait for a KeyCRM budget slot and the check is skipped, not waited for.
MAX_BUDGET_WAIT_S = 10.0


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    message: str
    fix: str = ""
    setting: str = ""  # the environment key(s) to change, when one is to blame
    warning: bool = False  # ok, but worth a look (the check could not be made, or a risky value)
