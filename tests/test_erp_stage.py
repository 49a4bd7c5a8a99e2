"""The ERP stage in process: the GUID map, set-aside items, full packages' missing SKUs and the guard.

KeyCRM here is a recording double (what was PUT); the end-to-end files run the real processes.
"""

from __future__ import annotations

import io
import json

import pytest

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.config import load_settings
from keycrm_bridge.erp.aside import aside_rows
from keycrm_bridge.erp.doubles.cml import Offer, write_offers
from keycrm_bridge.erp.jobs import ErpStage
from keycrm_bridge.ledger import Ledger
from keycrm_bridge.quarantine import Quarantine
from keycrm_bridge.status import quarantine_summary
from keycrm_bridge.store import Store
from keycrm_bridge.sync import SyncEngine

WH = {"wh-main": "main", "wh-shop": "shop"}


class RecordingKeyCRM:
    def __init__(self) -> None:
        self.puts: list[tuple[int, list[dict]]] = []
        self.offers_puts: list[list[dict]] = []
        self.have: set[str] = set()

    def put_stocks(self, warehouse_id, rows):
        self.puts.append((warehouse_id, list(rows)))
        return [{"status": True}]

    def put_offers(self, offers):
        self.offers_puts.append(list(offers))
        return [{}]

    def iter_stocks(self, skus=None, offer_ids=None, details=True):
        for s in skus or []:
            if s in self.have:
                yield {"id": 1, "sku": s, "warehouse": [{"id": 1, "quantity": 0, "reserve": 0},
                                                         {"id": 2, "quantity": 0, "reserve": 0}]}


def make(tmp_path, **env):
    settings = load_settings({"BRIDGE_SHARED_SECRET": "s" * 32, "KEYCRM_API_KEY": "k", "KEYCRM_WRITE_WAREHOUSE_ID": "1",
                              "KEYCRM_READ_WAREHOUSE_IDS": "1,2", "SYNC_MODE": "erp", "ERP": "1c",
                              "ERP_1C_USER": "u", "ERP_1C_PASSWORD": "p" * 12, "ERP_WAREHOUSE_MAP": "wh-main:1,wh-shop:2",
                              "DATABASE_PATH": str(tmp_path / "db.sqlite3"), "GUARD_MIN_SKUS": "3", **env})
    store, clock, kc = Store(settings.database_path), FakeClock(1_800_000_000.0), RecordingKeyCRM()
    ledger = Ledger(store)

    class E:
        pass
    e = E()
    e.store, e.ledger, e.keycrm = store, ledger, kc
    e.sync = SyncEngine(store, ledger, kc, settings, clock)
    from keycrm_bridge import approval
    approval.approve(store, settings, clock.now(), "test")  # the owner reviewed the first comparison
    return ErpStage(settings, e, clock), kc


def run(stage, tmp_path, offers, exchange_id, **kw):
    from keycrm_bridge.erp.jobs import exchange_dir, queue_job
    base = exchange_dir(stage.settings, exchange_id) / "files"
    base.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    write_offers(buf, offers, WH, **kw)
    (base / "offers.xml").write_bytes(buf.getvalue())
    job = queue_job(stage.conn, "1c", exchange_id, "offers.xml", stage.clock.now())
    stage.tick()
    row = dict(stage.conn.execute("SELECT * FROM erp_jobs WHERE id = ?", (job,)).fetchone())
    return row, json.loads(row["report"])


def finalize(stage, exchange_id):
    from keycrm_bridge.erp.jobs import FINALIZE, queue_job
    job = queue_job(stage.conn, "1c", exchange_id, FINALIZE, stage.clock.now())
    stage.tick()
    return json.loads(stage.conn.execute("SELECT report FROM erp_jobs WHERE id = ?", (job,)).fetchone()[0])


def offers(n, qty=5.0, start=1):
    return [Offer(f"g{i}", f"S{i}", stock={"wh-main": qty, "wh-shop": 1.0}) for i in range(start, start + n)]


