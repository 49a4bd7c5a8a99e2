"""The resync job's tables and rows: the job (phase, progress, the JSON cursor a restarted worker
resumes from) and the staging rows both catalogues are streamed into, page by page.

Everything lives in SQLite beside the rest of the bridge's state, never in Python memory. The plan
built from the staging rows is ``resync_plan.py``; the report streamed from it is ``resync_report.py``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from .config import Settings
from .store import Store

PHASES = ("planning_keycrm", "planning_woo", "planned", "applying", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
ACTIONS = ("none", "update_woocommerce", "update_keycrm", "update_both", "create_keycrm", "excluded")
KEEP_JOBS = 5  # plans of older jobs are deleted when a new one starts

SCHEMA = """
CREATE TABLE IF NOT EXISTS resync_jobs (
    id TEXT PRIMARY KEY,
    active INTEGER UNIQUE,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    dry_run INTEGER NOT NULL,
    create_missing INTEGER NOT NULL,
    mode TEXT NOT NULL,
    phase TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    cursor TEXT NOT NULL DEFAULT '{}',
    counts TEXT NOT NULL DEFAULT '{}',
    retry_at REAL NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    source TEXT NOT NULL DEFAULT 'api'
);
CREATE TABLE IF NOT EXISTS resync_kc (
    job TEXT NOT NULL,
    offer_id INTEGER NOT NULL,
    sku TEXT NOT NULL,
    product_id INTEGER,
    q_write REAL NOT NULL DEFAULT 0,
    r_write REAL NOT NULL DEFAULT 0,
    sellable REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job, offer_id)
);
CREATE INDEX IF NOT EXISTS resync_kc_sku ON resync_kc (job, sku);
CREATE TABLE IF NOT EXISTS resync_woo (
    job TEXT NOT NULL,
    product_id INTEGER NOT NULL,
    parent_id INTEGER NOT NULL,
    sku TEXT NOT NULL,
    type TEXT NOT NULL,
    manage_stock INTEGER NOT NULL,
    stock REAL,
    name TEXT NOT NULL,
    price TEXT,
    PRIMARY KEY (job, product_id)
);
CREATE INDEX IF NOT EXISTS resync_woo_sku ON resync_woo (job, sku);
CREATE TABLE IF NOT EXISTS resync_plan (
    job TEXT NOT NULL,
    n INTEGER NOT NULL,
    sku TEXT NOT NULL,
    key TEXT NOT NULL DEFAULT '',
    woo_ids TEXT,
    woo_id INTEGER,
    woo_parent INTEGER,
    woo_managed INTEGER,
    woo_stock REAL,
    kc_ids TEXT,
    kc_offer_id INTEGER,
    kc_product_id INTEGER,
    kc_sellable REAL,
    kc_q_write REAL,
    kc_r_write REAL,
    woo_items INTEGER NOT NULL DEFAULT 0,
    woo_parents INTEGER NOT NULL DEFAULT 0,
    woo_variations INTEGER NOT NULL DEFAULT 0,
    kc_offers INTEGER NOT NULL DEFAULT 0,
    action TEXT NOT NULL DEFAULT 'none',
    woo_target REAL,
    kc_target REAL,
    kc_new_q REAL,
    agreed REAL,
    problems TEXT NOT NULL DEFAULT '',
    probable_match TEXT,
    reason TEXT,
    woo_batch INTEGER,
    kc_batch INTEGER,
    create_batch INTEGER,
    woo_status TEXT,
    kc_status TEXT,
    error TEXT,
    PRIMARY KEY (job, n)
);
CREATE INDEX IF NOT EXISTS resync_plan_sku ON resync_plan (job, sku);
CREATE INDEX IF NOT EXISTS resync_plan_key ON resync_plan (job, key);
CREATE INDEX IF NOT EXISTS resync_plan_kc_batch ON resync_plan (job, kc_batch) WHERE kc_batch IS NOT NULL;
CREATE INDEX IF NOT EXISTS resync_plan_woo_batch ON resync_plan (job, woo_batch) WHERE woo_batch IS NOT NULL;
CREATE INDEX IF NOT EXISTS resync_plan_create ON resync_plan (job, create_batch) WHERE create_batch IS NOT NULL;
CREATE TABLE IF NOT EXISTS resync_batches (
    job TEXT NOT NULL,
    batch INTEGER NOT NULL,
    side TEXT NOT NULL,
    parent INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    items INTEGER NOT NULL,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    kc_product_id INTEGER,
    PRIMARY KEY (job, batch)
);
"""

class AlreadyRunning(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"resync {job_id} is already running")
        self.job_id = job_id


class JobRows:
    """The job rows and their staging rows, on one Store connection."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn: sqlite3.Connection = store.conn
        if not getattr(store, "_resync_schema", False):  # once per connection, not per request
            self.conn.executescript(SCHEMA)
            store._resync_schema = True  # type: ignore[attr-defined]

    # -- jobs ----------------------------------------------------------------------------------

    def create(self, *, dry_run: bool, create_missing: bool, mode: str, now: float, source: str = "api") -> dict:
        """Insert a job; raises AlreadyRunning (with the running job's id) when one is active.

        The unique ``active`` column makes this safe across gunicorn workers and the CLI: two
        starts at once cannot both insert an active row.
        """
        job_id = "r" + uuid.uuid4().hex[:15]
        try:
            with self.store.transaction() as c:
                c.execute(
                    "INSERT INTO resync_jobs (id, active, created_at, dry_run, create_missing, mode, phase, source)"
                    " VALUES (?, 1, ?, ?, ?, ?, 'planning_keycrm', ?)",
                    (job_id, now, int(dry_run), int(create_missing), mode, source))
        except sqlite3.IntegrityError:
            running = self.active()
            raise AlreadyRunning(running["id"] if running else "?") from None
        return self.get(job_id) or {}

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM resync_jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def active(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM resync_jobs WHERE active = 1").fetchone()
        return self._job(row) if row else None

    def latest(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM resync_jobs ORDER BY created_at DESC LIMIT 1").fetchone()
        return self._job(row) if row else None

    @staticmethod
    def _job(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["cursor"] = json.loads(d["cursor"])
        d["counts"] = json.loads(d["counts"])
        d["dry_run"] = bool(d["dry_run"])
        d["create_missing"] = bool(d["create_missing"])
        return d

    def update(self, job_id: str, **fields: Any) -> None:
        for key in ("cursor", "counts"):
            if key in fields:
                fields[key] = json.dumps(fields[key], separators=(",", ":"))
        sets = ", ".join(f"{k} = ?" for k in fields)
        # A cancelled job is frozen: a step that was running when it was cancelled cannot revive it.
        self.conn.execute(f"UPDATE resync_jobs SET {sets} WHERE id = ? AND phase != 'cancelled'",
                          (*fields.values(), job_id))

    def add_progress(self, c: sqlite3.Connection, job_id: str, done: int = 0, total: int = 0,
                     errors: int = 0) -> None:
        c.execute("UPDATE resync_jobs SET done = done + ?, total = total + ?, errors = errors + ? WHERE id = ?",
                  (done, total, errors, job_id))

    def cancel(self, job_id: str, now: float) -> bool:
        """Stop a running job where it is: what was written stays written, nothing more is.

        Returns False when the job had already finished."""
        cur = self.conn.execute("UPDATE resync_jobs SET phase = 'cancelled', active = NULL, finished_at = ?"
                                " WHERE id = ? AND active = 1", (now, job_id))
        return cur.rowcount > 0

    def finish(self, job_id: str, phase: str, now: float, error: str | None = None) -> None:
        current = self.get(job_id)
        if current is not None and current["phase"] == "cancelled":
            return  # cancelled while its last step ran: it stays cancelled (and approves nothing)
        fields: dict[str, Any] = {"phase": phase, "active": None, "finished_at": now}
        if error is not None:
            fields["last_error"] = error[:500]
        if phase == "done":
            self.conn.execute("UPDATE resync_jobs SET done = max(done, total) WHERE id = ?", (job_id,))
        self.update(job_id, **fields)

    def prune(self, keep_id: str) -> None:
        """Drop the staging rows of all but the newest jobs (their plans stay downloadable)."""
        old = [r[0] for r in self.conn.execute(
            "SELECT id FROM resync_jobs WHERE id != ? ORDER BY created_at DESC LIMIT -1 OFFSET ?",
            (keep_id, KEEP_JOBS - 1))]
        with self.store.transaction() as c:
            for table in ("resync_kc", "resync_woo"):
                c.execute(f"DELETE FROM {table} WHERE job != ?", (keep_id,))
            for job_id in old:
                for table in ("resync_plan", "resync_batches"):
                    c.execute(f"DELETE FROM {table} WHERE job = ?", (job_id,))

    # -- staging rows --------------------------------------------------------------------------

    def save_kc_stock(self, c: sqlite3.Connection, job_id: str, rows: list[dict[str, Any]],
                      settings: Settings) -> int:
        """``GET /offers/stocks?filter[details]=true`` rows: per offer the write warehouse's quantity
        and reserve and the sellable stock over the read warehouses."""
        out = []
        wh = settings.write_warehouse_id
        for item in rows:
            if item.get("id") is None:
                continue
            per = {int(w["id"]): (float(w.get("quantity") or 0), float(w.get("reserve") or 0))
                   for w in item.get("warehouse") or [] if isinstance(w, dict) and w.get("id") is not None}
            if not item.get("warehouse") and "quantity" in item:
                # No per-warehouse detail: everything is in the one warehouse the shop has.
                per = {wh: (float(item.get("quantity") or 0), float(item.get("reserve") or 0))}
            q, r = per.get(wh, (0.0, 0.0))
            sellable = sum(qq - rr for w_id, (qq, rr) in per.items() if w_id in settings.read_warehouse_ids)
            out.append((job_id, int(item["id"]), str(item.get("sku") or ""), q, r, sellable))
        c.executemany(
            "INSERT INTO resync_kc (job, offer_id, sku, q_write, r_write, sellable) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (job, offer_id) DO UPDATE SET sku = excluded.sku, q_write = excluded.q_write,"
            " r_write = excluded.r_write, sellable = excluded.sellable", out)
        return len(out)

    def save_kc_offers(self, c: sqlite3.Connection, job_id: str, rows: list[dict[str, Any]]) -> int:
        """``GET /offers`` rows: the product each offer belongs to (an offer without stock rows holds 0)."""
        out = [(job_id, int(o["id"]), str(o.get("sku") or ""), o.get("product_id"))
               for o in rows if o.get("id") is not None]
        c.executemany(
            "INSERT INTO resync_kc (job, offer_id, sku, product_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job, offer_id) DO UPDATE SET product_id = excluded.product_id", out)
        return len(out)

    def save_woo(self, c: sqlite3.Connection, job_id: str, items: list[dict[str, Any]], parent_id: int = 0) -> int:
        out = []
        for p in items:
            if p.get("id") is None:
                continue
            ptype = str(p.get("type") or ("variation" if parent_id else "simple"))
            managed = p.get("manage_stock") is True  # "parent" on a variation: not its own stock
            stock = p.get("stock_quantity") if managed else None
            out.append((job_id, int(p["id"]), int(p.get("parent_id") or parent_id or 0), str(p.get("sku") or ""),
                        "variation" if parent_id else ptype, int(managed),
                        float(stock) if stock is not None else None, str(p.get("name") or ""),
                        str(p.get("regular_price") or p.get("price") or "")))
        c.executemany(
            "INSERT OR REPLACE INTO resync_woo (job, product_id, parent_id, sku, type, manage_stock, stock, name,"
            " price) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", out)
        return len(out)

