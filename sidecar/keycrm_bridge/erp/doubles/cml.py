"""CommerceML packages built to the structure of 1C's published sample files (2.03, 2.05, 2.10).

``write_offers`` streams, so a 100,000-offer package costs no memory to build. 2.05 carries the
total in ``<Количество>`` and each warehouse as ``<Склад ИдСклада КоличествоНаСкладе/>``; 2.10
carries ``<Остатки><Остаток><Склад><Ид>…<Количество>``, optionally in a separate ``rests___`` file
while ``offers___`` keeps only the prices (as 1C:УТ 11 sends with "version=3.1").
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape, quoteattr

CATALOG_ID = "bd72d8f9-55bc-11d9-848a-00112f43529a"
CLASSIFIER_ID = "bd72d8f8-55bc-11d9-848a-00112f43529a"


@dataclass
class Offer:
    guid: str
    sku: str | None
    name: str = ""
    price: float | None = None
    stock: dict[str, float] = field(default_factory=dict)   # ERP warehouse id -> on hand
    properties: dict[str, str] = field(default_factory=dict)  # a variant's characteristics (Цвет: Красный)


def number(v: float, comma: bool) -> str:
    text = f"{v:.3f}".rstrip("0").rstrip(".") if not float(v).is_integer() else str(int(v))
    return text.replace(".", ",") if comma else text


def _head(version: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация ВерсияСхемы="{version}" '
            'ДатаФормирования="2026-12-01T10:00:00">\n')


def write_catalog(out: IO[bytes], offers: Iterable[Offer], version: str = "2.05", changes_only: bool = False) -> None:
    out.write(_head(version).encode())
    out.write(f'<Классификатор><Ид>{CLASSIFIER_ID}</Ид><Наименование>Классификатор</Наименование>'
              f'</Классификатор>\n<Каталог СодержитТолькоИзменения="{str(changes_only).lower()}">'
              f'<Ид>{CATALOG_ID}</Ид><ИдКлассификатора>{CLASSIFIER_ID}</ИдКлассификатора>'
              '<Наименование>Основной каталог товаров</Наименование><Товары>\n'.encode())
    for o in offers:
        product = o.guid.split("#", 1)[0]
        sku = f"<Артикул>{escape(o.sku)}</Артикул>" if o.sku is not None else ""
        out.write(f"<Товар><Ид>{escape(product)}</Ид>{sku}<Наименование>{escape(o.name or o.guid)}"
                  "</Наименование><БазоваяЕдиница Код=\"796\" НаименованиеПолное=\"Штука\">шт</БазоваяЕдиница>"
                  "</Товар>\n".encode())
    out.write("</Товары></Каталог>\n</КоммерческаяИнформация>\n".encode())


def write_offers(out: IO[bytes], offers: Iterable[Offer], warehouses: dict[str, str], *, version: str = "2.05",
                 changes_only: bool = False, with_stock: bool = True, with_price: bool = True,
                 comma: bool = False, rests_only: bool = False, flag_as_element: bool = False) -> None:
    """An ``offers.xml`` (or, with ``rests_only``, a ``rests___*.xml``) in the form of ``version``."""
    out.write(_head(version).encode())
    flag = "" if flag_as_element else f' СодержитТолькоИзменения="{str(changes_only).lower()}"'
    out.write(f"<ПакетПредложений{flag}><Ид>{CATALOG_ID}#</Ид><Наименование>Пакет предложений</Наименование>"
              f"<ИдКаталога>{CATALOG_ID}</ИдКаталога><ИдКлассификатора>{CLASSIFIER_ID}</ИдКлассификатора>".encode())
    if flag_as_element:
        out.write(f"<СодержитТолькоИзменения>{str(changes_only).lower()}</СодержитТолькоИзменения>".encode())
    if not rests_only:
        out.write("<ТипыЦен><ТипЦены><Ид>price-retail</Ид><Наименование>Розничная</Наименование>"
                  "<Валюта>UAH</Валюта></ТипЦены></ТипыЦен>".encode())
        out.write(("<Склады>" + "".join(f"<Склад><Ид>{escape(w)}</Ид><Наименование>{escape(n)}</Наименование>"
                                        "</Склад>" for w, n in warehouses.items()) + "</Склады>").encode())
    out.write("<Предложения>\n".encode())
    modern = version >= "2.08"
    for o in offers:
        parts = [f"<Предложение><Ид>{escape(o.guid)}</Ид>"]
        if not rests_only:
            if o.sku is not None:
                parts.append(f"<Артикул>{escape(o.sku)}</Артикул>")
            parts.append(f"<Наименование>{escape(o.name or o.guid)}</Наименование>")
            if o.properties:
                parts.append("<ХарактеристикиТовара>" + "".join(
                    f"<ХарактеристикаТовара><Наименование>{escape(k)}</Наименование><Значение>{escape(v)}</Значение>"
                    "</ХарактеристикаТовара>" for k, v in o.properties.items()) + "</ХарактеристикиТовара>")
            if with_price and o.price is not None:
                parts.append("<Цены><Цена><Представление>price</Представление><ИдТипаЦены>price-retail"
                             f"</ИдТипаЦены><ЦенаЗаЕдиницу>{number(o.price, comma)}</ЦенаЗаЕдиницу>"
                             "<Валюта>UAH</Валюта><Единица>шт</Единица><Коэффициент>1</Коэффициент></Цена></Цены>")
        if with_stock or rests_only:
            parts.append(_stock_xml(o, modern, comma))
        parts.append("</Предложение>\n")
        out.write("".join(parts).encode())
    out.write("</Предложения></ПакетПредложений>\n</КоммерческаяИнформация>\n".encode())


def _stock_xml(o: Offer, modern: bool, comma: bool) -> str:
    if version_total_only(o):
        return f"<Количество>{number(o.stock.get('', 0), comma)}</Количество>"
    if modern:
        rows = "".join(f"<Склад><Ид>{escape(w)}</Ид><Количество>{number(q, comma)}</Количество></Склад>"
                       for w, q in o.stock.items())
        return f"<Остатки><Остаток>{rows}</Остаток></Остатки>"
    total = number(sum(o.stock.values()), comma)
    rows = "".join(f"<Склад ИдСклада={quoteattr(w)} КоличествоНаСкладе={quoteattr(number(q, comma))}/>"
                   for w, q in o.stock.items())
    return f"<Количество>{total}</Количество>{rows}"


def version_total_only(o: Offer) -> bool:
    return list(o.stock) == [""]


def build_exchange(folder: Path, offers: list[Offer], warehouses: dict[str, str], *, version: str = "2.05",
                   changes_only: bool = False, rests_file: bool = False, zipped: bool = True,
                   catalog: bool = True, comma: bool = False) -> list[Path]:
    """The files 1C uploads for one exchange, in upload order (one zip when ``zipped``)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if catalog:
        p = folder / "import.xml"
        with open(p, "wb") as fh:
            write_catalog(fh, offers, version, changes_only)
        files.append(p)
    p = folder / "offers.xml"
    with open(p, "wb") as fh:
        write_offers(fh, offers, warehouses, version=version, changes_only=changes_only,
                     with_stock=not rests_file, comma=comma)
    files.append(p)
    if rests_file:
        p = folder / f"rests___{uuid.uuid4()}.xml"
        with open(p, "wb") as fh:
            write_offers(fh, offers, warehouses, version=version, changes_only=changes_only, rests_only=True,
                         comma=comma)
        files.append(p)
    if not zipped:
        return files
    archive = folder / f"exchange_{uuid.uuid4().hex[:8]}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.name)
    return [archive]


def catalogue(n: int, warehouses: list[str], *, seed: int = 1, prefix: str = "ERP-", variants_every: int = 7,
              start: int = 1) -> list[Offer]:
    """``n`` offers with stock on each warehouse; every ``variants_every``-th is a variant (``product#variant``)."""
    return list(iter_catalogue(n, warehouses, seed=seed, prefix=prefix, variants_every=variants_every, start=start))


def iter_catalogue(n: int, warehouses: list[str], *, seed: int = 1, prefix: str = "ERP-", variants_every: int = 7,
                   start: int = 1) -> Iterator[Offer]:
    """The same offers one at a time, so a 100,000-offer package costs no memory to build."""
    for i in range(start, start + n):
        guid = str(uuid.UUID(int=(seed << 64) + i))
        if variants_every and i % variants_every == 0:
            guid = f"{guid}#{uuid.UUID(int=(seed << 64) + i + 10**9)}"
        yield Offer(guid=guid, sku=f"{prefix}{i:06d}", name=f"Товар {i}", price=100 + i % 50 + 0.5,
                    stock={w: float((i * (k + 3)) % 17) for k, w in enumerate(warehouses)})
