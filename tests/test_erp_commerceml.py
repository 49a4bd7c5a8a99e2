"""The CommerceML reader: every stock form of 2.03-2.10, and hostile documents refused."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from decimal import Decimal

import pytest

from keycrm_bridge.erp.commerceml import Reader, parse_quantity
from keycrm_bridge.erp.doubles.cml import Offer, catalogue, write_catalog, write_offers
from keycrm_bridge.erp.safety import HostilePackage, Limits, safe_relative, unpack_zip

WH = {"wh-main": "Основной склад", "wh-shop": "Магазин"}


def read(data: bytes, **kw):
    r = Reader(io.BytesIO(data), "offers.xml", **kw)
    return list(r), r.info


def offers_xml(offers, **kw) -> bytes:
    buf = io.BytesIO()
    write_offers(buf, offers, WH, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("version", ["2.05", "2.10"])
def test_per_warehouse_stock_sku_price_and_variants(version):
    offers = [Offer("p1", "A-1", "Чай", 10.5, {"wh-main": 3, "wh-shop": 2}),
              Offer("p2#v1", "A-2-XL", "Кофе XL", 99, {"wh-main": 0, "wh-shop": 7.5})]
    items, info = read(offers_xml(offers, version=version, comma=True))
    assert info.kind == "offers" and info.changes_only is False and info.version == version
    assert info.warehouses == WH and info.price_types == {"price-retail": "Розничная"}
    assert [(i.guid, i.sku, i.price) for i in items] == [("p1", "A-1", Decimal("10.5")), ("p2#v1", "A-2-XL", 99)]
    # 2.05 also carries the total in <Количество>: per-warehouse figures win, never both.
    assert items[0].stock == {"wh-main": 3, "wh-shop": 2}
    assert items[1].stock == {"wh-main": 0, "wh-shop": Decimal("7.5")}


@pytest.mark.parametrize("version", ["2.05", "2.10"])
def test_a_variants_characteristics_are_read_in_order(version):
    offers = [Offer("p1#red-m", "TS-RED-M", "Футболка", 300, {"wh-main": 1},
                    properties={"Цвет": "Красный", "Размер": "M & L"}),
              Offer("p2", "A-2", "Чай", 10, {"wh-main": 2})]
    items, _ = read(offers_xml(offers, version=version))
    assert items[0].properties == [("Цвет", "Красный"), ("Размер", "M & L")]
    assert items[1].properties is None   # none given (not "none left")


def test_characteristics_without_a_name_or_value_are_left_out_and_old_product_form_is_read():
    xml = ('<?xml version="1.0" encoding="UTF-8"?><КоммерческаяИнформация ВерсияСхемы="2.04"><Каталог><Товары>'
           '<Товар><Ид>p#v</Ид><Артикул>X-1</Артикул><Наименование>Сукня</Наименование><ХарактеристикиТовара>'
           '<ХарактеристикаТовара><Наименование>Колір</Наименование><Значение> Синій </Значение>'
           '</ХарактеристикаТовара><ХарактеристикаТовара><Наименование>Розмір</Наименование><Значение/>'
           '</ХарактеристикаТовара><ХарактеристикаТовара><Значение>42</Значение></ХарактеристикаТовара>'
           '</ХарактеристикиТовара></Товар></Товары></Каталог></КоммерческаяИнформация>').encode()
    items, info = read(xml)
    assert info.kind == "catalog" and not items[0].is_offer
    assert items[0].properties == [("Колір", "Синій")]


def test_total_only_form_and_changes_only_as_element():
    data = offers_xml([Offer("p1", "A-1", stock={"": 4})], version="2.03", changes_only=True, flag_as_element=True)
    items, info = read(data)
    assert info.changes_only is True
    assert items[0].stock == {"": 4}


def test_rests_file_carries_only_ids_and_stock():
    data = offers_xml([Offer("p1", "A-1", stock={"wh-main": 5})], version="2.10", rests_only=True)
    items, _ = read(data)
    assert items[0].sku is None and items[0].stock == {"wh-main": 5}


def test_remains_with_total_and_namespace():
    xml = ('<?xml version="1.0" encoding="windows-1251"?><КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2"'
           ' ВерсияСхемы="2.08"><ПакетПредложений СодержитТолькоИзменения="true"><Предложения><Предложение>'
           '<Ид>g</Ид><Артикул>Б-1</Артикул><Остатки><Остаток><Количество>1 234,5</Количество></Остаток>'
           '</Остатки></Предложение></Предложения></ПакетПредложений></КоммерческаяИнформация>').encode("cp1251")
    items, info = read(xml)
    assert info.changes_only is True and items[0].sku == "Б-1" and items[0].stock == {"": Decimal("1234.5")}


def test_catalog_items():
    buf = io.BytesIO()
    write_catalog(buf, [Offer("p1#v", "S-1", "Name")])
    r = Reader(io.BytesIO(buf.getvalue()), "import.xml")
    items = list(r)
    assert r.info.kind == "catalog" and [(i.guid, i.sku, i.is_offer) for i in items] == [("p1", "S-1", False)]


def test_unreadable_quantity_is_set_aside_not_fatal():
    data = offers_xml([Offer("p1", "A-1", stock={"wh-main": 1}), Offer("p2", "A-2", stock={"wh-main": 2})])
    data = data.replace("КоличествоНаСкладе=\"1\"".encode(), "КоличествоНаСкладе=\"много\"".encode())
    items, _ = read(data)
    assert items[0].problem and "много" in items[0].problem and items[1].stock == {"wh-main": 2}


def test_parse_quantity():
    assert parse_quantity(" 1\xa0000,25 ") == Decimal("1000.25")
    for bad in ("", "NaN", "inf", "1e400", "abc"):
        with pytest.raises(ValueError):
            parse_quantity(bad)


XXE = """<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<КоммерческаяИнформация><ПакетПредложений><Предложения><Предложение><Ид>&x;</Ид></Предложение>
</Предложения></ПакетПредложений></КоммерческаяИнформация>""".encode()
LAUGHS = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol">' + b"".join(
    f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9)) + \
    "]><КоммерческаяИнформация><ПакетПредложений>&j;</ПакетПредложений></КоммерческаяИнформация>".encode()


@pytest.mark.parametrize("doc, words", [
    (XXE, "DTD"), (LAUGHS, "DTD"),
    ("<КоммерческаяИнформация><broken".encode(), "well-formed"),
    (b"<html><body>502 Bad Gateway</body></html>", "not CommerceML"),
    (("<КоммерческаяИнформация>" + "<a>" * 100 + "</a>" * 100 + "</КоммерческаяИнформация>").encode(), "deeper"),
])
def test_hostile_documents_refused(doc, words):
    with pytest.raises(HostilePackage, match=words):
        read(doc)


def test_size_limit_refuses_while_streaming():
    data = offers_xml(catalogue(2000, list(WH)))
    with pytest.raises(HostilePackage, match="larger than"):
        read(data, limits=Limits(max_xml_bytes=len(data) // 2))


def test_zip_bomb_refused(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("offers.xml", b"<a>" + b" " * (50 * 2**20) + b"</a>")
    assert bomb.stat().st_size < 200_000
    with pytest.raises(HostilePackage, match="zip bomb"):
        unpack_zip(bomb, tmp_path / "out", Limits())
    assert sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file()) == 0


def test_zip_with_escaping_name_refused(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../../etc/x.xml", b"<a/>")
    with pytest.raises(HostilePackage, match="not allowed"):
        unpack_zip(z, tmp_path / "out", Limits())
    assert str(safe_relative("goods/1/rests___a.xml")) == "goods/1/rests___a.xml"


def test_memory_stays_flat_over_many_offers():
    class Gen(io.RawIOBase):
        """Streams a 5,000-offer document without holding it."""
        def __init__(self):
            self.buf = io.BytesIO()
            write_offers(self.buf, catalogue(5000, list(WH)), WH)
            self.buf.seek(0)
        def readinto(self, b):
            return self.buf.readinto(b)
        def readable(self):
            return True
    src = Gen()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    n = 0
    for _item in Reader(src, "offers.xml"):
        n += 1
        if n == 1000:
            early = tracemalloc.get_traced_memory()[0] - base
    late = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert n == 5000
    assert late < early + 2 * 2**20, (early, late)  # no growth with the number of offers read
