"""A streaming CommerceML 2 reader (2.03-2.10): catalogue items and the offers' stock and price.

Reads with the stdlib's C ``iterparse`` behind a guard that refuses any DTD (so no entity may be
declared: none is fetched, none expands; see ``safety.PrologGuard``), through a byte counter, and
drops each offer once read, so memory stays flat whatever the package size. Stock comes in any of its published forms:

* ``<Количество>`` of the offer (2.03-2.07: the total, no warehouse);
* ``<Склад ИдСклада=… КоличествоНаСкладе=…/>`` per warehouse (2.04-2.07);
* ``<Остатки><Остаток><Количество>`` (total) or ``<Остаток><Склад><Ид>…<Количество>`` (2.08-2.10),
  also in separate ``rests___*.xml`` files that carry only ``<Ид>`` and the stock.

When both a total and per-warehouse figures are present, the per-warehouse ones are the stock
(the total is their sum; counting both would double it).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - fed only through PrologGuard, which refuses DTDs
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO

from .safety import CountingReader, DtdRefused, HostilePackage, Limits, PrologGuard

ANY_WAREHOUSE = ""  # stock given without a warehouse (the total of the offer)
MAX_QUANTITY = Decimal(10) ** 12
OFFER_TAGS = {"Предложение"}
PRODUCT_TAGS = {"Товар"}
INTERESTING = {"Предложение", "Товар", "Склад", "ТипЦены", "СодержитТолькоИзменения"}
PACKAGE_TAGS = {"ПакетПредложений": "offers", "ИзмененияПакетаПредложений": "offers", "Каталог": "catalog",
                "Классификатор": "classifier"}


@dataclass
class Item:
    """One ``<Товар>`` (catalogue) or ``<Предложение>`` (offer) as the ERP sent it."""

    guid: str
    sku: str | None
    name: str | None = None
    price: Decimal | None = None
    stock: dict[str, Decimal] | None = None     # ERP warehouse id -> on hand; None: no stock given
    problem: str | None = None                  # why this item cannot be used (shown, never applied)
    is_offer: bool = True
    properties: list[tuple[str, str]] | None = None  # a variant's characteristics (colour, size); None: not given


@dataclass
class PackageInfo:
    version: str = ""
    kind: str = ""                     # offers | catalog | classifier
    changes_only: bool | None = None   # None: the package did not say (treated as full by CommerceML)
    warehouses: dict[str, str] = field(default_factory=dict)
    price_types: dict[str, str] = field(default_factory=dict)


_LOCAL: dict[object, str] = {}


def local(tag: object) -> str:
    """``{urn:1C.ru:commerceml_2}Товар`` → ``Товар`` (memoised: a document has few distinct tags)."""
    name = _LOCAL.get(tag)
    if name is None:
        name = (tag if isinstance(tag, str) else "").rsplit("}", 1)[-1]
        if len(_LOCAL) < 2000:  # a hostile document's endless new tags must not grow it
            _LOCAL[tag] = name
    return name


def parse_quantity(text: str | None) -> Decimal:
    """``"1 234,5"`` → 1234.5; anything else that is not a finite number raises ValueError."""
    raw = (text or "").strip().replace("\xa0", "").replace(" ", "").replace(",", ".")
    if not raw:
        raise ValueError("empty number")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"not a number: {raw[:40]!r}") from None
    if not value.is_finite() or abs(value) > MAX_QUANTITY:
        raise ValueError(f"number out of range: {raw[:40]!r}")
    return value


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "да", "yes")


def _kids(elem: ET.Element) -> dict[str, ET.Element]:
    """An element's children by local name (the first of each): one pass instead of one per lookup."""
    out: dict[str, ET.Element] = {}
    names = _LOCAL
    for c in elem:
        n = names.get(c.tag) or local(c.tag)
        if n not in out:
            out[n] = c
    return out


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for c in elem:
        if local(c.tag) == name:
            return c
    return None


def _children(elem: ET.Element, name: str) -> Iterator[ET.Element]:
    return (c for c in elem if local(c.tag) == name)


def _text(elem: ET.Element | None) -> str | None:
    if elem is None or elem.text is None:
        return None
    return elem.text.strip()


def _characteristics(elem: ET.Element | None) -> list[tuple[str, str]] | None:
    """``<ХарактеристикиТовара><ХарактеристикаТовара><Наименование>Цвет</…><Значение>Красный</…>`` →
    [("Цвет", "Красный")], in the document's order. One without a name or a value says nothing (KeyCRM
    ignores such a property too) and is left out."""
    if elem is None:
        return None
    out = []
    for c in _children(elem, "ХарактеристикаТовара"):
        name, value = _text(_child(c, "Наименование")), _text(_child(c, "Значение"))
        if name and value:
            out.append((name, value))
    return out


