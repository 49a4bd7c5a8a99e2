"""Product data from the ERP, end to end with real processes: names and prices reach KeyCRM per
PRODUCT_FIELDS_FROM_ERP, and offers KeyCRM lacks are created (ERP_CREATE_MISSING) — a variant as a
variation of its product, never as a simple product of its own."""

from __future__ import annotations

import pytest

from keycrm_bridge.erp.doubles.cml import Offer, build_exchange

from bridge import wait_until
from erp_stack import WAREHOUSES, ErpStack

pytestmark = pytest.mark.slow
STOCK = {"wh-main": 3.0, "wh-shop": 1.0}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    st = ErpStack(tmp_path_factory.mktemp("erp-products"), PRODUCT_FIELDS_FROM_ERP="name,price", PRODUCT_FIELDS_FROM_WOO="none",
                  ERP_CREATE_MISSING="true").start(0, ["ERP-A"])
    st.sim.control.seed(warehouses=[1, 2], offers=[{"sku": "ERP-A", "name": "Стара назва", "price": 10}],
                        products=[{"name": "Футболка", "offers": [{"sku": "TS-RED", "price": 300}]}])
    yield st
    st.stop()


def exchange(stack: ErpStack, tmp, offers: list[Offer]) -> dict[str, str]:
    ex = stack.onec().run(build_exchange(tmp, offers, WAREHOUSES), chunk=64 * 1024)
    stack.wait_erp_idle(60)
    return ex.imports


def test_names_and_prices_from_the_erp_reach_keycrm(stack, tmp_path):
    exchange(stack, tmp_path / "a", [Offer("g-a", "ERP-A", name="Нова назва", price=12.5, stock=STOCK)])
    wait_until(lambda: stack.sim.control.truth(["ERP-A"])["ERP-A"]["product_name"] == "Нова назва", timeout=30,
               what="the ERP's name in KeyCRM")
    row = stack.sim.control.truth(["ERP-A"])["ERP-A"]
    assert row["price"] == 12.5 and row["warehouses"]["1"]["quantity"] == 3
    # Renamed again in the ERP: only the name changes, once.
    before = stack.sim.control.last_seq()
    exchange(stack, tmp_path / "b", [Offer("g-a", "ERP-A", name="Третя назва", price=12.5, stock=STOCK)])
    wait_until(lambda: stack.sim.control.truth(["ERP-A"])["ERP-A"]["product_name"] == "Третя назва", timeout=30,
               what="the second rename")
    puts = list(stack.sim.control.requests(before, method="PUT"))
    assert [p["path"] for p in puts if "/products/" in p["path"]] and not \
        [p for p in puts if p["path"].endswith("/offers")], [p["path"] for p in puts]   # no price re-sent


def test_missing_variants_are_created_as_variations_of_their_product(stack, tmp_path):
    offers = [
        Offer("p-ts#red", "TS-RED", name="Футболка", price=300, stock=STOCK),
        Offer("p-ts#blue", "TS-BLUE", name="Футболка", price=310, stock=STOCK),    # KeyCRM has its sibling
        Offer("p-sh#s", "SH-S", name="Сорочка", price=500, stock=STOCK),           # a product KeyCRM lacks
        Offer("p-sh#m", "SH-M", name="Сорочка", price=500, stock=STOCK),
        Offer("g-new", "NEW-1", name="Новий товар", price=99, stock=STOCK),        # a simple product
    ]
    exchange(stack, tmp_path / "c", offers)
    skus = ["TS-RED", "TS-BLUE", "SH-S", "SH-M", "NEW-1"]
    wait_until(lambda: all(r and r["warehouses"].get("1", {}).get("quantity") == 3
                           for r in stack.sim.control.truth(skus).values()), timeout=60,
               what="created offers with the ERP's stock")
    t = stack.sim.control.truth(skus)
    assert t["TS-BLUE"]["product_id"] == t["TS-RED"]["product_id"]            # joined Футболка
    assert t["SH-S"]["product_id"] == t["SH-M"]["product_id"] != t["TS-RED"]["product_id"]
    assert t["SH-S"]["product_name"] == "Сорочка" and t["SH-M"]["price"] == 500
    assert t["NEW-1"]["product_name"] == "Новий товар" and t["NEW-1"]["product_id"] not in (
        t["SH-S"]["product_id"], t["TS-RED"]["product_id"])
    creates = [r["path"] for r in stack.sim.control.requests(0, method="POST")]
    assert creates.count("/products") == 2, creates    # Сорочка and Новий товар; Футболка existed
    st = stack.status()["erp"]
    assert not [a for a in st["set_aside_examples"] if "no offer" in a["reason"]], st["set_aside_examples"]


def test_created_variations_carry_the_erps_characteristics(stack, tmp_path):
    """1C's <ХарактеристикиТовара> (colour, size) become the KeyCRM offers' properties when the bridge
    creates the variations; a variant without characteristics gets none."""
    offers = [
        Offer("p-kr#w42", "KR-W-42", name="Кросівки", price=1500, stock=STOCK,
              properties={"Колір": "Білий", "Розмір": "42"}),
        Offer("p-kr#b43", "KR-B-43", name="Кросівки", price=1550, stock=STOCK,
              properties={"Колір": "Чорний", "Розмір": "43"}),
        Offer("p-kr#x", "KR-X", name="Кросівки", price=1500, stock=STOCK),
    ]
    before = stack.sim.control.last_seq()
    exchange(stack, tmp_path / "d", offers)
    skus = [o.sku for o in offers]
    wait_until(lambda: all(r and r["warehouses"].get("1", {}).get("quantity") == 3
                           for r in stack.sim.control.truth(skus).values()), timeout=60,
               what="created variations with the ERP's stock")
    t = stack.sim.control.truth(skus)
    assert t["KR-W-42"]["properties"] == [{"name": "Колір", "value": "Білий"}, {"name": "Розмір", "value": "42"}]
    assert t["KR-B-43"]["properties"] == [{"name": "Колір", "value": "Чорний"}, {"name": "Розмір", "value": "43"}]
    assert t["KR-X"]["properties"] == []
    assert len({t[s]["product_id"] for s in skus}) == 1 and t["KR-X"]["product_name"] == "Кросівки"
    # What went over the wire is what the spec has: offers[].properties of {name, value}, accepted (201).
    posts = [r for r in stack.sim.control.requests(before, method="POST") if r["path"].endswith("/offers")]
    assert posts and all(r["status"] == 201 for r in posts), posts
    sent = {o["sku"]: o.get("properties") for r in posts for o in r["body"]["offers"]}
    assert sent == {"KR-W-42": t["KR-W-42"]["properties"], "KR-B-43": t["KR-B-43"]["properties"], "KR-X": None}
