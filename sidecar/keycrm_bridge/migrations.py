"""The store's schema, versioned: ordered migrations (sqlite-utils' ``Migrations``), applied on open.

Release 0.1.0 made its tables with ``CREATE TABLE IF NOT EXISTS`` only; migration 0001 is exactly
that schema, so a 0.1.0 database and a new one both start from it, and every later change of a
table is a new migration below, never an edit of an earlier one. Every process that opens the
store (gunicorn workers, the worker, the CLI) applies what is pending, one at a time under a file
lock, so two processes starting together never apply the same migration twice.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("keycrm-bridge")


def _statements(script: str) -> list[str]:
    # executescript() would commit the migration's transaction; run the statements one by one.
    return [s.strip() for s in script.split(";") if s.strip()]


@MIGRATIONS(name="0001_release_0_1_0")
def _release_0_1_0(db: sqlite_utils.Database) -> None:
    from .ledger import SCHEMA as LEDGER_SCHEMA
    from .store import SCHEMA as STORE_SCHEMA

    for statement in _statements(STORE_SCHEMA) + _statements(LEDGER_SCHEMA):
        db.execute(statement)


@MIGRATIONS(name="0002_quarantine")
def _quarantine(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        stage TEXT NOT NULL,
        key TEXT NOT NULL,
        sku TEXT,
        reason TEXT NOT NULL,
        payload TEXT NOT NULL,
        first_at REAL NOT NULL,
        last_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        status TEXT NOT NULL DEFAULT 'held',
        UNIQUE (stage, key))""")