def test_duplicate_and_empty_skus_are_set_aside_never_applied(tmp_path):
    stage, kc = make(tmp_path)
    items = offers(3) + [Offer("g-dup", "S1", stock={"wh-main": 99}), Offer("g-empty", "", stock={"wh-main": 7})]
    job, rep = run(stage, tmp_path, items, 1)
    assert job["status"] == "done"
    written = {r["sku"] for _, rows in kc.puts for r in rows}
    assert written == {"S2", "S3"}                      # S1 carried by two items: neither applied
    reasons = {r["guid"]: r["reason"] for r in aside_rows(stage.conn)}
    assert "duplicate SKU" in reasons["g-dup"] and "duplicate SKU" in reasons["g1"]
    assert reasons["g-empty"].startswith("no SKU")
    # They are the shared quarantine's items: status, /metrics and `keycrm-bridge quarantine` list them.
    q = quarantine_summary(stage.store, stage.clock.now())
    keys = {i["key"] for i in q["items"] if i["stage"] == "erp"}
    assert {"1c|g-dup", "1c|g1", "1c|g-empty"} <= keys and q["by_stage"]["erp"] == len(keys)


def test_variants_sharing_one_article_are_set_aside_and_named_as_such(tmp_path):
    """1C often gives every characteristic its product's article: which variant's stock is whose
    cannot be told, so none is applied, and the reason says what to fix. Variants with articles of
    their own go through."""
    stage, kc = make(tmp_path)
    items = [Offer("p1#red", "TS-100", stock={"wh-main": 2}), Offer("p1#blue", "TS-100", stock={"wh-main": 5}),
             Offer("p2#s", "SH-S", stock={"wh-main": 1}), Offer("p2#m", "SH-M", stock={"wh-main": 3})]
    job, rep = run(stage, tmp_path, items, 1)
    assert job["status"] == "done" and rep["set_aside"] == {"duplicate SKU": 2}, rep
    assert {r["sku"] for _, rows in kc.puts for r in rows} == {"SH-S", "SH-M"}
    reasons = {r["guid"]: r["reason"] for r in aside_rows(stage.conn) if r["guid"]}
    assert set(reasons) == {"p1#red", "p1#blue"}, reasons
    assert "2 variants of product p1 carry the same article" in reasons["p1#red"]
    assert "its own article" in reasons["p1#red"]


def test_a_products_own_row_sharing_its_article_with_one_variant_is_no_duplicate(tmp_path):
    """A catalogue <Товар> carries no stock: when it names the article one of its variants carries,
    the SKU is that variant's. An item with stock of its own under the same SKU still is a duplicate."""
    from keycrm_bridge.erp.commerceml import Item
    from keycrm_bridge.erp.intake import Intake

    stage, _kc = make(tmp_path)
    intake = Intake(stage.store, "1c")
    rep = intake.stage(1, [Item("p1", "TS-100", name="Футболка", is_offer=False),
                           Item("p1#red", "TS-100", stock={"wh-main": 2}), Item("p1#blue", "TS-101", stock={"wh-main": 1})],
                       1.0)
    assert rep.staged == 2 and not rep.set_aside
    assert {tuple(r) for r in stage.conn.execute("SELECT guid, sku FROM erp_stage WHERE job_id = 1 AND"
                                                 " erp_warehouse IS NOT NULL")} == {("p1#red", "TS-100"), ("p1#blue", "TS-101")}
    rep = intake.stage(2, [Item("p2", "X-1", stock={"wh-main": 1}), Item("p2#v", "X-1", stock={"wh-main": 2}),
                           Item("p3", "Y-1", is_offer=False), Item("p4#v", "Y-1", stock={"wh-main": 2})], 1.0)
    assert rep.staged == 0 and rep.set_aside == {"duplicate SKU": 4}   # p2 has stock; p3 is not p4's product


def test_rename_follows_the_item_and_a_rests_file_finds_the_sku_by_id(tmp_path):
    stage, kc = make(tmp_path)
    run(stage, tmp_path, offers(2), 1)
    run(stage, tmp_path, [Offer("g1", "S1-NEW", stock={"wh-main": 5, "wh-shop": 1})], 2, changes_only=True)
    kc.puts.clear()
    job, rep = run(stage, tmp_path, [Offer("g1", None, stock={"wh-main": 8, "wh-shop": 1})], 3,
                   version="2.10", rests_only=True, changes_only=True)
    assert [(w, r["sku"], r["quantity"]) for w, rows in kc.puts for r in rows] == [(1, "S1-NEW", 8)]
    assert stage.conn.execute("SELECT sku FROM erp_guid_map WHERE guid = 'g1'").fetchone()[0] == "S1-NEW"


