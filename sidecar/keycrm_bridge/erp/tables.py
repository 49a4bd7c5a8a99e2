"""The ERP intake's own tables, in the one SQLite file (opened through ``store.connect``).

* ``erp_guid_map``  — the ERP's item id (``product#variant``) → SKU, kept across packages so that
  files carrying only ids (``rests___*.xml``, MoySklad's reports) find their SKU, and a renamed
  SKU follows its item instead of leaving an orphan;
* ``erp_stock``     — the ERP's latest on-hand per SKU and ERP warehouse (the truth for quantity);
* ``erp_applied``   — what the bridge last wrote to KeyCRM per SKU and KeyCRM warehouse;
* ``erp_fields``    — product data (name, price) the ERP wants in KeyCRM, and what was sent;
* ``erp_set_aside`` — items that could not be used, with the reason (listed, never applied);
* ``erp_jobs``      — one row per package to read (a 1C file, a MoySklad report), its outcome;
* ``erp_to_read``   — SKUs written to KeyCRM that the mirror does not know yet (read, then followed);
* ``erp_stage``     — rows of a package being read (SQLite, not memory, holds a big package);
* ``moysklad_webhooks`` — MoySklad's stock webhooks by ``requestId`` (a retry is the same row);
* ``erp_exchanges``, ``erp_chunks`` — the 1C dialogue: sessions and every appended, checksummed chunk.
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS erp_set_aside (
    key TEXT PRIMARY KEY,
    sku TEXT,
    guid TEXT,
    reason TEXT NOT NULL,
    job_id INTEGER,
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


def ensure(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
