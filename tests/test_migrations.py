"""Upgrades keep data: a database written by release 0.1.0 (tests/fixtures/db-0.1.0.sql, made by that
release's own code) is opened by this one, migrated in order, and loses nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from keycrm_bridge import migrations
from keycrm_bridge.config import load_settings
from keycrm_bridge.events import changes_for
from keycrm_bridge.inbox import inbox_path
from keycrm_bridge.ledger import Ledger
from keycrm_bridge.status import build_status
from keycrm_bridge.store import Store
from keycrm_bridge.woo_skumap import SkuMap

FIXTURE = Path(__file__).parent / "fixtures" / "db-0.1.0.sql"
ALL = ["0001_release_0_1_0", "0002_quarantine", "0003_sku_aliases", "0004_erp", "0005_sync_exclusions", "0006_sync_latency",
       "0007_inbox_file", "0008_dirty_mark_seq", "0009_moysklad_governor",
       "0010_erp_properties"]
# The MoySklad governor's tables as builds before migration 0009 made them on first use (frozen).
GOVERNOR_FIRST_USE = """
CREATE TABLE IF NOT EXISTS moysklad_units (ts REAL NOT NULL, units INTEGER NOT NULL, pid INTEGER NOT NULL,
                                           done INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS moysklad_units_ts ON moysklad_units (ts);
CREATE TABLE IF NOT EXISTS moysklad_state (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""


def old_database(tmp_path: Path) -> Path:
    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    return db


def contents(db: Path, columns: dict[str, list[str]] | None = None) -> dict[str, list[tuple]]:
    """Every table's rows; with ``columns``, only those columns (an upgrade may add some)."""
    conn = sqlite3.connect(db)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                         " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_%' ESCAPE '\\'")]
    cols = {t: ", ".join(columns[t]) if columns and t in columns else "*" for t in tables}
    out = {t: sorted(conn.execute(f"SELECT {cols[t]} FROM {t}").fetchall(), key=repr) for t in tables}
    conn.close()
    return out


def columns_of(db: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(db)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    out = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    conn.close()
    return out


def test_a_0_1_0_database_is_migrated_with_nothing_lost(tmp_path):
    db = old_database(tmp_path)
    before, old_columns = contents(db), columns_of(db)
    assert before["events"] and before["inbox"] and before["ledger"] and before["woo_skus"], "fixture is empty"
    store = Store(str(db))
    assert migrations.applied(store.conn) == ALL
    assert migrations.pending(store.conn) == []
    after = contents(db, old_columns)
    # The batches not yet expanded (and the digests that refuse their replays) moved to the inbox file.
    moved = contents(Path(inbox_path(str(db))))
    assert "inbox" not in after and "inbox_seen" not in after
    assert [r[1:] for r in moved["inbox"]] == [r[1:] for r in before["inbox"]]
    assert moved["inbox_seen"] == before.get("inbox_seen", [])
    for table, rows in before.items():
        if table not in ("inbox", "inbox_seen"):
            assert after[table] == rows, f"{table} changed in the upgrade"
    assert after["quarantine"] == []
    # The old data works with the new code: the batch 0.1.0 had not expanded yet, the hold, the map.
    settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 20, "KEYCRM_API_KEY": "k",
                              "KEYCRM_WRITE_WAREHOUSE_ID": "1", "SYNC_MODE": "two-way",
                              "DATABASE_PATH": str(db)})
    assert store.expand_inbox(lambda ev: changes_for(ev, settings)) == (2, 0)
    status = build_status(store, settings, 1_790_000_000.0)
    assert [h["skus"] for h in status["guard_holds"]] == [["OLD-2"]]
    assert status["unmatched_skus"][0]["sku"] == "GHOST-1" and status["quarantine"]["count"] == 0
    assert Ledger(store).rows(["OLD-0"])["OLD-0"].agreed == 10.0
    assert SkuMap(str(db)).get("OLD-0").product_id == 100
    store.close()