def test_missing_from_a_full_package_is_listed_and_kept_by_default(tmp_path):
    stage, kc = make(tmp_path)
    run(stage, tmp_path, offers(10), 1)
    finalize(stage, 1)
    kc.puts.clear()
    run(stage, tmp_path, offers(7), 2)
    rep = finalize(stage, 2)
    assert rep["missing"] == 3 and rep["zeroed"] == 0 and kc.puts == []


def test_zeroing_missing_goes_through_the_guard(tmp_path):
    stage, kc = make(tmp_path, ERP_ZERO_MISSING="true")
    run(stage, tmp_path, offers(10), 1)
    finalize(stage, 1)
    kc.puts.clear()
    run(stage, tmp_path, offers(5), 2)
    rep = finalize(stage, 2)
    assert rep["held"] == 5 and kc.puts == []            # half the catalogue: held, nothing zeroed
    Ledger(stage.store).set_hold_status(rep["hold_id"], "confirmed", stage.clock.now())
    stage.tick()
    zeroed = sorted((w, r["sku"], r["quantity"]) for w, rows in kc.puts for r in rows)
    assert zeroed == sorted([(w, f"S{i}", 0) for i in range(6, 11) for w in (1, 2)])


def test_a_small_share_missing_is_zeroed_at_once_when_enabled(tmp_path):
    stage, kc = make(tmp_path, ERP_ZERO_MISSING="true", GUARD_MIN_SKUS="5")
    run(stage, tmp_path, offers(20), 1)
    finalize(stage, 1)
    kc.puts.clear()
    run(stage, tmp_path, offers(19), 2)
    rep = finalize(stage, 2)
    assert rep["zeroed"] == 1 and {r["sku"] for _, rows in kc.puts for r in rows} == {"S20"}


def test_prices_go_to_keycrm_in_one_batch_only_when_they_change(tmp_path):
    stage, kc = make(tmp_path, PRODUCT_FIELDS_FROM_ERP="price", PRODUCT_FIELDS_FROM_WOO="none")
    items = [Offer(f"g{i}", f"S{i}", price=10.5 + i, stock={"wh-main": 1}) for i in range(1, 4)]
    run(stage, tmp_path, items, 1)
    stage.tick()
    assert kc.offers_puts == [[{"sku": "S1", "price": 11.5}, {"sku": "S2", "price": 12.5}, {"sku": "S3", "price": 13.5}]]
    run(stage, tmp_path, items, 2)
    stage.tick()
    assert len(kc.offers_puts) == 1


@pytest.mark.parametrize("bad", ["много", "1e999"])
def test_an_unreadable_quantity_sets_the_item_aside_and_the_rest_goes_on(tmp_path, bad):
    stage, kc = make(tmp_path)
    items = offers(2)
    buf = io.BytesIO()
    write_offers(buf, items, WH)
    data = buf.getvalue().replace('КоличествоНаСкладе="5"'.encode(), f'КоличествоНаСкладе="{bad}"'.encode(), 1)
    from keycrm_bridge.erp.jobs import exchange_dir, queue_job
    base = exchange_dir(stage.settings, 1) / "files"
    base.mkdir(parents=True)
    (base / "offers.xml").write_bytes(data)
    queue_job(stage.conn, "1c", 1, "offers.xml", stage.clock.now())
    stage.tick()
    assert {r["sku"] for _, rows in kc.puts for r in rows} == {"S2"}
    assert "unreadable" in {r["guid"]: r["reason"] for r in aside_rows(stage.conn)}["g1"]


def test_explain_and_status_show_the_erp_side(tmp_path):
    from keycrm_bridge.erp.report import erp_status, format_erp_status
    from keycrm_bridge.explain import explain, format_explain
    stage, kc = make(tmp_path)
    run(stage, tmp_path, offers(2) + [Offer("g-x", "", stock={"wh-main": 1})], 1)
    info = explain(stage.store, "S2")
    assert info["erp"]["stock"] and {w["warehouse_id"]: w["quantity"] for w in info["erp"]["written_to_keycrm"]} \
        == {1: 5, 2: 1}
    text = format_explain(info)
    assert "ERP on hand at wh-main: 5" in text and "written to KeyCRM warehouse 2: 1" in text
    st = erp_status(stage.store, stage.settings, stage.clock.now())
    assert st["last_package"]["package"] == "full" and st["last_package"]["rows_applied"] == 4
    assert any("no SKU" in line for line in format_erp_status(st))


