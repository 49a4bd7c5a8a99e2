"""Generated hostile input for the door, shared by its fuzz test and bench/hostile.py: event batches and
KeyCRM webhooks with every value drawn inside the contract's bounds or just outside them, written out
in every encoding a sender could try. ``Door`` posts them in-process (Flask's test client against
``create_app`` on a real SQLite file) and checks the property: never a 5xx, nothing stored from a
refused body, and every admitted body is one the worker's next stage can expand."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from keycrm_bridge import signing
from keycrm_bridge.api import create_app
from keycrm_bridge.config import load_settings
from keycrm_bridge.events import changes_for
from keycrm_bridge.inbox import inbox_path
from keycrm_bridge.store import Store

from bridge import SECRET, bridge_env, event

TOKEN = "fuzz-webhook-token-0123456789abcdef"
MAX_SAFE = 2**53 - 1

edge_ints = st.sampled_from([0, 1, -1, MAX_SAFE, MAX_SAFE + 1, 2**63 - 1, 2**63, 2**64, -(2**63)])
ints = st.one_of(edge_ints, st.integers(-(2**70), 2**70), st.integers(0, 10**6))
edge_numbers = st.sampled_from([1e9, 1e9 + 1, -1e9, -1e9 - 1, 1e300, -1e300, 1e308, 0.5, -0.0, 2.0**53,
                                float("nan"), float("inf"), float("-inf")])
numbers = st.one_of(edge_numbers, ints, st.floats(), st.floats(-2e9, 2e9))
texts = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["\ud800", "A\udfffB", "\x00", "SKU\n", "x" * 191, "x" * 192, "СКУ-1", "😀"]),
)
timestamps = st.one_of(edge_numbers, st.sampled_from([999999999, 1e10, time.time() + 2 * 86400]))
junk = st.recursive(st.one_of(st.none(), st.booleans(), numbers, texts),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(texts, inner, max_size=3)), max_leaves=4)


def mostly(draw: Any, valid: Any, hostile: Any) -> Any:
    """A value inside the bounds seven times in eight, else one at or beyond them."""
    return draw(hostile if draw(st.integers(0, 7)) == 0 else valid)


good_ids = st.integers(1, MAX_SAFE)
good_numbers = st.one_of(st.integers(-1000, 1000), st.floats(-1e9, 1e9), st.sampled_from([1e9, -1e9, 0]))
good_texts = st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=30),
                       st.sampled_from(["x" * 191, "СКУ-1", "😀", "SKU-000001"]))
good_times = st.floats(1e9, time.time() + 3600)


@st.composite
def events(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["stock.set"] * 5 + ["product.upsert", "product.deleted", "bogus"]))
    cause = draw(st.sampled_from(["manual", "rest", "import", "order", "sidecar"]))
    ev: dict[str, Any] = {"id": uuid.uuid4().hex, "type": kind, "occurred_at": mostly(draw, good_times, timestamps),
                          "product_id": mostly(draw, good_ids, ints), "parent_id": mostly(draw, good_ids, ints),
                          "sku": mostly(draw, good_texts, texts), "cause": cause}
    if cause == "order":
        ev["order_id"] = mostly(draw, good_ids, ints)
    if kind == "stock.set":
        ev["stock_quantity"] = mostly(draw, st.one_of(st.none(), good_numbers), numbers)
        if draw(st.booleans()):
            ev["quantity_delta"] = mostly(draw, good_numbers, numbers)
    if kind == "product.upsert":
        ev["product"] = {"name": mostly(draw, good_texts, texts),
                         "price": mostly(draw, st.floats(0, 1e12), numbers),
                         "weight": mostly(draw, st.floats(0, 1e9), numbers),
                         "stock_quantity": mostly(draw, good_numbers, numbers), "manage_stock": draw(st.booleans())}
    if draw(st.integers(0, 19)) == 0:
        ev[draw(texts)] = draw(junk)
    return ev


def _encode(value: Any, how: str) -> bytes:
    if how == "ascii":
        return json.dumps(value).encode()
    text = json.dumps(value, ensure_ascii=False)
    if how == "utf-8":  # lone surrogates become CESU-8 style bytes
        return text.encode("utf-8", "surrogatepass")
    if how == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    return text.encode("utf-16", "surrogatepass")


encodings = st.sampled_from(["ascii"] * 6 + ["utf-8"] * 6 + ["utf-8-sig", "utf-16"])


@st.composite
def batch_bodies(draw: Any) -> bytes:
    value: Any = {"site": mostly(draw, good_texts, texts), "events": draw(st.lists(events(), min_size=1, max_size=3))}
    if draw(st.integers(0, 19)) == 0:
        value = draw(junk)
    body = _encode(value, draw(encodings))
    depth = draw(st.sampled_from([0] * 18 + [17, 5000]))
    return b"[" * depth + body + b"]" * depth


@st.composite
def webhook_bodies(draw: Any) -> bytes:
    row: Any = {"offer_id": mostly(draw, st.one_of(st.none(), good_ids), ints), "sku": mostly(draw, good_texts, texts),
                "in_stock": mostly(draw, good_numbers, numbers), "in_reserve": mostly(draw, good_numbers, numbers)}
    if draw(st.integers(0, 9)) == 0:
        row[draw(texts)] = draw(junk)
    rows: Any = [row] + draw(st.lists(st.just(row), max_size=2))
    if draw(st.booleans()):
        rows = {"data": rows}
    if draw(st.integers(0, 19)) == 0:
        rows = draw(junk)
    depth = draw(st.sampled_from([0] * 18 + [17, 5000]))
    return b"[" * depth + _encode(rows, draw(encodings)) + b"]" * depth


# One body per class of poison the door must refuse (signed batches, and webhooks).
def good_event_text(**override):
    ev = {**event("POISON-1", 4), **override}
    return json.dumps({"events": [ev]})


def raw(text, key, literal):
    """A batch whose ``key`` holds ``literal`` as written (JSON the json module would never produce)."""
    return good_event_text(**{key: "@@"}).replace('"@@"', literal).encode()


BATCH_POISON = {
    "product_id 2^63": raw(None, "product_id", str(2**63)),
    "parent_id 2^63": raw(None, "parent_id", str(2**63)),
    "stock_quantity 2^63": raw(None, "stock_quantity", str(2**63)),
    "product_id 2^53": raw(None, "product_id", str(2**53)),
    "occurred_at NaN": raw(None, "occurred_at", "NaN"),
    "stock_quantity Infinity": raw(None, "stock_quantity", "Infinity"),
    "stock_quantity 1e309": raw(None, "stock_quantity", "1e309"),
    "stock_quantity 1e300": raw(None, "stock_quantity", "1e300"),
    "stock_quantity -1e300": raw(None, "stock_quantity", "-1e300"),
    "lone surrogate in sku": raw(None, "sku", '"\\ud800"'),
    "lone low surrogate in a key": good_event_text().replace('{"events"', '{"\\udc00": 1, "events"', 1).encode(),
    "CESU-8 surrogate bytes": raw(None, "sku", '"A\xed\xa0\x80"').replace(b"\xc3\xad\xc2\xa0\xc2\x80", b"\xed\xa0\x80"),
    "control character in sku": raw(None, "sku", '"A\\u0000B"'),
    "UTF-8 byte-order mark": b"\xef\xbb\xbf" + good_event_text().encode(),
    "UTF-16 with BOM": good_event_text().encode("utf-16"),
    "UTF-16 without BOM": good_event_text().encode("utf-16-le"),
    "deep nesting": b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nesting inside the limit of json": b'{"site": ' + b"[" * 900 + b"]" * 900 + b', "events": []}',
    "occurred_at a year ahead": raw(None, "occurred_at", str(time.time() + 365 * 86400)),
    "a 5,000-digit integer": raw(None, "product_id", "9" * 5000),
}


WEBHOOK_POISON = {
    "in_stock Infinity": b'[{"offer_id": 1, "sku": "LIVE-1", "in_stock": Infinity, "in_reserve": 0}]',
    "in_stock NaN": b'[{"offer_id": 1, "sku": "LIVE-1", "in_stock": NaN, "in_reserve": 0}]',
    "in_stock 1e309": b'[{"offer_id": 1, "sku": "LIVE-1", "in_stock": 1e309, "in_reserve": 0}]',
    "in_reserve 1e300": b'[{"offer_id": 1, "sku": "LIVE-1", "in_stock": 1, "in_reserve": 1e300}]',
    "offer_id 2^63": f'[{{"offer_id": {2**63}, "sku": "LIVE-1", "in_stock": 1, "in_reserve": 0}}]'.encode(),
    "offer_id 0": b'[{"offer_id": 0, "sku": "LIVE-1", "in_stock": 1, "in_reserve": 0}]',
    "lone surrogate sku": b'[{"offer_id": 1, "sku": "\\ud800", "in_stock": 1, "in_reserve": 0}]',
    "BOM": b'\xef\xbb\xbf[{"offer_id": 1, "sku": "LIVE-1", "in_stock": 1, "in_reserve": 0}]',
    "UTF-16": '[{"offer_id": 1, "sku": "LIVE-1", "in_stock": 1, "in_reserve": 0}]'.encode("utf-16"),
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep nesting in a row": b'[{"offer_id": 1, "sku": "A", "in_stock": 1, "in_reserve": 0, "x": '
                             + b"[" * 900 + b"]" * 900 + b"}]",
}


class Door:
    """The API in-process on a real SQLite file; ``post`` checks one body against the property."""

    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "fuzz.sqlite3"
        self.settings = load_settings(bridge_env(self.db, KEYCRM_WEBHOOK_TOKEN=TOKEN))
        self.client = create_app(self.settings).test_client()
        self.cases = self.five_xx = self.admitted = 0

    def rows(self) -> tuple[int, int]:
        with sqlite3.connect(inbox_path(str(self.db))) as c:
            batches = c.execute("SELECT count(*) FROM inbox").fetchone()[0]
        with sqlite3.connect(self.db) as c:
            return batches, c.execute("SELECT count(*) FROM keycrm_inbox").fetchone()[0]

    def post(self, route: str, body: bytes) -> int:
        before = self.rows()
        if route == "events":
            headers = signing.signed_headers(SECRET, "POST", "/v1/events", body, time.time())
            r = self.client.post("/v1/events", data=body, headers=headers)
        else:
            r = self.client.post(f"/v1/keycrm/webhook/{TOKEN}", data=body,
                                 headers={"Content-Type": "application/json"})
        self.cases += 1
        self.five_xx += r.status_code >= 500
        assert r.status_code < 500, (r.status_code, r.get_data(as_text=True)[:300], body[:300])
        after = self.rows()
        if r.status_code == 202:
            self.admitted += 1
            grew = (after[0] - before[0], after[1] - before[1])
            assert grew == ((1, 0) if route == "events" else (0, 1)), grew
        else:
            assert r.is_json and r.get_json()["error"], r.get_data(as_text=True)[:300]
            assert after == before, ("refused input was stored", r.status_code, body[:300])
        return r.status_code

    def expand_admitted(self) -> int:
        """The worker's first stage over everything admitted: it must neither fail nor leave a batch behind."""
        store = Store(str(self.db))
        try:
            total = 0
            while (n := store.expand_inbox(lambda ev: changes_for(ev, self.settings))) != (0, 0):
                total += n[0]
            assert store.inbox_stats()[0] == 0
            for _, rows in store.peek_keycrm_inbox(10**6)[1]:
                for row in rows:  # what absorbing a webhook computes from each row
                    assert isinstance(row["sku"], str)
                    json.dumps(row, allow_nan=False)
                    float(row["in_stock"]) - float(row["in_reserve"])
            return total
        finally:
            store.close()