def test_dirty_marks_left_by_0_1_0_are_cleared_only_where_unchanged(tmp_path):
    """0.1.0's marks carry no number (0 after the upgrade): a round that read them clears them, and a
    mark made after its read, stamped with an older time, stays. 0.1.0's hold is dismissed as it was."""
    store = Store(str(old_database(tmp_path)))
    ledger = Ledger(store)
    read = ledger.dirty()
    assert read == {"OLD-0": 0, "OLD-1": 0}
    ledger.observe_woo([{"id": "after-read", "sku": "OLD-1", "occurred_at": 1.0, "cause": "manual",
                         "stock_quantity": 5}], 1.0, two_way=False)
    assert ledger.clean(read, read) == 1
    assert ledger.dirty() == {"OLD-1": 1}, "the mark made after the read was cleared"
    # (The fixture's hold names a SKU without a ledger row; 0.1.0's hold() would have made it so.)
    store.conn.execute("INSERT INTO ledger (sku, dirty_since, dirty_touch, hold) VALUES ('OLD-2', 1.0, 1.0, 'guard:1')")
    ledger.release_hold(1, 2.0, "dismissed")
    assert tuple(store.conn.execute("SELECT hold, dirty_since FROM ledger WHERE sku = 'OLD-2'").fetchone()) == (None, None)
    store.close()


def test_an_upgraded_0_1_0_database_takes_erp_packages(tmp_path):
    """SYNC_MODE=erp switched on over an upgraded old file: the ERP's tables came with the migration."""
    from keycrm_bridge.erp.guidmap import GuidMap
    from keycrm_bridge.erp.intake import Intake

    db = old_database(tmp_path)
    store = Store(str(db))
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"erp_guid_map", "erp_stock", "erp_jobs", "erp_stage", "erp_exchanges", "moysklad_webhooks"} <= tables
    intake = Intake(store, "1c")
    from keycrm_bridge.erp.commerceml import Item
    report = intake.stage(1, [Item("g1", "OLD-0", stock={"wh": 1}), Item("g2", None, stock={"wh": 2}),
                              Item("g3#v", "OLD-V", stock={"wh": 1}, properties=[("Колір", "Синій")])], 1.0)
    assert report.staged == 2 and report.set_aside == {"no SKU": 1}
    intake.commit(1, 1.0)
    assert GuidMap(store.conn, "1c").lookup(["g1"]) == {"g1": "OLD-0"}
    assert store.conn.execute("SELECT properties FROM erp_guid_map WHERE guid = 'g3#v'").fetchone()[0] == \
        '[{"name":"Колір","value":"Синій"}]'   # (column from migration 0010)
    assert [tuple(r) for r in store.conn.execute("SELECT stage, sku FROM quarantine")] == [("erp", None)]
    store.close()


