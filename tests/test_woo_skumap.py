"""SkuMap (SKU -> WooCommerce ids) against the WooCommerce peer over real HTTP: full and incremental
refreshes, the plugin's events, problems, reopening, batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from keycrm_bridge.woo_skumap import SkuMap

from woo_fixtures import REST, rest_log


@pytest.fixture
def skumap(tmp_path: Path):
    m = SkuMap(tmp_path / "bridge.db")
    yield m
    m.close()


# -- SkuMap ---------------------------------------------------------------------------------------


def test_skumap_full_then_incremental_refresh(peer, client, clock, skumap) -> None:
    peer.control.seed(simple=5, variable=1, variations=3)  # parent 6, variations 7-9
    clock.advance(60)
    peer.control.set_stock(4, sku="SKU-000005")
    first = skumap.refresh(client)
    assert first.full and first.products == 6 and first.variations == 3
    assert skumap.count() == 9
    assert skumap.get("SKU-V000006-2").parent_id == 6 and skumap.get("SKU-V000006-2").type == "variation"
    assert skumap.get("SKU-000001").stock_quantity == 10 and skumap.get("SKU-000001").manage_stock
    assert skumap.watermark == clock.now()  # the newest date_modified in the shop before the scan

    clock.advance(60)
    peer.control.set_stock(3, sku="SKU-000002")
    peer.control.rename("SKU-000003-R", sku="SKU-000003")
    peer.control.set_stock(1, sku="SKU-V000006-3")
    position = peer.control.log_position()
    second = skumap.refresh(client)
    # 2, 3 and parent 6 changed; 5 is read again because it sits inside the 2 s overlap.
    assert not second.full and second.products == 4 and second.variations == 3
    listing = [e["query"] for e in rest_log(peer, position) if e["path"] == REST + "products"]
    assert listing[0]["orderby"] == "modified" and listing[0]["per_page"] == "1"  # newest date first
    assert listing[1]["modified_after"] == "2027-01-15T08:00:58"  # watermark (start + 60 s) - 2 s, GMT
    assert skumap.get("SKU-000002").stock_quantity == 3
    assert skumap.get("SKU-000003") is None and skumap.get("SKU-000003-R").product_id == 3
    assert skumap.get("SKU-V000006-3").stock_quantity == 1
    assert skumap.count() == 9

    clock.advance(60)
    position = peer.control.log_position()
    quiet = skumap.refresh(client)
    assert quiet.products == 3 and len(rest_log(peer, position)) == 3  # newest, one page, parent's variations


def test_skumap_refresh_sees_removed_variations_and_full_removes_deleted(peer, client, clock, skumap) -> None:
    peer.control.seed(simple=3, variable=1, variations=2)  # parent 4, variations 5-6
    skumap.refresh(client)
    clock.advance(60)
    peer.control.delete(sku="SKU-V000004-2")
    skumap.refresh(client)
    assert skumap.by_product_id(6) is None and [e.product_id for e in skumap.variations_of(4)] == [5]
    peer.control.delete(sku="SKU-000001")  # a simple product's deletion is invisible to modified_after
    skumap.refresh(client)
    assert skumap.by_product_id(1) is not None
    report = skumap.refresh(client, full=True)
    assert report.removed == 1 and skumap.by_product_id(1) is None


def test_skumap_follows_plugin_events(peer, client, receiver, clock, skumap) -> None:
    peer.control.seed(simple=3, variable=1, variations=2)  # parent 4, variations 5-6
    skumap.refresh(client)
    clock.advance(10)
    peer.control.rename("SKU-000002-NEW", sku="SKU-000002")
    peer.control.set_stock(0, sku="SKU-V000004-1")
    peer.control.delete(sku="SKU-V000004-2")
    for event in receiver.wait_for_events(3):
        assert skumap.apply_event(event)
    assert skumap.by_sku("SKU-000002") == [] and skumap.get("SKU-000002-NEW").product_id == 2
    assert skumap.get("SKU-V000004-1").stock_quantity == 0
    assert skumap.by_product_id(6) is None

    stale = {
        "id": "old-event-1",
        "type": "product.upsert",
        "occurred_at": clock.now() - 5,
        "product_id": 2,
        "parent_id": 0,
        "sku": "SKU-000002",
        "cause": "manual",
        "product": {"name": "old"},
    }
    assert not skumap.apply_event(stale)
    assert skumap.get("SKU-000002-NEW") is not None

    # A REST read older than an applied event does not undo it.
    clock.advance(10)
    newer = {
        "id": "new-event-1",
        "type": "stock.set",
        "occurred_at": clock.now() + 30,
        "product_id": 1,
        "parent_id": 0,
        "sku": "SKU-000001",
        "cause": "manual",
        "stock_quantity": 42,
    }
    assert skumap.apply_event(newer)
    skumap.refresh(client, full=True)
    assert skumap.get("SKU-000001").stock_quantity == 42

    unknown = {
        "id": "new-event-2",
        "type": "stock.set",
        "occurred_at": clock.now(),
        "product_id": 77,
        "parent_id": 4,
        "sku": "LATE",
        "cause": "rest",
        "stock_quantity": 3,
    }
    assert skumap.apply_event(unknown)
    assert skumap.get("LATE").type == "variation"
    assert skumap.apply_event(
        {
            "id": "del-parent",
            "type": "product.deleted",
            "occurred_at": clock.now() + 60,
            "product_id": 4,
            "parent_id": 0,
            "sku": "SKU-V000004",
            "cause": "manual",
        }
    )
    assert skumap.variations_of(4) == [] and skumap.by_product_id(4) is None


def test_skumap_problems(peer, client, skumap) -> None:
    peer.control.seed(
        products=[
            {"name": "a", "sku": "DUP", "manage_stock": True, "stock_quantity": 1},
            {"name": "b", "sku": "DUP"},
            {"name": "no sku"},
            {"name": "parent without sku", "type": "variable", "variations": [{"name": "v", "sku": "V-1"}]},
        ],
        allow_duplicate_skus=True,
    )
    skumap.refresh(client)
    skumap.apply_event(
        {
            "id": "evt-space-1",
            "type": "product.upsert",
            "occurred_at": 2e9,
            "product_id": 50,
            "parent_id": 0,
            "sku": " X1 ",
            "cause": "import",
            "product": {"type": "simple"},
        }
    )
    problems = skumap.problems()
    assert {"kind": "duplicate_sku", "sku": "DUP", "product_ids": [1, 2]} in problems
    assert [p["product_id"] for p in problems if p["kind"] == "empty_sku"] == [3]  # not the variable parent
    assert [p["sku"] for p in problems if p["kind"] == "sku_whitespace"] == [" X1 "]
    assert skumap.get("DUP") is None and len(skumap.by_sku("DUP")) == 2


def test_skumap_survives_reopen(tmp_path: Path, peer, client) -> None:
    peer.control.seed(simple=2)
    first = SkuMap(tmp_path / "m.db")
    first.refresh(client)
    mark = first.watermark
    first.close()
    again = SkuMap(tmp_path / "m.db")
    try:
        assert again.count() == 2 and again.watermark == mark
        assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        again.close()


def test_skumap_applies_a_batch_in_one_pass_in_event_order(tmp_path):
    skumap = SkuMap(tmp_path / "map.sqlite3")
    events = [
        {"type": "product.upsert", "product_id": 5, "sku": "P-5", "occurred_at": 10.0,
         "product": {"type": "variable", "name": "Parent"}},
        {"type": "stock.set", "product_id": 6, "parent_id": 5, "sku": "V-6", "occurred_at": 11.0, "stock_quantity": 4},
        {"type": "stock.set", "product_id": 7, "sku": "S-7", "occurred_at": 12.0, "stock_quantity": 1},
        {"type": "stock.set", "product_id": 7, "sku": "S-7", "occurred_at": 13.0, "stock_quantity": 2},
        {"type": "stock.set", "product_id": 7, "sku": "S-7", "occurred_at": 9.0, "stock_quantity": 99},  # stale
        {"type": "product.deleted", "product_id": 5, "occurred_at": 14.0},
    ]
    assert skumap.apply_events(events) == 4  # S-7's three stock edits are one change of its row
    assert skumap.by_product_id(5) is None and skumap.by_product_id(6) is None, "the parent took its variation"
    s7 = skumap.get("S-7")
    assert s7 is not None and s7.stock_quantity == 2 and s7.manage_stock