class Reader:
    """Iterate a CommerceML document's items; ``info`` fills in as the header goes by."""

    def __init__(self, source: IO[bytes], what: str, limits: Limits | None = None,
                 price_type: str = "") -> None:
        self.limits = limits or Limits()
        self.source = CountingReader(source, self.limits.max_xml_bytes, what)
        self.what = what
        self.price_type = price_type
        self.info = PackageInfo()

    def __iter__(self) -> Iterator[Item]:
        elems: list[ET.Element] = []   # the open elements (an offer read is removed from its parent)
        names: list[str] = []          # and their local names
        seen, max_depth = _LOCAL, self.limits.max_depth
        source = PrologGuard(self.source, self.what)
        try:
            for event, elem in ET.iterparse(source, events=("start", "end")):  # noqa: S314 - see PrologGuard
                name = seen.get(elem.tag) or local(elem.tag)
                if event == "start":
                    elems.append(elem)
                    names.append(name)
                    if len(names) <= 2:
                        self._start(name, elem, len(names))
                    elif len(names) > max_depth:
                        raise HostilePackage(f"{self.what} nests deeper than {max_depth} levels")
                    continue
                elems.pop()
                names.pop()
                if name not in INTERESTING:
                    continue  # read as part of its offer or header element
                item = self._end(name, elem, names[-1] if names else "")
                if item is not None:
                    yield item
                if elems and (name in OFFER_TAGS or name in PRODUCT_TAGS):
                    elems[-1].remove(elem)  # what is read is dropped: memory stays flat
        except DtdRefused:
            raise
        except ET.ParseError as exc:
            raise HostilePackage(f"{self.what} is not well-formed XML ({exc})") from None
        if not self.info.kind:
            raise HostilePackage(f"{self.what} is not a CommerceML document (no catalogue or offer package)")

    def _start(self, name: str, elem: ET.Element, depth: int) -> None:
        if depth == 1:
            if name != "КоммерческаяИнформация":
                raise HostilePackage(f"{self.what} is not CommerceML (root <{name[:40]}>)")
            self.info.version = elem.get("ВерсияСхемы", "")
        elif name in PACKAGE_TAGS and depth == 2:
            kind = PACKAGE_TAGS[name]
            if kind != "classifier" or not self.info.kind:
                self.info.kind = kind
            flag = elem.get("СодержитТолькоИзменения")
            if flag is not None and kind != "classifier":
                self.info.changes_only = _truthy(flag)
            if name == "ИзмененияПакетаПредложений":
                self.info.changes_only = True

    def _end(self, name: str, elem: ET.Element, parent: str) -> Item | None:
        if name == "СодержитТолькоИзменения" and parent in ("ПакетПредложений", "Каталог"):
            self.info.changes_only = _truthy(elem.text)
        elif name == "Склад" and parent == "Склады":
            wid = _text(_child(elem, "Ид"))
            if wid:
                self.info.warehouses[wid] = _text(_child(elem, "Наименование")) or wid
        elif name == "ТипЦены" and parent == "ТипыЦен":
            pid = _text(_child(elem, "Ид"))
            if pid:
                self.info.price_types[pid] = _text(_child(elem, "Наименование")) or pid
        elif name in OFFER_TAGS and parent == "Предложения":
            return self._offer(elem)
        elif name in PRODUCT_TAGS and parent == "Товары":
            kids = _kids(elem)
            guid = _text(kids.get("Ид")) or ""
            # (Before 2.07 a characteristic could come as a <Товар> "product#variant" with its values.)
            return Item(guid=guid, sku=_text(kids.get("Артикул")), name=_text(kids.get("Наименование")),
                        is_offer=False, problem=None if guid else "the product has no <Ид>",
                        properties=_characteristics(kids.get("ХарактеристикиТовара")))
        return None

    def _offer(self, elem: ET.Element) -> Item:
        kids = _kids(elem)
        item = Item(guid=_text(kids.get("Ид")) or "", sku=_text(kids.get("Артикул")),
                    name=_text(kids.get("Наименование")),
                    properties=_characteristics(kids.get("ХарактеристикиТовара")))
        if not item.guid:
            item.problem = "the offer has no <Ид>"
            return item
        try:
            item.stock = self._stock(elem, kids)
            prices = kids.get("Цены")
            item.price = self._price(prices) if prices is not None else None
        except ValueError as exc:
            item.problem = f"unreadable figure: {exc}"
        return item

    def _stock(self, elem: ET.Element, kids: dict[str, ET.Element]) -> dict[str, Decimal] | None:
        per: dict[str, Decimal] = {}
        total: Decimal | None = None

        def add(wid: str | None, qty: str | None) -> None:
            key = (wid or "").strip()
            per[key] = per.get(key, Decimal(0)) + parse_quantity(qty)

        if "Склад" in kids:  # 2.04-2.07: attributes
            for s in _children(elem, "Склад"):
                if s.get("ИдСклада") is not None:
                    add(s.get("ИдСклада"), s.get("КоличествоНаСкладе"))
        rests = kids.get("Остатки")
        for rest in _children(rests, "Остаток") if rests is not None else ():
            wh_elems = list(_children(rest, "Склад"))
            if not wh_elems:
                q = _text(_child(rest, "Количество"))
                if q is not None:
                    total = (total or Decimal(0)) + parse_quantity(q)
            for s in wh_elems:
                q = _text(_child(s, "Количество")) or _text(_child(rest, "Количество"))
                add(_text(_child(s, "Ид")), q)
        q = _text(kids.get("Количество"))
        if q is not None and total is None:
            total = parse_quantity(q)
        if per:
            return per
        return None if total is None else {ANY_WAREHOUSE: total}

    def _price(self, prices: ET.Element) -> Decimal | None:
        first: Decimal | None = None
        for p in _children(prices, "Цена"):
            raw = _text(_child(p, "ЦенаЗаЕдиницу"))
            if raw is None:
                continue
            value = parse_quantity(raw)
            type_id = _text(_child(p, "ИдТипаЦены")) or ""
            if self.price_type and self.price_type in (type_id, self.info.price_types.get(type_id)):
                return value
            first = value if first is None else first
        return None if self.price_type else first
