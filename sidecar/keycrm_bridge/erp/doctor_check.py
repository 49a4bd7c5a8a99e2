"""``doctor``'s ERP checks: the ERP itself (a live call where there is one to make), and the
warehouse map against what the ERP sent and what KeyCRM has."""

from __future__ import annotations

import json
from typing import Any

from ..clock import Clock
from ..config import Settings
from ..errors import PermanentError, RetryableError
from ..store import Store

NAME = "ERP warehouse map"
EXCHANGE_PATH = "/v1/erp/1c/exchange"


def check_erp_connection(settings: Settings, clock: Clock, store: Store | None, timeout_s: float,
                         public_url: str) -> dict[str, Any]:
    """1C calls the bridge, so there is nothing to call: its credentials and the URL to give 1C are
    checked, and when it last came. MoySklad: one cheap authenticated request (its warehouse list,
    which also tells whether the map names warehouses MoySklad has)."""
    erp = settings.erp
    assert erp is not None
    if erp.erp == "1c":
        return _onec(settings, store, public_url, clock.now())
    from .governor import Governor
    from .moysklad import MoySkladClient

    client = MoySkladClient(erp.moysklad_url, erp.moysklad_token, Governor(settings.database_path, clock), clock,
                            units_per_request=erp.moysklad_units_per_request, timeout=timeout_s, attempts=1)
    try:
        stores = client.stores()
    except PermanentError as exc:
        if exc.status in (401, 403):
            return {"ok": False, "setting": "MOYSKLAD_TOKEN",
                    "message": f"MoySklad refused MOYSKLAD_TOKEN (HTTP {exc.status}): {exc}",
                    "fix": "create a token in MoySklad (Settings → Users → the user → Tokens, or the "
                           "integration's token) and set MOYSKLAD_TOKEN to it"}
        return {"ok": False, "setting": "MOYSKLAD_BASE_URL", "message": str(exc),
                "fix": "check MOYSKLAD_BASE_URL (https://api.moysklad.ru/api/remap/1.2)"}
    except RetryableError as exc:
        return {"ok": False, "setting": "MOYSKLAD_BASE_URL",
                "message": f"could not reach MoySklad at {erp.moysklad_url}: {exc}",
                "fix": "check the address and the network; the bridge retries by itself meanwhile"}
    known = {str(s.get("id")): str(s.get("name") or s.get("id")) for s in stores}
    unknown = [k for k, _ in erp.warehouse_map if k != "*" and k not in known]
    listed = ", ".join(f"{i} ({n})" for i, n in list(known.items())[:10])
    if unknown:
        return {"ok": True, "warning": True, "setting": "ERP_WAREHOUSE_MAP",
                "message": f"MoySklad accepted the token, but has no warehouse {', '.join(unknown)}; "
                           f"its warehouses: {listed}",
                "fix": "use MoySklad's warehouse ids in ERP_WAREHOUSE_MAP"}
    return {"ok": True, "message": f"MoySklad accepted MOYSKLAD_TOKEN; {len(known)} warehouse(s): {listed}"}


def _onec(settings: Settings, store: Store | None, public_url: str, now: float) -> dict[str, Any]:
    erp = settings.erp
    assert erp is not None
    where = (f"in 1C's exchange settings (\"Обмен с сайтом\"): address {public_url}{EXCHANGE_PATH}, "
             f"user {erp.onec_user!r}, the password of ERP_1C_PASSWORD")
    if erp.onec_user.lower() in erp.onec_password.lower() or len(set(erp.onec_password)) < 6:
        return {"ok": True, "warning": True, "setting": "ERP_1C_PASSWORD",
                "message": "ERP_1C_PASSWORD is easy to guess; anyone who knows it can set the shop's stock",
                "fix": "choose a long random password and enter the same in 1C"}
    last = None
    if store is not None:
        row = store.conn.execute("SELECT max(last_at) FROM erp_exchanges").fetchone()
        last = row[0] if row else None
    if last is None:
        return {"ok": True, "warning": True, "setting": "ERP_1C_USER",
                "message": f"1C calls the bridge, nothing to call from here; it has not come yet. Enter {where}",
                "fix": "start an exchange in 1C; a refusal shows its reason in 1C's exchange log"}
    return {"ok": True, "message": f"1C calls the bridge (nothing to call from here); last exchange "
                                   f"{max(0, int(now - last))} s ago. Its settings: {where}"}


def check_erp(settings: Settings, store: Store | None) -> dict[str, Any]:
    """A finding as a dict (``ok``, ``message``, ``fix``, ``warning``): doctor wraps it."""
    erp = settings.erp
    assert erp is not None
    mapped = {k for k, _ in erp.warehouse_map}
    seen: dict[str, str] = {}
    kc_known: set[int] = set()
    if store is not None:
        c = store.conn
        if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'erp_stock'").fetchone():
            seen = {w: w for (w,) in c.execute("SELECT DISTINCT erp_warehouse FROM erp_stock"
                                               " WHERE erp_warehouse != '*zeroed*'")}
            for (rep,) in c.execute("SELECT report FROM erp_jobs WHERE status = 'done' ORDER BY id DESC LIMIT 5"):
                seen.update(json.loads(rep or "{}").get("warehouses") or {})
        kc_known = {int(w) for (w,) in c.execute("SELECT DISTINCT warehouse_id FROM keycrm_stock")}
    if not erp.warehouse_map:
        where = ", ".join(sorted(n or "(no warehouse)" for n in seen.values())) or "every warehouse"
        return {"ok": True, "warning": len(seen) > 1,
                "message": f"no map: {where} add up into KeyCRM warehouse {settings.write_warehouse_id}",
                "fix": "set ERP_WAREHOUSE_MAP=ERP_ID:KEYCRM_ID,… to keep warehouses apart" if len(seen) > 1 else ""}
    unmapped = sorted(w for w in seen if (w or "*") not in mapped)
    unknown_kc = sorted({v for _, v in erp.warehouse_map} - kc_known) if kc_known else []
    problems = []
    if unmapped:
        problems.append("the ERP sends stock for warehouse(s) not in the map, which is not counted: "
                        + ", ".join(f"{w or '*'} ({seen[w]})" for w in unmapped[:10]))
    if unknown_kc:
        problems.append(f"KeyCRM shows no stock row on warehouse(s) {', '.join(map(str, unknown_kc))}")
    if problems:
        return {"ok": True, "warning": True, "message": "; ".join(problems),
                "fix": "add them to ERP_WAREHOUSE_MAP (ERP_ID:KEYCRM_ID) or check the KeyCRM ids"}
    pairs = ", ".join(f"{k} → {v}" for k, v in erp.warehouse_map)
    return {"ok": True, "message": f"{len(erp.warehouse_map)} ERP warehouse(s) mapped: {pairs}"}
