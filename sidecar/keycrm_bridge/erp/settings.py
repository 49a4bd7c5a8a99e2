"""The ERP's settings (``SYNC_MODE=erp``), checked at start-up like every other key.

``ERP_WAREHOUSE_MAP`` names, for each ERP warehouse, the KeyCRM warehouse whose ``quantity`` it
becomes: ``main-guid:1,shop-guid:1,*:2`` (several may sum into one; ``*`` is stock the ERP gives
without a warehouse). Empty: everything sums into ``KEYCRM_WRITE_WAREHOUSE_ID``. Every KeyCRM
warehouse of the map must count for sellable (``KEYCRM_READ_WAREHOUSE_IDS``), or WooCommerce would
never see what the ERP wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import ConfigError, _float, _int, _url

ERPS = ("1c", "moysklad")
ERP_FIELDS = ("name", "price")
DEFAULT_MOYSKLAD_URL = "https://api.moysklad.ru/api/remap/1.2"
ANY = "*"


@dataclass(frozen=True)
class ErpSettings:
    erp: str
    warehouse_map: tuple[tuple[str, int], ...]
    onec_user: str = ""
    onec_password: str = ""
    max_upload_mb: int = 512
    file_limit_mb: int = 8
    zero_missing: bool = False
    create_missing: bool = False
    product_fields: frozenset[str] = frozenset()
    price_type: str = ""
    moysklad_token: str = ""
    moysklad_url: str = DEFAULT_MOYSKLAD_URL
    moysklad_webhook_token: str = ""
    moysklad_poll_s: float = 60.0
    moysklad_reconcile_s: float = 86400.0
    moysklad_units_per_request: int = 4

    def keycrm_warehouse(self, erp_warehouse: str, default: int) -> int | None:
        """The KeyCRM warehouse this ERP warehouse sums into; None: not mapped (not counted)."""
        if not self.warehouse_map:
            return default
        key = erp_warehouse or ANY
        for k, v in self.warehouse_map:
            if k == key:
                return v
        return None

    def keycrm_warehouses(self, default: int) -> list[int]:
        return sorted({v for _, v in self.warehouse_map}) if self.warehouse_map else [default]


def _bool(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(key, f"must be true or false, got {raw!r}")


def _map(env: Mapping[str, str], read_ids: tuple[int, ...]) -> tuple[tuple[str, int], ...]:
    raw = env.get("ERP_WAREHOUSE_MAP", "").strip()
    out: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        erp_wh, sep, kc = part.rpartition(":")
        if not sep or not erp_wh.strip() or not kc.strip().isdigit():
            raise ConfigError("ERP_WAREHOUSE_MAP", f"each entry is ERP_WAREHOUSE:KEYCRM_WAREHOUSE_ID, got {part!r}")
        if any(k == erp_wh.strip() for k, _ in out):
            raise ConfigError("ERP_WAREHOUSE_MAP", f"ERP warehouse {erp_wh.strip()!r} is mapped twice")
        kc_id = int(kc)
        if kc_id not in read_ids:
            raise ConfigError("ERP_WAREHOUSE_MAP", f"KeyCRM warehouse {kc_id} is not in KEYCRM_READ_WAREHOUSE_IDS "
                              f"{','.join(map(str, read_ids))}: what the ERP puts there would never reach the shop")
        out.append((erp_wh.strip(), kc_id))
    return tuple(out)


def load_erp(env: Mapping[str, str], read_ids: tuple[int, ...]) -> ErpSettings:
    erp = env.get("ERP", "").strip().lower()
    if erp not in ERPS:
        raise ConfigError("ERP", f"SYNC_MODE=erp needs ERP=1c or ERP=moysklad, got {erp!r}")
    user, password = env.get("ERP_1C_USER", "").strip(), env.get("ERP_1C_PASSWORD", "")
    if erp == "1c":
        if not user:
            raise ConfigError("ERP_1C_USER", "is required with ERP=1c (the login entered in 1C's exchange settings)")
        if len(password) < 12:
            raise ConfigError("ERP_1C_PASSWORD", "must be at least 12 characters (it guards the stock of the shop)")
    token = env.get("MOYSKLAD_TOKEN", "").strip()
    if erp == "moysklad" and not token:
        raise ConfigError("MOYSKLAD_TOKEN", "is required with ERP=moysklad (MoySklad → Settings → Tokens)")
    hook = env.get("MOYSKLAD_WEBHOOK_TOKEN", "").strip()
    if hook and len(hook) < 16:
        raise ConfigError("MOYSKLAD_WEBHOOK_TOKEN", "must be at least 16 characters (it is the webhook's only secret)")
    raw_fields = env.get("PRODUCT_FIELDS_FROM_ERP", "").strip().lower()
    fields = frozenset(p.strip() for p in raw_fields.split(",") if p.strip() and p.strip() != "none")
    if fields - set(ERP_FIELDS):
        raise ConfigError("PRODUCT_FIELDS_FROM_ERP",
                          f"unknown field(s) {', '.join(sorted(fields - set(ERP_FIELDS)))}; allowed: name, price")
    return ErpSettings(
        erp=erp,
        warehouse_map=_map(env, read_ids),
        onec_user=user,
        onec_password=password,
        max_upload_mb=_int(env, "ERP_MAX_UPLOAD_MB", 512, 1, 16384),
        file_limit_mb=_int(env, "ERP_FILE_LIMIT_MB", 8, 1, 512),
        zero_missing=_bool(env, "ERP_ZERO_MISSING"),
        create_missing=_bool(env, "ERP_CREATE_MISSING"),
        product_fields=fields,
        price_type=env.get("ERP_PRICE_TYPE", "").strip(),
        moysklad_token=token,
        moysklad_url=_url(env, "MOYSKLAD_BASE_URL", DEFAULT_MOYSKLAD_URL),
        moysklad_webhook_token=hook,
        moysklad_poll_s=_float(env, "MOYSKLAD_POLL_INTERVAL_S", 60.0, 0.0, 86400.0),
        moysklad_reconcile_s=_float(env, "MOYSKLAD_RECONCILE_INTERVAL_S", 86400.0, 60.0, 7 * 86400.0),
        moysklad_units_per_request=_int(env, "MOYSKLAD_UNITS_PER_REQUEST", 4, 1, 45),
    )
