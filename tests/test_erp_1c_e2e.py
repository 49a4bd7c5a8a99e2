"""1C / BAS over the CommerceML exchange, end to end with real processes (KeyCRM simulator,
gunicorn, worker, WooCommerce peer, and a 1C client running the real dialogue)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from keycrm_bridge.erp.doubles.cml import Offer, build_exchange, catalogue, write_offers
from keycrm_bridge.erp.doubles.onec_client import ExchangeFailed

from bridge import wait_until
from erp_stack import WAREHOUSES, ErpStack

N = 10_000
WOO = [f"ERP-{i:06d}" for i in range(1, 101)]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("erp1c")
    st = ErpStack(tmp).start(N, WOO)
    yield st
    st.stop()


def expected(offers: list[Offer]) -> dict[str, dict[int, float]]:
    return {o.sku: {1: o.stock.get("wh-main", 0), 2: o.stock.get("wh-shop", 0)} for o in offers if o.sku}


def exchange(stack: ErpStack, tmp: Path, offers: list[Offer], **kw) -> dict[str, str]:
    files = build_exchange(tmp, offers, WAREHOUSES, **kw)
    ex = stack.onec().run(files, chunk=256 * 1024, max_polls=900)
    assert ex.max_request_s < 5, ex.max_request_s
    stack.wait_erp_idle(120)
    return ex.imports


def test_full_exchange_of_10k_offers_on_two_warehouses_then_the_same_again(stack, tmp_path):
    offers = catalogue(N, list(WAREHOUSES))
    before = stack.sim.control.last_seq()
    imports = exchange(stack, tmp_path / "a", offers, version="2.05", comma=True)
    assert "offers.xml" in imports and "10000 items (full)" in imports["offers.xml"]
    puts = stack.stock_puts(before)
    assert len(puts) <= 2, [p.get("body", {}).get("warehouse_id") for p in puts]   # ≤ 1 per warehouse
    want = expected(offers)
    sample = [o.sku for o in offers[::97]] + WOO[:5]
    assert {s: stack.truth([s])[s] for s in sample} == {s: want[s] for s in sample}
    # WooCommerce follows KeyCRM's sellable (reserve 0: on hand of both warehouses).
    wait_until(lambda: all(stack.woo_stock(s) == sum(want[s].values()) for s in WOO), timeout=60,
               what="WooCommerce follows the ERP")
    st = stack.status()["erp"]
    assert st["last_package"]["package"] == "full" and st["last_package"]["rows_applied"] > 0
    # The ERP runs as a worker lane like the others: its steps report under the same heartbeat.
    stages = stack.status()["stages"]
    assert stages["erp-jobs"]["lane"] == "erp" and stages["erp-jobs"]["last_ok_at"], stages.get("erp-jobs")
    assert stages["erp-jobs"]["failures"] == 0 and stages["erp-follow-ups"]["lane"] == "erp"

    again = stack.sim.control.last_seq()
    imports = exchange(stack, tmp_path / "b", offers, version="2.05", comma=True)
    assert "0 stock rows written" in imports["offers.xml"], imports
    assert stack.stock_puts(again) == []


def test_changes_only_package_of_50_offers_touches_only_those(stack, tmp_path):
    base = catalogue(N, list(WAREHOUSES))
    exchange(stack, tmp_path / "base", base, version="2.10")
    changed = [Offer(o.guid, o.sku, o.name, o.price, {"wh-main": 40.0, "wh-shop": 2.0}) for o in base[200:250]]
    before = stack.sim.control.last_seq()
    imports = exchange(stack, tmp_path / "c", changed, version="2.10", changes_only=True, catalog=False,
                       rests_file=True)
    rests = [k for k in imports if k.startswith("rests___")]
    assert rests and "changes only" in imports[rests[0]]
    puts = stack.stock_puts(before)
    rows = [(p["body"]["warehouse_id"], r["sku"]) for p in puts for r in p["body"]["stocks"]]
    assert sorted({s for _, s in rows}) == sorted(o.sku for o in changed)
    assert len(puts) <= 2
    assert stack.truth([changed[0].sku])[changed[0].sku] == {1: 40, 2: 2}
    untouched = base[300]
    assert stack.truth([untouched.sku])[untouched.sku] == expected([untouched])[untouched.sku]


def test_full_package_lacking_30_percent_reports_them_and_zeroes_nothing(stack, tmp_path):
    base = catalogue(N, list(WAREHOUSES))
    exchange(stack, tmp_path / "base", base)
    kept = base[: int(N * 0.7)]
    lacking = base[int(N * 0.7):]
    before = stack.sim.control.last_seq()
    exchange(stack, tmp_path / "d", kept)
    assert stack.stock_puts(before) == []          # nothing differs among the 70 %; nothing is zeroed
    st = stack.status()["erp"]
    reasons = {r["reason"]: r["count"] for r in st["set_aside"]}
    assert any("not in the ERP's last full package" in k and v == len(lacking) for k, v in reasons.items()), reasons
    probe = lacking[5]
    assert stack.truth([probe.sku])[probe.sku] == expected([probe])[probe.sku]


def test_sidecar_restart_in_the_middle_of_an_upload(stack, tmp_path):
    offers = catalogue(3000, list(WAREHOUSES), seed=1)
    offers = [Offer(o.guid, o.sku, o.name, o.price, {"wh-main": 7.0, "wh-shop": 1.0}) for o in offers]
    files = build_exchange(tmp_path / "r", offers, WAREHOUSES)
    client = stack.onec(retry_for_s=60)
    restarted = []

    def crash(name: str, sent: int) -> None:
        if not restarted and sent >= 64 * 1024:
            restarted.append(sent)
            stack.restart_web()

    client.on_chunk = crash
    ex = client.run(files, chunk=32 * 1024)
    assert restarted and "3000 items" in ex.imports["offers.xml"]
    stack.wait_erp_idle(120)
    assert stack.truth([offers[10].sku])[offers[10].sku] == {1: 7, 2: 1}


def _zip_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


XXE = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><КоммерческаяИнформация>'
       '<ПакетПредложений><Предложения><Предложение><Ид>&x;</Ид><Артикул>ERP-000001</Артикул><Количество>999'
       '</Количество></Предложение></Предложения></ПакетПредложений></КоммерческаяИнформация>').encode()
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol">' + "".join(
    f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + ']><КоммерческаяИнформация>&j;</КоммерческаяИнформация>').encode()


def test_hostile_packages_are_refused_and_nothing_is_applied(stack, tmp_path):
    good = catalogue(60, list(WAREHOUSES))
    exchange(stack, tmp_path / "g", good, catalog=False)
    before = stack.sim.control.last_seq()
    cases = {
        "xxe.xml": (XXE, "DTD"),
        "laughs.xml": (LAUGHS, "DTD"),
        "broken.xml": ("<КоммерческаяИнформация><ПакетПредложений><unclosed>".encode(), "well-formed"),
        "bomb.zip": (_zip_of("offers.xml", b"<a>" + b" " * (300 * 2**20) + b"</a>"), "zip bomb"),
    }
    for name, (data, words) in cases.items():
        client = stack.onec()
        client.call("checkauth")
        client.session.cookies.set("kcb_1c_session", client.log.answers[-1][1].splitlines()[2])
        client.call("init")
        client.call("file", data=data, filename=name)
        doc = "offers.xml" if name.endswith(".zip") else name
        with pytest.raises(ExchangeFailed) as err:
            client.import_(doc)
        assert words in err.value.reason, (name, err.value.reason)
    # A 2 GB upload: refused by its declared size before a byte is stored ...
    client = stack.onec()
    lines = client.call("checkauth")
    client.session.cookies.set(lines[1], lines[2])
    client.call("init")

    def endless(total: int):
        block = b"<" * (1 << 20)
        for _ in range(total // len(block)):
            yield block

    class Sized:
        """2 GB that is never held: read block by block; its length goes out as Content-Length."""
        def __init__(self, n):
            self.n = self.left = n
        def __len__(self):
            return self.n
        def __iter__(self):
            return endless(self.n)
        def read(self, k=-1):
            k = min(self.left, 1 << 20 if k is None or k < 0 else k)
            self.left -= k
            return b"<" * k

    with pytest.raises(ExchangeFailed, match="nothing was stored"):
        client.call("file", data=Sized(2 * 2**30), filename="huge.xml")
    # ... and, sent without a length (chunked), cut off at the limit while streaming.
    with pytest.raises(ExchangeFailed, match="ERP_MAX_UPLOAD_MB"):
        client.call("file", data=endless(2 * 2**30), filename="huge.xml")
    # ... wrong credentials get a failure line and no session.
    bad = stack.onec()
    bad.auth = ("1c-exchange", "wrong-password-here")
    with pytest.raises(ExchangeFailed, match="wrong login or password") as err:
        bad.call("checkauth")
    assert err.value.status == 401
    assert stack.stock_puts(before) == []
    data_dir = Path(stack.env["DATABASE_PATH"]).parent / "erp-1c"
    assert sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file()) < 100 * 2**20
    # The bridge's other work goes on: a good package right after is applied.
    changed = [Offer(o.guid, o.sku, o.name, o.price, {"wh-main": 11.0, "wh-shop": 0.0}) for o in good[:3]]
    exchange(stack, tmp_path / "after", changed, catalog=False, changes_only=True)
    assert stack.truth([changed[0].sku])[changed[0].sku] == {1: 11, 2: 0}
    assert stack.status()["erp"]["last_failure"]["error"]


def test_a_package_sent_in_plain_xml_in_windows_1251(stack, tmp_path):
    buf = io.BytesIO()
    write_offers(buf, [Offer("cp-1", "ERP-000077", "Чай", 5, {"wh-main": 4, "wh-shop": 4})], WAREHOUSES,
                 changes_only=True)
    text = buf.getvalue().decode().replace('encoding="UTF-8"', 'encoding="windows-1251"')
    path = tmp_path / "offers.xml"
    path.write_bytes(text.encode("cp1251"))
    stack.onec().run([path])
    stack.wait_erp_idle()
    assert stack.truth(["ERP-000077"])["ERP-000077"] == {1: 4, 2: 4}
