"""The resync job's tables and plan: what was read, what each SKU needs, and the report.

Everything lives in SQLite beside the rest of the bridge's state, never in Python memory: both
catalogues are streamed page by page into ``resync_kc`` / ``resync_woo``, the plan is built by SQL
grouping on the exact SKU plus one pass over it in chunks (``decide.decide`` per SKU), and the
report is streamed from ``resync_plan``. A job row holds the phase and a JSON cursor, which is the
checkpoint a restarted worker resumes from.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

from . import skuhealth
from .config import Settings
from .decide import decide, json_number
from .store import Store

PHASES = ("planning_keycrm", "planning_woo", "planned", "applying", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
ACTIONS = ("none", "update_woocommerce", "update_keycrm", "update_both", "create_keycrm")
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

REPORT_COLUMNS = ("sku", "action", "problems", "probable_match", "woo_product_ids", "woo_parent_id", "woo_stock",
                  "keycrm_offer_ids", "keycrm_product_id", "keycrm_sellable", "woo_target", "keycrm_target",
                  "woo_status", "keycrm_status", "error", "reason")


class AlreadyRunning(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"resync {job_id} is already running")
        self.job_id = job_id


def _num(v: float | None) -> float | int | None:
    return None if v is None else json_number(v)


class ResyncJobs:
    """The job rows and their plans, on one Store connection."""

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

    # -- the plan --------------------------------------------------------------------------------

    def build_plan(self, job: dict[str, Any], settings: Settings, ledger_rows: Any, inflight: Any,
                   chunk: int = 2000) -> dict[str, Any]:
        """Group both catalogues by exact SKU, decide each SKU, find lookalikes; returns the counts.

        ``ledger_rows(skus)`` and ``inflight(skus)`` are the ledger's lookups (agreed values and site
        orders KeyCRM does not show yet), called per chunk.
        """
        job_id = job["id"]
        c = self.conn
        with self.store.transaction():
            c.execute("DELETE FROM resync_plan WHERE job = ?", (job_id,))
            c.execute(_GROUP_SQL, {"job": job_id})
            c.execute(_EMPTY_WOO_SQL, {"job": job_id})
            c.execute(_EMPTY_KC_SQL, {"job": job_id})
        last = 0
        mode = job["mode"]
        while True:
            rows = c.execute(
                "SELECT n, sku, woo_items, woo_parents, woo_variations, woo_managed, woo_stock, kc_offers,"
                " kc_sellable, kc_q_write FROM resync_plan WHERE job = ? AND n > ? ORDER BY n LIMIT ?",
                (job_id, last, chunk)).fetchall()
            if not rows:
                break
            last = rows[-1]["n"]
            matched = [r["sku"] for r in rows if r["woo_items"] == 1 and r["kc_offers"] == 1 and r["sku"].strip()]
            known = ledger_rows(matched)
            held = inflight(matched)
            updates = []
            for r in rows:
                updates.append((*self._decide_row(r, mode, settings, known.get(r["sku"]), held.get(r["sku"], 0.0)),
                                job_id, r["n"]))
            with self.store.transaction() as t:
                t.executemany(
                    "UPDATE resync_plan SET key = ?, problems = ?, action = ?, woo_target = ?, kc_target = ?,"
                    " kc_new_q = ?, agreed = ?, reason = ?, woo_status = ?, kc_status = ? WHERE job = ? AND n = ?",
                    updates)
        with self.store.transaction() as t:
            t.execute(_LOOKALIKE_SQL, {"job": job_id})
            if job["create_missing"]:
                # Only a clean "exists in WooCommerce only": a lookalike is probably a typo of an
                # existing KeyCRM offer, and creating it would make the mess worse.
                t.execute("UPDATE resync_plan SET action = 'create_keycrm', kc_status = 'planned'"
                          " WHERE job = ? AND problems = ? AND woo_items = 1",
                          (job_id, skuhealth.ONLY_IN_WOOCOMMERCE))
        return self.counts(job_id)

    @staticmethod
    def _decide_row(r: sqlite3.Row, mode: str, settings: Settings, known: Any,
                    held: float) -> tuple[Any, ...]:
        sku = r["sku"]
        group = skuhealth.Group(sku=sku, woo_items=r["woo_items"], woo_parents=r["woo_parents"],
                                woo_variations=r["woo_variations"], woo_managed=bool(r["woo_managed"]),
                                kc_offers=r["kc_offers"])
        problems = skuhealth.problems_of(group)
        key = skuhealth.sku_key(sku) if sku.strip() else ""
        if not problems and held:
            problems = [skuhealth.ORDER_IN_FLIGHT]
        if problems:
            return key, ";".join(problems), "none", None, None, None, None, None, None, None
        woo, kc = r["woo_stock"], r["kc_sellable"]
        d = decide(mode, woo=woo, kc=kc, agreed=known.agreed if known else None,
                   buffer=settings.safety_buffer if mode in ("keycrm", "erp") else 0.0)
        woo_target = d.woo_target
        if woo_target is not None:
            woo_target = float(math.floor(woo_target))  # WooCommerce keeps whole units
            if woo is not None and woo_target == woo:
                woo_target = None
        kc_target = d.kc_target
        kc_new_q = None
        if kc_target is not None:
            kc_new_q = max(0.0, r["kc_q_write"] + (kc_target - kc))
        action = ("update_both" if woo_target is not None and kc_target is not None else
                  "update_woocommerce" if woo_target is not None else
                  "update_keycrm" if kc_target is not None else "none")
        return (key, "", action, woo_target, kc_target, kc_new_q, d.agreed, d.reason,
                "planned" if woo_target is not None else None, "planned" if kc_target is not None else None)

    def counts(self, job_id: str) -> dict[str, Any]:
        c = self.conn
        actions = {a: 0 for a in ACTIONS}
        actions.update({r[0]: r[1] for r in c.execute(
            "SELECT action, count(*) FROM resync_plan WHERE job = ? GROUP BY action", (job_id,))})
        sums = ", ".join(f"sum(instr(';' || problems || ';', ';{p};') > 0)" for p in skuhealth.PROBLEMS)
        row = c.execute(f"SELECT count(*), sum(problems = ''), sum(problems = '' AND action = 'none'), {sums}"
                        " FROM resync_plan WHERE job = ?", (job_id,)).fetchone()
        problems = {p: int(row[i + 3] or 0) for i, p in enumerate(skuhealth.PROBLEMS)}
        status: dict[str, int] = {}
        for side in ("woo", "kc"):
            for s, n in c.execute(f"SELECT {side}_status, count(*) FROM resync_plan WHERE job = ?"
                                  f" AND {side}_status IS NOT NULL GROUP BY {side}_status", (job_id,)):
                status[f"{'woocommerce' if side == 'woo' else 'keycrm'}_{s}"] = int(n)
        # clean: no problem (it may still be updated); same: no problem and nothing to change.
        return {"skus": int(row[0] or 0), "clean": int(row[1] or 0), "same": int(row[2] or 0),
                "actions": actions, "problems": problems,
                "writes": status}

    # -- report ------------------------------------------------------------------------------------

    def report_rows(self, job_id: str, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT * FROM resync_plan WHERE job = ? AND n > ? ORDER BY n LIMIT ?", (job_id, last, chunk)
            ).fetchall()
            if not rows:
                return
            last = rows[-1]["n"]
            for r in rows:
                yield {
                    "sku": r["sku"], "action": r["action"],
                    "problems": [p for p in r["problems"].split(";") if p],
                    "probable_match": r["probable_match"],
                    "woo_product_ids": [int(i) for i in (r["woo_ids"] or "").split(",") if i],
                    "woo_parent_id": r["woo_parent"], "woo_stock": _num(r["woo_stock"]),
                    "keycrm_offer_ids": [int(i) for i in (r["kc_ids"] or "").split(",") if i],
                    "keycrm_product_id": r["kc_product_id"], "keycrm_sellable": _num(r["kc_sellable"]),
                    "woo_target": _num(r["woo_target"]), "keycrm_target": _num(r["kc_target"]),
                    "woo_status": r["woo_status"], "keycrm_status": r["kc_status"], "error": r["error"],
                    "reason": r["reason"],
                }

    def report_json(self, job: dict[str, Any], status: dict[str, Any]) -> Iterator[str]:
        """The plan as one JSON document, streamed: {"job": status, "items": [...]}."""
        yield '{"job": ' + json.dumps(status, ensure_ascii=False) + ', "items": ['
        first = True
        for row in self.report_rows(job["id"]):
            yield ("" if first else ",\n") + json.dumps(row, ensure_ascii=False)
            first = False
        yield "]}\n"

    def report_csv(self, job: dict[str, Any]) -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(REPORT_COLUMNS)
        n = 0
        for row in self.report_rows(job["id"]):
            writer.writerow([";".join(str(x) for x in v) if isinstance(v, list) else ("" if v is None else v)
                             for v in (row["sku"], row["action"], row["problems"], row["probable_match"],
                                       row["woo_product_ids"], row["woo_parent_id"], row["woo_stock"],
                                       row["keycrm_offer_ids"], row["keycrm_product_id"], row["keycrm_sellable"],
                                       row["woo_target"], row["keycrm_target"], row["woo_status"],
                                       row["keycrm_status"], row["error"], row["reason"])])
            n += 1
            if n % 500 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()


# One row per distinct non-empty SKU from either side: emulates a full outer join on the SKU.
_GROUP_SQL = """
INSERT INTO resync_plan (job, n, sku, woo_ids, woo_id, woo_parent, woo_managed, woo_stock, woo_items, woo_parents,
                         woo_variations, kc_ids, kc_offer_id, kc_product_id, kc_sellable, kc_q_write, kc_r_write,
                         kc_offers)