def test_create_missing_makes_the_offer_kcrm_lacks(tmp_path):
    stage, kc = make(tmp_path, ERP_CREATE_MISSING="true")
    made = []
    kc.create_product = lambda payload: made.append(payload) or {"id": 1}
    kc.have = {"S1"}
    run(stage, tmp_path, [Offer("g1", "S1", stock={"wh-main": 1}), Offer("g2", "S2", name="Новий", price=9.5,
                                                                          stock={"wh-main": 2})], 1)
    for _ in range(3):
        stage.tick()
    assert made == [{"name": "Новий", "sku": "S2"}]     # once, however often it is still not found
    reasons = [r["reason"] for r in aside_rows(stage.conn, "S2")]
    assert any("created in KeyCRM" in r for r in reasons)


def test_a_variant_carrying_its_products_article_is_created_as_a_variation(tmp_path):
    """The product's catalogue row and one of its variants name the same article: whichever the ERP
    sent last, the SKU is the variant's, so it becomes a variation (with its characteristics)."""
    from keycrm_bridge.erp.commerceml import Item
    from keycrm_bridge.erp.create import create_missing

    stage, kc = make(tmp_path, ERP_CREATE_MISSING="true")
    made = []
    kc.create_product = lambda payload: made.append(("product", payload)) or {"id": 7}
    kc.create_offers = lambda pid, offers, product_name: made.append(("offers", pid, offers, product_name)) or [{}]
    kc.iter_offers = lambda skus=None, include_product=False: iter(())
    intake = stage.intake
    intake.stage(1, [Item("p-bg#red", "BG-1", stock={"wh-main": 1}, properties=[("Колір", "Червоний")]),
                     Item("p-bg#blue", "BG-2", stock={"wh-main": 1})], 1.0)
    intake.commit(1, 1.0)
    intake.stage(2, [Item("p-bg", "BG-1", name="Сумка", is_offer=False)], 2.0)   # the catalogue, later
    intake.commit(2, 2.0)
    assert create_missing(stage.applier, ["BG-1", "BG-2"]) == 2
    assert made == [("product", {"name": "Сумка"}),
                    ("offers", 7, [{"sku": "BG-1", "properties": [{"name": "Колір", "value": "Червоний"}]},
                                   {"sku": "BG-2"}], "Сумка")]


def test_doctor_names_erp_warehouses_missing_from_the_map(tmp_path):
    from keycrm_bridge.erp.doctor_check import check_erp
    stage, kc = make(tmp_path)
    run(stage, tmp_path, [Offer("g1", "S1", stock={"wh-main": 1, "wh-far": 3})], 1)
    finding = check_erp(stage.settings, stage.store)
    assert finding["warning"] and "wh-far" in finding["message"]


def test_an_edit_of_on_hand_in_keycrm_is_overwritten_with_the_erps_figure(tmp_path):
    stage, kc = make(tmp_path)
    run(stage, tmp_path, offers(3), 1)
    stage.clock.advance(60)
    # The sweep saw S2's on-hand at warehouse 1 changed in KeyCRM (someone edited it there).
    stage.store.save_keycrm_stock([("S2", 1, 7, 99.0, 0.0), ("S2", 2, 7, 1.0, 0.0)], stage.clock.now())
    kc.puts.clear()
    stage.clock.advance(31)
    stage.tick()
    assert [(w, r["sku"], r["quantity"]) for w, rows in kc.puts for r in rows] == [(1, "S2", 5)]


def test_metrics_show_the_erp_packages(tmp_path):
    from keycrm_bridge.erp.report import erp_metrics
    stage, kc = make(tmp_path)
    run(stage, tmp_path, offers(3), 1)
    fams = {m.name: m for m in erp_metrics(stage.store, "kcb_")}
    assert [s.value for s in fams["kcb_erp_packages"].samples if s.labels.get("status") == "done"] == [1]
    written = [s.value for s in fams["kcb_erp_stock_rows"].samples if s.labels.get("result") == "written"]
    assert written == [6]


