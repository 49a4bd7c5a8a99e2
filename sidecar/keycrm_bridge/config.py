"""Configuration from the environment, checked once at start-up.

Every key is documented in docs/configuration.md (a test keeps the two in step). A missing or
invalid value raises ``ConfigError`` naming the key; the CLI turns that into one line and exit 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from .erp.settings import ErpSettings

MODES = ("keycrm", "woocommerce", "two-way", "erp")
PRODUCT_FIELDS = ("name", "description", "price", "weight", "dimensions")
DEFAULT_KEYCRM_URL = "https://openapi.keycrm.app/v1"


class ConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class Settings:
    shared_secret: str
    keycrm_api_key: str
    keycrm_base_url: str = DEFAULT_KEYCRM_URL
    write_warehouse_id: int = 1
    read_warehouse_ids: tuple[int, ...] = (1,)
    sync_mode: str = "keycrm"
    rate_per_minute: int = 60
    database_path: str = "data/keycrm-bridge.sqlite3"
    product_fields_from_woo: frozenset[str] = field(default_factory=lambda: frozenset(PRODUCT_FIELDS))
    woo_url: str = ""
    woo_consumer_key: str = ""
    woo_consumer_secret: str = ""
    bind: str = "127.0.0.1:8787"
    web_workers: int = 2
    log_level: str = "INFO"
    keycrm_timeout_s: float = 30.0
    stock_max_age_s: float = 3600.0
    push_debounce_s: float = 0.3
    push_max_wait_s: float = 1.5
    webhook_token: str = ""
    clock_spec: str = ""
    safety_buffer: float = 0.0
    guard_share: float = 0.2
    guard_min_skus: int = 10
    order_poll_interval_s: float = 10.0
    sweep_page_interval_s: float = 1.0
    budget_share_others: float = 0.1
    keycrm_writes_per_minute: int = 20
    inflight_timeout_s: float = 1800.0
    skumap_refresh_s: float = 300.0
    retention_days: float = 14.0
    erp: ErpSettings | None = None  # SYNC_MODE=erp only
    disk_free_min_mb: float = 100.0

    @property
    def pushes_stock(self) -> bool:
        return self.sync_mode in ("woocommerce", "two-way")

    @property
    def has_woocommerce(self) -> bool:
        return bool(self.woo_url and self.woo_consumer_key and self.woo_consumer_secret)


# Every key the sidecar reads, so docs and code cannot drift apart (see tests/test_config.py).
KEYS = (
    "BRIDGE_SHARED_SECRET",
    "KEYCRM_API_KEY",
    "KEYCRM_BASE_URL",
    "KEYCRM_WRITE_WAREHOUSE_ID",
    "KEYCRM_READ_WAREHOUSE_IDS",
    "KEYCRM_RATE_PER_MINUTE",
    "KEYCRM_TIMEOUT_S",
    "KEYCRM_STOCK_MAX_AGE_S",
    "KEYCRM_WEBHOOK_TOKEN",
    "SYNC_MODE",
    "DATABASE_PATH",
    "PRODUCT_FIELDS_FROM_WOO",
    "WOO_URL",
    "WOO_CONSUMER_KEY",
    "WOO_CONSUMER_SECRET",
    "BIND",
    "WEB_WORKERS",
    "LOG_LEVEL",
    "PUSH_DEBOUNCE_S",
    "PUSH_MAX_WAIT_S",
    "KEYCRM_BRIDGE_CLOCK",
    "SAFETY_BUFFER",
    "GUARD_SHARE",
    "GUARD_MIN_SKUS",
    "ORDER_POLL_INTERVAL_S",
    "SWEEP_PAGE_INTERVAL_S",
    "BUDGET_SHARE_OTHERS",
    "KEYCRM_WRITES_PER_MINUTE",
    "ORDER_INFLIGHT_TIMEOUT_S",
    "WOO_SKUMAP_REFRESH_S",
    "RETENTION_DAYS",
    # SYNC_MODE=erp (read in erp/settings.py)
    "ERP", "ERP_WAREHOUSE_MAP", "ERP_1C_USER", "ERP_1C_PASSWORD", "ERP_MAX_UPLOAD_MB", "ERP_FILE_LIMIT_MB",
    "ERP_ZERO_MISSING", "ERP_CREATE_MISSING", "PRODUCT_FIELDS_FROM_ERP", "ERP_PRICE_TYPE",
    "MOYSKLAD_TOKEN", "MOYSKLAD_BASE_URL", "MOYSKLAD_WEBHOOK_TOKEN", "MOYSKLAD_POLL_INTERVAL_S",
    "MOYSKLAD_RECONCILE_INTERVAL_S", "MOYSKLAD_UNITS_PER_REQUEST",
    "DISK_FREE_MIN_MB",
)


def _int(env: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(key, f"must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(key, f"must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(key, f"must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(key, f"must be between {lo} and {hi}, got {value}")
    return value


def _url(env: Mapping[str, str], key: str, default: str) -> str:
    raw = env.get(key, "").strip() or default
    if not raw:
        return ""
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(key, f"must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env

    secret = env.get("BRIDGE_SHARED_SECRET", "")
    if not secret:
        raise ConfigError("BRIDGE_SHARED_SECRET", "is required (the secret shared with the WordPress plugin)")
    if len(secret) < 16:
        raise ConfigError("BRIDGE_SHARED_SECRET", "must be at least 16 characters")

    api_key = env.get("KEYCRM_API_KEY", "").strip()
    if not api_key:
        raise ConfigError("KEYCRM_API_KEY", "is required (KeyCRM → Settings → API); "
                          "`keycrm-bridge run` without it starts the KeyCRM simulator")

    mode = env.get("SYNC_MODE", "keycrm").strip() or "keycrm"
    if mode not in MODES:
        raise ConfigError("SYNC_MODE", f"must be one of {', '.join(MODES)}, got {mode!r}")

    raw_wh = env.get("KEYCRM_WRITE_WAREHOUSE_ID", "").strip()
    if not raw_wh:
        raise ConfigError("KEYCRM_WRITE_WAREHOUSE_ID", "is required (the KeyCRM warehouse the bridge writes stock to)")
    write_wh = _int(env, "KEYCRM_WRITE_WAREHOUSE_ID", 1, 1, 2**31)

    raw_read = env.get("KEYCRM_READ_WAREHOUSE_IDS", "").strip()
    read_ids: tuple[int, ...] = (write_wh,)
    if raw_read:
        try:
            read_ids = tuple(int(p) for p in raw_read.split(",") if p.strip())
        except ValueError:
            raise ConfigError("KEYCRM_READ_WAREHOUSE_IDS",
                              f"must be comma-separated warehouse ids, got {raw_read!r}") from None
        if not read_ids or min(read_ids) < 1:
            raise ConfigError("KEYCRM_READ_WAREHOUSE_IDS", "must list at least one positive warehouse id")
        if write_wh not in read_ids:
            raise ConfigError("KEYCRM_READ_WAREHOUSE_IDS",
                              f"must include the write warehouse {write_wh} (its stock is part of sellable)")

    raw_fields = env.get("PRODUCT_FIELDS_FROM_WOO")
    if raw_fields is None:
        fields = frozenset(PRODUCT_FIELDS)
    elif raw_fields.strip().lower() in ("", "none"):
        fields = frozenset()
    else:
        fields = frozenset(p.strip() for p in raw_fields.split(",") if p.strip())
        unknown = fields - set(PRODUCT_FIELDS)
        if unknown:
            raise ConfigError("PRODUCT_FIELDS_FROM_WOO",
                              f"unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(PRODUCT_FIELDS)}")

    woo_url = _url(env, "WOO_URL", "")
    woo_key = env.get("WOO_CONSUMER_KEY", "").strip()
    woo_secret = env.get("WOO_CONSUMER_SECRET", "").strip()
    if woo_url and not (woo_key and woo_secret):
        missing = "WOO_CONSUMER_KEY" if not woo_key else "WOO_CONSUMER_SECRET"
        raise ConfigError(missing, "is required when WOO_URL is set (WooCommerce → Settings → Advanced → REST API)")

    log_level = (env.get("LOG_LEVEL", "INFO").strip() or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL", f"must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")

    bind = env.get("BIND", "127.0.0.1:8787").strip() or "127.0.0.1:8787"
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("BIND", f"must be HOST:PORT, got {bind!r}")

    db_path = env.get("DATABASE_PATH", "").strip() or "data/keycrm-bridge.sqlite3"
    webhook_token = env.get("KEYCRM_WEBHOOK_TOKEN", "").strip()
    if webhook_token and len(webhook_token) < 16:
        raise ConfigError("KEYCRM_WEBHOOK_TOKEN", "must be at least 16 characters (it is the webhook's only secret)")

    erp = None
    if mode == "erp":
        from .erp.settings import load_erp  # the ERP's keys matter only in its mode

        erp = load_erp(env, read_ids)
        if erp.product_fields & fields:
            raise ConfigError("PRODUCT_FIELDS_FROM_ERP", f"{', '.join(sorted(erp.product_fields & fields))} is also in "
                              "PRODUCT_FIELDS_FROM_WOO; each field has one owner (set PRODUCT_FIELDS_FROM_WOO too)")

    return Settings(
        shared_secret=secret,
        keycrm_api_key=api_key,
        keycrm_base_url=_url(env, "KEYCRM_BASE_URL", DEFAULT_KEYCRM_URL),
        write_warehouse_id=write_wh,
        read_warehouse_ids=read_ids,
        sync_mode=mode,
        rate_per_minute=_int(env, "KEYCRM_RATE_PER_MINUTE", 60, 1, 6000),
        database_path=db_path,
        product_fields_from_woo=fields,
        woo_url=woo_url,
        woo_consumer_key=woo_key,
        woo_consumer_secret=woo_secret,
        bind=bind,
        web_workers=_int(env, "WEB_WORKERS", 2, 1, 64),
        log_level=log_level,
        keycrm_timeout_s=_float(env, "KEYCRM_TIMEOUT_S", 30.0, 1.0, 300.0),
        stock_max_age_s=_float(env, "KEYCRM_STOCK_MAX_AGE_S", 3600.0, 0.0, 7 * 86400.0),
        push_debounce_s=_float(env, "PUSH_DEBOUNCE_S", 0.3, 0.0, 60.0),
        push_max_wait_s=_float(env, "PUSH_MAX_WAIT_S", 1.5, 0.0, 600.0),
        webhook_token=webhook_token,
        clock_spec=env.get("KEYCRM_BRIDGE_CLOCK", "").strip(),
        safety_buffer=_float(env, "SAFETY_BUFFER", 0.0, 0.0, 1e6),
        guard_share=_float(env, "GUARD_SHARE", 0.2, 0.0, 1.0),
        guard_min_skus=_int(env, "GUARD_MIN_SKUS", 10, 1, 10**7),
        order_poll_interval_s=_float(env, "ORDER_POLL_INTERVAL_S", 10.0, 1.0, 3600.0),
        sweep_page_interval_s=_float(env, "SWEEP_PAGE_INTERVAL_S", 1.0, 0.0, 3600.0),
        budget_share_others=_float(env, "BUDGET_SHARE_OTHERS", 0.1, 0.0, 0.8),
        keycrm_writes_per_minute=_int(env, "KEYCRM_WRITES_PER_MINUTE", 20, 2, 6000),
        inflight_timeout_s=_float(env, "ORDER_INFLIGHT_TIMEOUT_S", 1800.0, 10.0, 7 * 86400.0),
        skumap_refresh_s=_float(env, "WOO_SKUMAP_REFRESH_S", 300.0, 0.0, 86400.0),
        retention_days=_float(env, "RETENTION_DAYS", 14.0, 1.0, 3650.0),
        erp=erp,
        disk_free_min_mb=_float(env, "DISK_FREE_MIN_MB", 100.0, 0.0, 1e9),
    )
