"""The ERP's side of the first-sync review (and of every resync's comparison) in ``SYNC_MODE=erp``.

The resync compares WooCommerce with KeyCRM; in erp mode the owner must also see what the ERP is
about to write to KeyCRM: per KeyCRM warehouse, the rows whose on-hand differs from the ERP's, the
rows already equal, SKUs KeyCRM's mirror does not know yet, and examples with both figures. The
same comparison the writes use (``Applier.diff``), read-only; kept per (resync, last ERP package)
so a review screen polling the job's status does not redo it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..clock import FakeClock
from ..config import Settings
from ..decide import json_number
from ..store import Store
from .apply import SLICE, Applier

EXAMPLES = 20


def erp_review(store: Store, settings: Settings, job_id: str, now: float) -> dict[str, Any]:
    assert settings.erp is not None
    source = settings.erp.erp
    c = store.conn
    latest = c.execute("SELECT max(id) FROM erp_jobs WHERE status = 'done' AND source = ?", (source,)).fetchone()[0]
    stamp = [job_id, latest]
    cached = store.get_meta("erp_review") or {}
    if cached.get("stamp") == stamp:
        return dict(cached["review"])
    applier = Applier(store, None, None, None, settings, FakeClock(now), source)  # type: ignore[arg-type]  # diff only reads
    skus = [r[0] for r in c.execute("SELECT DISTINCT sku FROM erp_stock WHERE source = ? ORDER BY sku", (source,))]
    to_write: Counter[int] = Counter()
    unknown: set[str] = set()
    unchanged = 0
    unmapped: Counter[str] = Counter()
    examples: list[tuple[str, int, float]] = []
    for start in range(0, len(skus), SLICE):
        rows, same, off_map = applier.diff(skus[start:start + SLICE])
        unchanged += same
        unmapped.update(off_map)
        for kc, items in rows.items():
            to_write[kc] += len(items)
            unknown.update(s for s, _, reserve in items if reserve is None)
            examples += [(s, kc, q) for s, q, _ in items[:EXAMPLES - len(examples)]]
    mirror = store.keycrm_stock([s for s, _, _ in examples])
    review = {
        "source": source, "skus": len(skus), "rows_to_write": sum(to_write.values()),
        "rows_to_write_by_warehouse": {str(k): v for k, v in sorted(to_write.items())},
        "rows_unchanged": unchanged, "skus_keycrm_not_read_yet": len(unknown),
        "unmapped_erp_warehouses": dict(unmapped),
        "waiting_for_review": bool(store.get_meta("erp_review_pending")),
        "examples": [{"sku": s, "keycrm_warehouse_id": kc, "erp_quantity": json_number(q),
                      "keycrm_quantity": _quantity(mirror, s, kc)} for s, kc, q in examples],
    }
    store.set_meta("erp_review", {"stamp": stamp, "review": review})
    return review


def _quantity(mirror: dict[str, dict[int, dict[str, Any]]], sku: str, kc: int) -> float | None:
    cell = (mirror.get(sku) or {}).get(kc)
    return None if cell is None else json_number(cell["quantity"])


def format_erp_review(review: dict[str, Any]) -> list[str]:
    by = ", ".join(f"warehouse {k}: {v}" for k, v in review["rows_to_write_by_warehouse"].items()) or "none"
    lines = [f"ERP ({review['source']}) → KeyCRM on hand: {review['rows_to_write']} row(s) to write ({by}), "
             f"{review['rows_unchanged']} already equal, over {review['skus']} SKUs"
             + (f"; {review['skus_keycrm_not_read_yet']} not yet read from KeyCRM"
                if review["skus_keycrm_not_read_yet"] else "")]
    for e in review["examples"][:10]:
        now = "unknown" if e["keycrm_quantity"] is None else f"{e['keycrm_quantity']:g}"
        lines.append(f"  {e['sku']} at KeyCRM warehouse {e['keycrm_warehouse_id']}: {now} → {e['erp_quantity']:g}")
    return lines
