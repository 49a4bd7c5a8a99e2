"""The operator's commands on a store with history: status, explain, guard."""

import json

import pytest

from keycrm_bridge import cli
from keycrm_bridge.ledger import Ledger
from keycrm_bridge.store import Store


@pytest.fixture
def env(tmp_path, monkeypatch):
    db = tmp_path / "db.sqlite3"
    for k, v in {"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k", "KEYCRM_WRITE_WAREHOUSE_ID": "1",
                 "DATABASE_PATH": str(db), "SYNC_MODE": "keycrm"}.items():
        monkeypatch.setenv(k, v)
    store = Store(str(db))
    ledger = Ledger(store)
    ledger.observe_woo([{"id": "e1", "sku": "X-1", "occurred_at": 100.0, "cause": "order", "order_id": 7,
                         "quantity_delta": -2, "stock_quantity": 8}], now=101.0, two_way=False)
    ledger.observe_keycrm({"X-1": 10.0}, now=102.0, source="webhook")
    store.note_unmatched("GHOST", "woocommerce", "SKU not found in KeyCRM", 5, 103.0)
    hold = ledger.hold(["X-1"], {"reason": "1 of 1 SKUs would drop to 0", "examples": [
        {"sku": "X-1", "from": 8, "to": 0}]}, 104.0)
    return store, ledger, hold


def test_explain_tells_why(env, capsys):
    store, ledger, _ = env
    ledger.notes([("X-1", "decision", {"mode": "keycrm", "woo": 8.0, "kc": 10.0, "agreed": None, "inflight": 2.0,
                                       "woo_target": 8.0, "kc_target": None, "reason": "KeyCRM is the master"})], 105.0)
    store.save_keycrm_stock([("X-1", 1, 11, 12.0, 2.0)], 102.0)
    assert cli.main(["explain", "X-1"]) == 0
    out = capsys.readouterr().out
    assert "site order #7: 2 sold, not yet shown by KeyCRM" in out
    assert "KeyCRM: on hand 12 − reserved 2 = sellable 10" in out
    assert "KeyCRM sellable 10 (from KeyCRM's stock webhook)" in out
    assert "WooCommerce stock 8 (-2): a site order #7" in out
    assert "decided (keycrm mode; WooCommerce 8, KeyCRM 10, 2 held for site orders): WooCommerce set to 8" in out
    assert "last sync to WooCommerce: 1970-01-01" in out and "last sync to KeyCRM: never" in out
    assert "held by the guard" in out
    # Plain words: no Python reprs, no "None", no Unix timestamps.
    assert "None" not in out and "{'" not in out and "105.0" not in out and "101.000" not in out
    assert cli.main(["explain", "X-1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["woocommerce_stock"] == 8 and info["keycrm_sellable"] == 10
    assert cli.main(["explain", "NOPE"]) == 1


def test_status_lists_unmatched(env, capsys):
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "mode: keycrm" in out and "GHOST" in out and "not found in KeyCRM" in out


def test_guard_list_confirm_and_unknown_id(env, capsys):
    _, ledger, hold = env
    assert cli.main(["guard", "list"]) == 0
    assert f"#{hold}: 1 of 1 SKUs would drop to 0" in capsys.readouterr().out
    assert cli.main(["guard", "confirm", str(hold)]) == 0
    assert ledger.holds("confirmed")[0]["id"] == hold
    assert cli.main(["guard", "dismiss", str(hold)]) == 1  # no longer held
    assert cli.main(["guard", "confirm"]) == 2


def test_prune_forgets_old_finished_work_but_never_pending(tmp_path):
    from keycrm_bridge.config import load_settings
    from keycrm_bridge.events import changes_for

    store = Store(str(tmp_path / "db.sqlite3"))
    Ledger(store)
    settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k",
                              "KEYCRM_WRITE_WAREHOUSE_ID": "1", "SYNC_MODE": "woocommerce"})
    ev = [{"id": f"ev-{i:04d}", "type": "stock.set", "occurred_at": 100.0 + i, "product_id": i + 1, "sku": f"S{i}",
           "cause": "manual", "stock_quantity": i} for i in range(3)]
    store.append_batch(json.dumps({"events": ev}), 3, now=100.0)
    store.expand_inbox(lambda e: changes_for(e, settings))
    token, claimed = store.claim(now=200.0, lease_s=60, limit=2)
    store.mark_done(token, [c.id for c in claimed], now=201.0)
    store.conn.execute("INSERT INTO history (sku, at, kind, detail) VALUES ('S0', 50, 'woo', '{}')")
    removed = store.prune(before=1000.0)
    assert removed == {"changes": 2, "events": 2, "history": 1}
    assert store.changes_by_status() == {"pending": 1}
    assert store.event("ev-0002") is not None  # its change is still pending


def test_explain_json_into_head_ends_quietly(env):
    import os
    import subprocess
    import sys

    # `true` has gone before Python has started, so the first write meets a closed pipe.
    r = subprocess.run(f"{sys.executable} -m keycrm_bridge.cli explain X-1 --json | true", shell=True,
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    r = subprocess.run(f"{sys.executable} -m keycrm_bridge.cli explain X-1 --json | head -1", shell=True,
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert r.stdout.strip() == "{" and "Traceback" not in r.stderr, r.stderr
