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
