"""Poison at the door: what the sidecar could not process later is refused now with a 4xx, nothing of it
is stored, and a good change sent afterwards still reaches KeyCRM within seconds (real processes)."""

import json
import time

import pytest
import requests

from keycrm_bridge import signing

from bridge import SECRET, event
from door import TOKEN, DoorBridge, Slowloris, batch


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    b = DoorBridge(tmp_path_factory.mktemp("door"))
    yield b
    b.stop()


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


@pytest.mark.parametrize("case", list(BATCH_POISON))
def test_signed_poison_batch_is_refused_and_the_sync_goes_on(bridge, case):
    body = BATCH_POISON[case]
    before = bridge.rows()
    r = bridge.signed("POST", "/v1/events", body)
    assert r.status_code in (400, 422), (case, r.status_code, r.text)
    assert r.json()["error"] and r.headers["Content-Type"].startswith("application/json")
    assert bridge.rows() == before, "nothing of a refused batch is stored"
    assert bridge.good_change_arrives(timeout=10) < 10


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


@pytest.mark.parametrize("case", list(WEBHOOK_POISON))
def test_poison_webhook_is_refused_and_never_logs_the_token(bridge, case):
    before = bridge.rows()
    r = bridge.webhook(WEBHOOK_POISON[case])
    assert r.status_code in (400, 422), (case, r.status_code, r.text)
    assert bridge.rows() == before
    assert bridge.good_change_arrives(timeout=10) < 10
    assert TOKEN not in bridge.logs()


def test_a_good_webhook_is_still_admitted(bridge):
    before = bridge.rows()
    r = bridge.webhook(b'{"data": [{"offer_id": 1, "sku": "WH-ONLY", "in_stock": 5, "in_reserve": 1, "extra": [1]}]}')
    assert r.status_code == 202, r.text
    assert bridge.rows()["keycrm_inbox"] == before["keycrm_inbox"] + 1


def test_oversized_chunked_signed_body_is_413_not_401(bridge):
    body = b'{"events": [' + b" " * (2 * 1024 * 1024) + b"]}"
    headers = signing.signed_headers(SECRET, "POST", "/v1/events", body, time.time())

    def chunks():
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]
    before = bridge.rows()
    for path in ("/v1/events", f"/v1/keycrm/webhook/{TOKEN}"):
        r = requests.post(bridge.url + path, data=chunks(), headers=headers, timeout=30)
        assert r.status_code == 413, (path, r.status_code, r.text)
    assert bridge.rows() == before
    assert bridge.good_change_arrives(timeout=10) < 10


def test_replay_within_the_window_is_answered_alike_and_stored_once(bridge):
    body = batch(*[event(f"REPLAY-{i}", i) for i in range(50)])
    headers = signing.signed_headers(SECRET, "POST", "/v1/events", body, time.time())
    before = bridge.rows()["inbox"]
    with requests.Session() as s:
        answers = [s.post(bridge.url + "/v1/events", data=body, headers=headers, timeout=30) for _ in range(200)]
    assert {(a.status_code, a.text) for a in answers} == {(202, answers[0].text)}
    assert answers[0].json() == {"accepted": 50}
    assert bridge.rows()["inbox"] == before + 1
    assert bridge.good_change_arrives(timeout=10) < 10


def test_fifty_slow_connections_do_not_starve_the_plugin(bridge):
    with Slowloris(bridge.url, 50) as slow:
        for n in range(10):
            r = requests.post(bridge.url + "/v1/events", data=(b := batch(event(f"SLOW-{n}", n))),
                              headers=signing.signed_headers(SECRET, "POST", "/v1/events", b, time.time()),
                              timeout=5)
            assert r.status_code == 202
        assert bridge.good_change_arrives(timeout=10) < 10
        assert slow.open_count() == 50, "the slow connections were all held open meanwhile"


def test_no_answer_was_a_500(bridge):
    assert '"status": 500' not in bridge.logs() and "unhandled error" not in bridge.logs()
