"""Nothing is written before it was reviewed: the first-sync approval.

The live sync writes stock only for a *scope* the owner has approved: the sync mode together with
the KeyCRM account (its API URL and a fingerprint of the key). The first start, and the first after
a change of ``SYNC_MODE`` or of the account, finds no approval for its scope; until a full resync is
applied (wp-admin "Review and start", ``keycrm-bridge resync``, ``POST /v1/resync``) the worker only
reads both sides: KeyCRM's sweep, webhooks and orders fill the ledger, plugin events wait in the
queue, and status says why nothing moves. Applying the resync is the approval: it writes what the
owner saw in the comparison and records the scope.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .config import Settings
from .store import Store

META_KEY = "first_sync_approval"


def scope(settings: Settings) -> dict[str, str]:
    account = hashlib.sha256(f"{settings.keycrm_base_url}\n{settings.keycrm_api_key}".encode()).hexdigest()[:16]
    return {"mode": settings.sync_mode, "account": account}


def approved(store: Store, settings: Settings) -> bool:
    saved = store.get_meta(META_KEY)
    return bool(saved) and {k: saved.get(k) for k in ("mode", "account")} == scope(settings)


def approve(store: Store, settings: Settings, now: float, by: str, job_id: str | None = None) -> None:
    store.set_meta(META_KEY, {**scope(settings), "at": now, "by": by, "job": job_id})


def state(store: Store, settings: Settings) -> dict[str, Any]:
    """For status: approved or not, since when, and in plain words why nothing is written yet."""
    saved = store.get_meta(META_KEY) or {}
    ok = approved(store, settings)
    reason = None
    if not ok:
        if not saved:
            reason = "first sync: review the comparison and apply it (a full resync) to start writing stock"
        elif saved.get("mode") != settings.sync_mode:
            reason = (f"SYNC_MODE changed from {saved.get('mode')} to {settings.sync_mode}: review the comparison"
                      " and apply it (a full resync) to start writing stock")
        else:
            reason = ("the KeyCRM account (API URL or key) changed: review the comparison and apply it"
                      " (a full resync) to start writing stock")
    return {"approved": ok, "approved_at": saved.get("at") if ok else None, "by": saved.get("by") if ok else None,
            "waiting_reason": reason}