@MIGRATIONS(name="0003_sku_aliases")
def _sku_aliases(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE sku_aliases (
        sku TEXT PRIMARY KEY,
        keycrm_sku TEXT NOT NULL,
        offer_id INTEGER NOT NULL,
        since REAL NOT NULL)""")


@MIGRATIONS(name="0004_erp")
def _erp(db: sqlite_utils.Database) -> None:
    """The ERP intake's tables (``SYNC_MODE=erp``):

    * ``erp_guid_map`` — the ERP's item id (``product#variant``) → SKU, kept across packages so that
      files carrying only ids (``rests___*.xml``, MoySklad's reports) find their SKU, and a renamed
      SKU follows its item instead of leaving an orphan;
    * ``erp_stock`` — the ERP's latest on-hand per SKU and ERP warehouse (the truth for quantity);
    * ``erp_applied`` — what the bridge last wrote to KeyCRM per SKU and KeyCRM warehouse;
    * ``erp_fields`` — product data (name, price) the ERP wants in KeyCRM, and what was sent;
    * ``erp_jobs`` — one row per package to read (a 1C file, a MoySklad report), its outcome;
    * ``erp_to_read`` — SKUs written to KeyCRM that the mirror does not know yet (read, then followed);
    * ``erp_stage`` — rows of a package being read (SQLite, not memory, holds a big package);
    * ``moysklad_webhooks`` — MoySklad's stock webhooks by ``requestId`` (a retry is the same row);
    * ``erp_exchanges``, ``erp_chunks`` — the 1C dialogue: sessions and every appended, checksummed chunk.

    Items the ERP sent that cannot be used go to the shared ``quarantine`` (stage ``erp``).
    ``IF NOT EXISTS``: development builds before this migration made these tables on first use.
    """
    for statement in _statements(ERP_SCHEMA):
        db.execute(statement)
    # Those builds kept unusable ERP items in a table of their own; the next package lists them again.
    db.execute("DROP TABLE IF EXISTS erp_set_aside")


ERP_SCHEMA = """
CREATE TABLE IF NOT EXISTS erp_guid_map (
    guid TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    name TEXT,
    source TEXT NOT NULL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS erp_guid_map_sku ON erp_guid_map (sku);
CREATE TABLE IF NOT EXISTS erp_stock (
    sku TEXT NOT NULL,
    erp_warehouse TEXT NOT NULL,
    quantity REAL NOT NULL,
    source TEXT NOT NULL,
    job_id INTEGER,
    exchange_id INTEGER,
    at REAL NOT NULL,
    PRIMARY KEY (sku, erp_warehouse)
);
CREATE TABLE IF NOT EXISTS erp_applied (
    sku TEXT NOT NULL,
    warehouse_id INTEGER NOT NULL,
    quantity REAL NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (sku, warehouse_id)
);
CREATE TABLE IF NOT EXISTS erp_fields (
    sku TEXT PRIMARY KEY,
    guid TEXT NOT NULL,
    wanted TEXT NOT NULL,
    sent TEXT NOT NULL DEFAULT '{}',
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS erp_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    exchange_id INTEGER,
    filename TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    kind TEXT,
    changes_only INTEGER,
    report TEXT NOT NULL DEFAULT '{}',
    message TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS erp_jobs_status ON erp_jobs (status, id);
CREATE TABLE IF NOT EXISTS erp_stage (
    job_id INTEGER NOT NULL,
    guid TEXT NOT NULL,
    sku TEXT NOT NULL,
    erp_warehouse TEXT,
    quantity REAL,
    name TEXT,
    price REAL
);
CREATE INDEX IF NOT EXISTS erp_stage_job ON erp_stage (job_id, sku);
CREATE INDEX IF NOT EXISTS erp_stage_guid ON erp_stage (job_id, guid);
CREATE TABLE IF NOT EXISTS erp_to_read (
    sku TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS moysklad_webhooks (
    request_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    report_url TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    job_id INTEGER
);
CREATE TABLE IF NOT EXISTS erp_exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cookie TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    uploaded_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS erp_chunks (
    exchange_id INTEGER NOT NULL,
    filename TEXT NOT NULL,
    seq INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (exchange_id, filename, seq)
);
"""
@MIGRATIONS(name="0005_sync_exclusions")
def _sync_exclusions(db: sqlite_utils.Database) -> None:
    # One row per SKU the plugin ever switched; ``excluded`` is the newest switch (by occurred_at).
    db.execute("""CREATE TABLE sync_exclusions (
        sku TEXT PRIMARY KEY,
        product_id INTEGER NOT NULL,
        excluded INTEGER NOT NULL,
        occurred_at REAL NOT NULL,
        changed_at REAL NOT NULL)""")


@MIGRATIONS(name="0006_sync_latency")
def _sync_latency(db: sqlite_utils.Database) -> None:
    # Histogram of change → write delays per direction (latency.py); ``total`` is kept on the +Inf row.
    db.execute("""CREATE TABLE sync_latency (
        direction TEXT NOT NULL,
        le REAL NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        total REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (direction, le))""")


@MIGRATIONS(name="0007_inbox_file")
def _inbox_file(db: sqlite_utils.Database) -> None:
    # The plugin's batches move to a file of their own (inbox.py), so that the API's commits never wait
    # for the worker's. The rows go over first and leave this file in this migration's transaction: a
    # crash in between leaves them in both, and expanding a batch twice stores its events once.
    from .inbox import Inbox

    path = next(r[2] for r in db.execute("PRAGMA database_list").fetchall() if r[1] == "main")
    inbox = Inbox(path or ":memory:")
    try:
        rows = db.execute("SELECT received_at, events, body FROM inbox ORDER BY id").fetchall()
        seen = db.execute("SELECT digest, received_at FROM inbox_seen").fetchall()
        if rows or seen:
            c = inbox.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany("INSERT INTO inbox (received_at, events, body) VALUES (?, ?, ?)", rows)
                c.executemany("INSERT OR IGNORE INTO inbox_seen (digest, received_at) VALUES (?, ?)", seen)
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
    finally:
        inbox.close()
    db.execute("DROP TABLE inbox")
    db.execute("DROP TABLE inbox_seen")


@MIGRATIONS(name="0008_dirty_mark_seq")
def _dirty_mark_seq(db: sqlite_utils.Database) -> None:
    """Dirty marks are numbered (ledger.py): a round clears only the marks it read, by number, never
    by time. One counter row numbers every mark; a hold keeps the counter at its start, so that a
    dismissal clears only the marks made before it. Marks left by an older release are number 0."""
    db.execute("ALTER TABLE ledger ADD COLUMN dirty_seq INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE TABLE ledger_mark_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)")
    db.execute("INSERT INTO ledger_mark_seq (id, seq) VALUES (1, 0)")
    db.execute("ALTER TABLE guard_holds ADD COLUMN mark_seq INTEGER")


@MIGRATIONS(name="0009_moysklad_governor")
def _moysklad_governor(db: sqlite_utils.Database) -> None:
    """The MoySklad rate governor's tables (erp/governor.py), shared by every process of the bridge:
    ``moysklad_units`` — one row per request started (its units, its process, whether it ended);
    ``moysklad_state`` — ``blocked_until`` after a 429. ``IF NOT EXISTS``: builds before this
    migration made them on first use, with this same schema."""
    for statement in _statements(MOYSKLAD_GOVERNOR_SCHEMA):
        db.execute(statement)


MOYSKLAD_GOVERNOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS moysklad_units (ts REAL NOT NULL, units INTEGER NOT NULL, pid INTEGER NOT NULL,
                                           done INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS moysklad_units_ts ON moysklad_units (ts);
CREATE TABLE IF NOT EXISTS moysklad_state (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""


@MIGRATIONS(name="0010_erp_properties")
def _erp_properties(db: sqlite_utils.Database) -> None:
    # A variant's characteristics (1C's <ХарактеристикиТовара>: colour, size) as KeyCRM's offer
    # ``properties`` JSON ([{name, value}]): staged with the package, kept with the item's id, and
    # sent when the bridge creates the variant in KeyCRM. NULL: the ERP named none.
    db.execute("ALTER TABLE erp_stage ADD COLUMN properties TEXT")
    db.execute("ALTER TABLE erp_guid_map ADD COLUMN properties TEXT")


@contextmanager
def _exclusive(path: str) -> Iterator[None]:
    if path in ("", ":memory:"):
        yield
        return
    with open(f"{path}.migrate.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def migrate(conn: sqlite3.Connection, path: str) -> list[str]:
    """Apply pending migrations; returns their names (empty when the schema is current)."""
    db = sqlite_utils.Database(conn)
    if not MIGRATIONS.pending(db):
        return []
    with _exclusive(path):
        names = [m.name for m in MIGRATIONS.pending(db)]
        MIGRATIONS.apply(db)
    return names


def applied(conn: sqlite3.Connection) -> list[str]:
    return [m.name for m in MIGRATIONS.applied(sqlite_utils.Database(conn))]


def pending(conn: sqlite3.Connection) -> list[str]:
    return [m.name for m in MIGRATIONS.pending(sqlite_utils.Database(conn))]
