"""``doctor``'s ERP check: the warehouse map against what the ERP sent and what KeyCRM has."""

from __future__ import annotations

import json
from typing import Any

from ..config import Settings
from ..store import Store

NAME = "ERP warehouse map"


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