WITH w AS (
    SELECT sku, group_concat(product_id) AS ids,
           max(CASE WHEN type != 'variable' THEN product_id END) AS pid,
           max(CASE WHEN type != 'variable' THEN parent_id END) AS parent,
           max(CASE WHEN type != 'variable' THEN manage_stock END) AS managed,
           max(CASE WHEN type != 'variable' THEN stock END) AS stock,
           sum(type != 'variable') AS items, sum(type = 'variable') AS parents, sum(type = 'variation') AS variations
    FROM resync_woo WHERE job = :job AND trim(sku) != '' GROUP BY sku),
k AS (
    SELECT sku, group_concat(offer_id) AS ids, max(offer_id) AS oid, max(product_id) AS pid,
           max(sellable) AS sellable, max(q_write) AS q_write, max(r_write) AS r_write, count(*) AS n
    FROM resync_kc WHERE job = :job AND trim(sku) != '' GROUP BY sku),
s AS (SELECT sku FROM w UNION SELECT sku FROM k)
SELECT :job, row_number() OVER (ORDER BY s.sku), s.sku, w.ids, w.pid, w.parent, w.managed, w.stock,
       coalesce(w.items, 0), coalesce(w.parents, 0), coalesce(w.variations, 0),
       k.ids, k.oid, k.pid, k.sellable, k.q_write, k.r_write, coalesce(k.n, 0)