def test_a_development_database_with_erp_tables_made_on_first_use_keeps_them(tmp_path):
    """Builds before the ERP migration made its tables on first use (and kept set-aside items apart):
    the migration keeps what they hold and leaves one list of set-aside items, the quarantine."""
    db = old_database(tmp_path)
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE erp_guid_map (guid TEXT PRIMARY KEY, sku TEXT NOT NULL, name TEXT, source TEXT NOT NULL,
                                   seen_at REAL NOT NULL);
        INSERT INTO erp_guid_map VALUES ('g-old', 'OLD-0', 'Old item', '1c', 1.0);
        CREATE TABLE erp_set_aside (key TEXT PRIMARY KEY, sku TEXT, guid TEXT, reason TEXT NOT NULL,
                                    job_id INTEGER, at REAL NOT NULL);
        INSERT INTO erp_set_aside VALUES ('1c|g-x', NULL, 'g-x', 'no SKU', 1, 1.0);""")
    conn.close()
    store = Store(str(db))
    assert migrations.applied(store.conn) == ALL
    assert [tuple(r) for r in store.conn.execute("SELECT guid, sku FROM erp_guid_map")] == [("g-old", "OLD-0")]
    assert not store.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'erp_set_aside'").fetchone()
    store.close()


def governor_schema(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    out = {t: [tuple(r) for r in conn.execute(f"PRAGMA table_info({t})")] for t in ("moysklad_units", "moysklad_state")}
    out["indexes"] = [tuple(r) for r in conn.execute(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('moysklad_units', 'moysklad_state') ORDER BY name")]
    out["index_columns"] = [tuple(r) for r in conn.execute("PRAGMA index_info(moysklad_units_ts)")]
    return out


def test_the_moysklad_governor_works_over_an_upgraded_0_1_0_database(tmp_path):
    """Its tables come with migration 0009, with the schema they had when made on first use."""
    from keycrm_bridge.clock import FakeClock
    from keycrm_bridge.erp.governor import Governor

    db = old_database(tmp_path)
    store = Store(str(db))
    assert "0009_moysklad_governor" in migrations.applied(store.conn)
    frozen = sqlite3.connect(":memory:")
    frozen.executescript(GOVERNOR_FIRST_USE)
    assert governor_schema(store.conn) == governor_schema(frozen)
    gov = Governor(str(db), FakeClock(1000.0), units=10)
    slot = gov.acquire(4)
    gov.release(slot)
    gov.penalize(30)
    assert gov.used() == 4
    assert store.conn.execute("SELECT value FROM moysklad_state WHERE name = 'blocked_until'").fetchone()[0] == 1030.0
    gov.conn.close()
    store.close()


def test_a_database_whose_governor_made_its_tables_on_first_use_is_migrated(tmp_path):
    """Builds before migration 0009 made the governor's tables on first use: the migration keeps them
    and what they hold (a 429's block still holds), and the governor goes on over them."""
    from keycrm_bridge.clock import FakeClock
    from keycrm_bridge.erp.governor import Governor

    db = old_database(tmp_path)
    Store(str(db)).close()
    conn = sqlite3.connect(db)
    # Back to where such a build left it: migrated up to 0008, the governor's tables its own.
    conn.executescript("DROP TABLE moysklad_units; DROP TABLE moysklad_state; ALTER TABLE erp_stage DROP COLUMN"
                       " properties; ALTER TABLE erp_guid_map DROP COLUMN properties; DELETE FROM _sqlite_migrations"
                       " WHERE name IN ('0009_moysklad_governor', '0010_erp_properties');")
    conn.executescript(GOVERNOR_FIRST_USE + """
        INSERT INTO moysklad_units (ts, units, pid, done) VALUES (999.0, 5, 1, 1);
        INSERT INTO moysklad_state (name, value) VALUES ('blocked_until', 1010.0);""")
    before = governor_schema(conn)
    conn.close()
    clock = FakeClock(1000.0)
    gov = Governor(str(db), clock, units=45)  # the governor opens the file first: it applies the migration
    assert migrations.applied(gov.conn) == ALL
    assert governor_schema(gov.conn) == before
    assert [tuple(r) for r in gov.conn.execute("SELECT ts, units, done FROM moysklad_units")] == [(999.0, 5, 1)]
    assert gov.used() == 5
    gov.acquire(4)   # blocked until 1010 by the 429 the old build recorded
    assert clock.now() >= 1010.0
    gov.conn.close()


def test_opening_again_applies_nothing(tmp_path):
    db = tmp_path / "new.sqlite3"
    Store(str(db)).close()
    conn = sqlite3.connect(db)
    assert migrations.migrate(conn, str(db)) == []
    assert [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")] == ALL


def test_the_bridge_runs_over_an_upgraded_0_1_0_database(tmp_path):
    """Real processes started over the old file: what 0.1.0 left is handled, a new change arrives."""
    from bridge import wait_until
    from stack import Stack, simple

    db = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    stack = Stack(tmp_path, "woocommerce")
    try:
        stack.start([{"sku": "OLD-3", "quantity": 1}, {"sku": "NEW-A", "quantity": 10}],
                    [simple("NEW-A", 10)])
        # The batch 0.1.0 had received but not expanded: OLD-3 at 13 reaches KeyCRM.
        wait_until(lambda: stack.kc_sellable("OLD-3") == 13, timeout=20, what="0.1.0's pending batch")
        stack.peer.control.set_stock(4, sku="NEW-A")
        wait_until(lambda: stack.kc_sellable("NEW-A") == 4, timeout=15, what="a new change after the upgrade")
        st = stack.status()
        assert [h["skus"] for h in st["guard_holds"]] == [["OLD-2"]]
        assert "GHOST-1" in {u["sku"] for u in st["unmatched_skus"]}
    finally:
        stack.stop()