def test_a_job_left_running_by_a_killed_worker_is_run_again_and_writes_nothing_twice(tmp_path):
    from keycrm_bridge.erp.jobs import queue_job
    stage, kc = make(tmp_path)
    job, _ = run(stage, tmp_path, offers(3), 1)
    # As if the worker died mid-way through the same file again: the job is 'running'.
    again = queue_job(stage.conn, "1c", 1, "offers.xml", stage.clock.now())
    stage.conn.execute("UPDATE erp_jobs SET status = 'running' WHERE id = ?", (again,))
    kc.puts.clear()
    stage.tick()
    assert stage.conn.execute("SELECT status FROM erp_jobs WHERE id = ?", (again,)).fetchone()[0] == "done"
    assert kc.puts == []


def test_nothing_is_written_before_the_first_review_then_everything_the_erp_said(tmp_path):
    from keycrm_bridge import approval
    stage, kc = make(tmp_path)
    stage.store.set_meta(approval.META_KEY, None)
    job, rep = run(stage, tmp_path, offers(3), 1)
    assert kc.puts == [] and rep["rows_waiting_for_review"] == 6 and job["status"] == "done"
    approval.approve(stage.store, stage.settings, stage.clock.now(), "test")
    stage.tick()
    assert sorted(r["sku"] for _, rows in kc.puts for r in rows) == ["S1", "S1", "S2", "S2", "S3", "S3"]


def test_a_fault_of_ours_refuses_the_package_after_a_few_tries_and_the_next_one_goes_through(tmp_path):
    from keycrm_bridge.erp.jobs import exchange_dir, queue_job
    stage, kc = make(tmp_path)
    (exchange_dir(stage.settings, 9) / "files").mkdir(parents=True)
    (exchange_dir(stage.settings, 9) / "files" / "offers.xml").write_bytes(b"<x/>")
    real = stage.intake.read_file
    stage.intake.read_file = lambda *a, **k: (_ for _ in ()).throw(ZeroDivisionError("bug"))
    bad = queue_job(stage.conn, "1c", 9, "offers.xml", stage.clock.now())
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            stage.tick()
    stage.tick()
    row = stage.conn.execute("SELECT status, message FROM erp_jobs WHERE id = ?", (bad,)).fetchone()
    assert row[0] == "failed" and "internal error" in row[1]
    stage.intake.read_file = real
    job, _ = run(stage, tmp_path, offers(2), 1)
    assert job["status"] == "done" and kc.puts


def test_a_sku_keycrm_lacked_is_looked_up_again_on_the_owners_retry(tmp_path):
    stage, kc = make(tmp_path)
    kc.have = {"S1"}
    run(stage, tmp_path, offers(2), 1)
    stage.tick()
    [item] = [r for r in aside_rows(stage.conn) if r["sku"] == "S2"]
    assert "KeyCRM has no offer" in item["reason"]
    kc.have.add("S2")                       # the owner added the offer in KeyCRM, then: quarantine retry ID
    assert Quarantine(stage.store, stage.clock).request_retry(item["id"])
    before = len(kc.puts)
    for _ in range(3):
        stage.tick()
    assert aside_rows(stage.conn, "S2") == []
    assert {r["sku"] for _, rows in kc.puts[before:] for r in rows} == {"S2"}   # its stock written now


def test_a_refused_package_lists_nothing(tmp_path):
    stage, kc = make(tmp_path)
    from keycrm_bridge.erp.jobs import exchange_dir, queue_job
    base = exchange_dir(stage.settings, 1) / "files"
    base.mkdir(parents=True)
    buf = io.BytesIO()
    write_offers(buf, offers(3) + [Offer("g-empty", "", stock={"wh-main": 7})], WH)
    (base / "offers.xml").write_bytes(buf.getvalue()[:-40])          # cut short: not well-formed
    job = queue_job(stage.conn, "1c", 1, "offers.xml", stage.clock.now())
    stage.tick()
    row = stage.conn.execute("SELECT status, message FROM erp_jobs WHERE id = ?", (job,)).fetchone()
    assert row[0] == "failed" and "not well-formed" in row[1]
    assert kc.puts == [] and aside_rows(stage.conn) == []
