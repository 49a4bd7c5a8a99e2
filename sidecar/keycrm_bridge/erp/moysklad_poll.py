"""MoySklad into the ERP stage: the webhook as a doorbell, the ``changedSince`` poll, the daily full read.

A stock webhook only rings: its ``reportUrl`` is read with our own token (and only if it is an
address of the configured API), so a forged one costs a budgeted read and never sets stock. The
poll asks for what changed since its last look minus an overlap (MoySklad keeps ``changedSince``
24 hours deep and in Moscow time; clocks differ), so nothing falls between two looks. The full
read (``/report/stock/bystore``) is a full package: it also finds what no change reported.
Every read is a job of the ERP stage, so status shows it like a 1C package.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from ..clock import Clock
from ..config import Settings
from .commerceml import Item, parse_quantity
from .governor import Governor
from .jobs import ErpStage, queue_job
from .moysklad import MoySkladClient

log = logging.getLogger("keycrm_bridge.erp.moysklad")

OVERLAP_S = 300.0          # re-read this much of the previous window: nothing falls between two looks
MAX_DELTA_AGE_S = 23 * 3600.0   # older than this, changedSince may not reach back: read everything
ASSORTMENT_REFRESH_S = 60.0     # an unknown id triggers a new look at the assortment at most this often
PREFIX = "moysklad:"


class MoySkladIntake:
    def __init__(self, stage: ErpStage, settings: Settings, clock: Clock, client: MoySkladClient | None = None) -> None:
        assert settings.erp is not None
        self.stage, self.erp, self.clock = stage, settings.erp, clock
        self.store, self.conn = stage.store, stage.conn
        self.client = client or MoySkladClient(self.erp.moysklad_url, self.erp.moysklad_token,
                                               Governor(settings.database_path, clock), clock,
                                               units_per_request=self.erp.moysklad_units_per_request)
        stage.handlers[PREFIX] = self.run
        stage.extra.append(self)

    def state(self) -> dict[str, Any]:
        return dict(self.store.get_meta("moysklad_state", {}) or {})

    def save(self, **kw: Any) -> None:
        self.store.set_meta("moysklad_state", {**self.state(), **kw})

    # -- what is due ----------------------------------------------------------------------------

    def tick(self) -> bool:
        if self.conn.execute("SELECT 1 FROM erp_jobs WHERE source = 'moysklad' AND status IN ('queued', 'running')"
                             ).fetchone():
            return False
        now = self.clock.now()
        st = self.state()
        kind = None
        if now - float(st.get("reconciled_at", 0)) >= self.erp.moysklad_reconcile_s:
            kind = "reconcile"
        elif self.conn.execute("SELECT 1 FROM moysklad_webhooks WHERE status = 'new' LIMIT 1").fetchone():
            kind = "webhook"
        elif self.erp.moysklad_poll_s > 0 and now - float(st.get("polled_at", 0)) >= self.erp.moysklad_poll_s:
            kind = "delta"
        if kind is None:
            return False
        queue_job(self.conn, "moysklad", None, PREFIX + kind, now)
        return True

    # -- one read ----------------------------------------------------------------------------------

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        kind = job["filename"].removeprefix(PREFIX)
        started = self.clock.now()
        st = self.state()
        if kind == "delta" and started - float(st.get("delta_to", 0)) > MAX_DELTA_AGE_S:
            kind = "reconcile"  # too long since the last look for changedSince to reach back
        hooks: list[str] = []
        if kind == "reconcile":
            self.refresh_assortment()
            rows: Iterable[dict[str, Any]] = self.client.stock_by_store()
        elif kind == "webhook":
            pending = self.conn.execute("SELECT request_id, report_url FROM moysklad_webhooks WHERE status = 'new'"
                                        " ORDER BY received_at LIMIT 20").fetchall()
            collected: list[dict[str, Any]] = []
            for request_id, url in pending:
                hooks.append(request_id)
                if self.client.owns(url):
                    collected += self.client.current_stock(url=url)
                else:
                    log.warning("MoySklad webhook names a foreign reportUrl; ignored", extra={"request_id": request_id})
            rows = collected
        else:
            rows = self.client.current_stock(changed_since=float(st.get("delta_to", started - 3600)) - OVERLAP_S)
        rows = list(rows)
        self._learn_unknown(rows)
        report = self.stage.intake.stage(job["id"], self.items(rows), started).as_dict()
        full = kind == "reconcile"
        report.update(kind="offers", changes_only=not full, read=kind, webhooks=len(hooks))
        report.update(self.stage.commit(job["id"], job["id"], report, merge=not full))
        if full:
            report.update(self.stage.handle_missing(job["id"]))
            self.save(reconciled_at=started, delta_to=started)
        else:
            self.save(polled_at=started, **({"delta_to": started} if kind == "delta" else {}))
        if hooks:
            marks = ",".join("?" * len(hooks))
            self.conn.execute(f"UPDATE moysklad_webhooks SET status = 'done', job_id = ? WHERE request_id IN ({marks})",
                              (job["id"], *hooks))
        return report

    def items(self, rows: list[dict[str, Any]]) -> Iterator[Item]:
        per: dict[str, dict[str, Decimal]] = defaultdict(dict)
        bad: dict[str, str] = {}
        for r in rows:
            aid, store = str(r.get("assortmentId") or ""), str(r.get("storeId") or "")
            if not aid or not store:
                continue
            try:
                per[aid][store] = parse_quantity(str(r.get("stock") if r.get("stock") is not None else 0))
            except ValueError as exc:
                bad[aid] = f"unreadable figure: {exc}"
        for aid, stock in per.items():
            yield Item(guid=aid, sku=None, stock=stock, problem=bad.get(aid))

    def _learn_unknown(self, rows: list[dict[str, Any]]) -> None:
        ids = {str(r.get("assortmentId")) for r in rows if r.get("assortmentId")}
        if not ids:
            return
        known = self.stage.intake.map.lookup(ids)
        if len(known) < len(ids) and self.clock.now() - float(self.state().get("assortment_at", 0)) \
                >= ASSORTMENT_REFRESH_S:
            self.refresh_assortment()

    def refresh_assortment(self) -> int:
        """Assortment id → SKU (``article``, else ``code``), names and sale prices, into the GUID map."""
        now = self.clock.now()
        pairs: list[tuple[str, str, str | None]] = []
        n = 0
        for row in self.client.assortment():
            sku = (row.get("article") or row.get("code") or "").strip()
            if row.get("id") and sku:
                pairs.append((str(row["id"]), sku, row.get("name")))
            n += 1
            if len(pairs) >= 500:
                self.stage.intake.map.learn(pairs, now)
                pairs = []
        if pairs:
            self.stage.intake.map.learn(pairs, now)
        self.save(assortment_at=now, assortment_items=n)
        return n


def attach_moysklad(stage: ErpStage, settings: Settings, clock: Clock) -> MoySkladIntake | None:
    if settings.erp is None or settings.erp.erp != "moysklad":
        return None
    return MoySkladIntake(stage, settings, clock)