FROM s LEFT JOIN w ON w.sku = s.sku LEFT JOIN k ON k.sku = s.sku
"""

# Items without a SKU cannot be grouped: one row each (a variable parent without one is normal).
_EMPTY_WOO_SQL = """
INSERT INTO resync_plan (job, n, sku, woo_ids, woo_id, woo_parent, woo_managed, woo_stock, woo_items,
                         woo_variations)
SELECT :job, (SELECT coalesce(max(n), 0) FROM resync_plan WHERE job = :job) + row_number() OVER (ORDER BY product_id),
       sku, product_id, product_id, parent_id, manage_stock, stock, 1, type = 'variation'
FROM resync_woo WHERE job = :job AND trim(sku) = '' AND type != 'variable'
"""

_EMPTY_KC_SQL = """
INSERT INTO resync_plan (job, n, sku, kc_ids, kc_offer_id, kc_product_id, kc_sellable, kc_q_write, kc_r_write,
                         kc_offers)
SELECT :job, (SELECT coalesce(max(n), 0) FROM resync_plan WHERE job = :job) + row_number() OVER (ORDER BY offer_id),
       sku, offer_id, offer_id, product_id, sellable, q_write, r_write, 1
FROM resync_kc WHERE job = :job AND trim(sku) = ''
"""

_LOOKALIKE_SQL = """
UPDATE resync_plan SET
    probable_match = (SELECT group_concat(p2.sku, ' | ') FROM resync_plan p2
                      WHERE p2.job = resync_plan.job AND p2.key = resync_plan.key AND p2.n != resync_plan.n),
    problems = CASE WHEN problems = '' THEN 'lookalike' ELSE problems || ';lookalike' END
WHERE job = :job AND key != '' AND key IN (
    SELECT key FROM resync_plan WHERE job = :job AND key != '' GROUP BY key HAVING count(*) > 1)
"""
