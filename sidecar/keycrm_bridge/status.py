"""What the sidecar is doing, read from the store: for /v1/status, `keycrm-bridge status`, the plugin."""

from __future__ import annotations

from typing import Any

from . import approval, exclusions, reasons
from .clock import FakeClock
from .config import Settings
from .erp.report import erp_status
from .lanes import lane_states
from .ledger import Ledger
from .quarantine import Quarantine
from .store import Store


def build_status(store: Store, settings: Settings, now: float) -> dict[str, Any]:
    queue = store.queue_stats(now)
    unmatched = store.unmatched()
    ledger = Ledger(store)
    used = budget_used(store, now)
    return {
        "mode": settings.sync_mode,
        "first_sync": reasons.coded(approval.state(store, settings), "waiting_reason"),
        "queue_depth": queue["queue_depth"],
        "oldest_pending_age_s": queue["oldest_pending_age_s"],
        "changes": store.changes_by_status(),
        "last_keycrm_success_at": store.get_meta("last_keycrm_success_at"),
        "last_push_at": store.get_meta("last_push_at"),
        "last_pull_at": store.get_meta("last_pull_at"),
        "last_woocommerce_success_at": store.get_meta("last_pull_at"),
        "last_error": store.get_meta("last_error"),
        # Unmatched SKUs are only known once both catalogues were compared (a full sweep or resync).
        "compared": bool(store.get_meta("sweep_completed") or store.get_meta(approval.META_KEY)
                         or _resync_finished(store)),
        "unmatched_skus": [reasons.coded(u) for u in unmatched],
        "unmatched_count": len(unmatched),
        "excluded_skus": exclusions.listing(store.conn),
        "excluded_count": exclusions.count(store.conn),
        "budget": {
            "per_minute": settings.rate_per_minute,
            "used_last_minute": used,
            "left": max(0, settings.rate_per_minute - used),
        },
        "budget_used_last_minute": used,
        "events_received": store.count_events(),
        "woocommerce_configured": settings.has_woocommerce,
        "guard_holds": ledger.holds("held"),
        "in_flight_orders": len(ledger.open_inflight()),
        "dirty_skus": ledger.dirty_window()[0],
        "last_webhook_at": store.get_meta("last_webhook_at"),
        "orders_checked_at": store.get_meta("orders_checked_at"),
        "sweep": store.get_meta("sweep_completed"),
        "last_plugin_request": store.get_meta("last_plugin_request"),
        "erp": erp_status(store, settings, now) if settings.erp is not None else None,
        "quarantine": quarantine_summary(store, now),
        "stages": stages(store),
        "worker_heartbeat": store.get_meta("worker_heartbeat"),
    }


def quarantine_summary(store: Store, now: float, limit: int = 50) -> dict[str, Any]:
    q = Quarantine(store, FakeClock(now))  # (reads only: the clock is not used)
    return {"count": q.count(), "by_stage": q.counts(), "items": [reasons.coded(i) for i in q.items(limit)]}


def stages(store: Store) -> dict[str, dict[str, Any]]:
    """Each worker step's state (``last_ok_at``, ``last_error``, ``failures``), named by the step."""
    out: dict[str, dict[str, Any]] = {}
    for lane, state in lane_states(store).items():
        for step, st in (state.get("steps") or {}).items():
            out[step] = {"lane": lane, "beat_at": state.get("beat_at"), **st}
    return out


def budget_used(store: Store, now: float) -> int:
    """KeyCRM calls started in the last 60 s, from the table the shared budget keeps."""
    exists = store.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'keycrm_calls'").fetchone()
    if not exists:
        return 0
    return int(store.conn.execute("SELECT count(*) FROM keycrm_calls WHERE ts > ?", (now - 60,)).fetchone()[0])


def _resync_finished(store: Store) -> bool:
    exists = store.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'resync_jobs'").fetchone()
    return bool(exists and store.conn.execute("SELECT 1 FROM resync_jobs WHERE phase = 'done' LIMIT 1").fetchone())
