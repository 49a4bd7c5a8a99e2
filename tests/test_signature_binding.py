"""A signature is good for its own request only (method, path, query, time, body), against gunicorn."""

import time

import pytest
import requests

from keycrm_bridge import signing

from bridge import SECRET, event
from door import DoorBridge, batch


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    b = DoorBridge(tmp_path_factory.mktemp("sig"))
    yield b
    b.stop()


def headers_for(method, target, body=b"", ts=None):
    return signing.signed_headers(SECRET, method, target, body, time.time() if ts is None else ts)


def test_status_headers_do_not_authorise_other_routes(bridge):
    status = headers_for("GET", "/v1/status")
    assert requests.get(bridge.url + "/v1/status", headers=status, timeout=10).status_code == 200
    for method, path in (("POST", "/v1/guards/1/confirm"), ("POST", "/v1/resync"), ("POST", "/v1/events"),
                         ("GET", "/v1/guards"), ("GET", "/v1/status?verbose=1"), ("POST", "/v1/status")):
        r = requests.request(method, bridge.url + path, headers=status, timeout=10)
        assert r.status_code in (401, 405), (method, path, r.status_code, r.text)
        if r.status_code == 401:
            assert r.json()["detail"] == "bad signature"
    # The same headers with another body, or the batch's headers on another path, are refused too.
    body = batch(event("SIG-1", 1))
    good = headers_for("POST", "/v1/events", body)
    assert requests.post(bridge.url + "/v1/ping", data=body, headers=good, timeout=10).status_code == 401
    assert requests.post(bridge.url + "/v1/events", data=batch(event("SIG-1", 2)), headers=good,
                         timeout=10).status_code == 401
    assert requests.post(bridge.url + "/v1/events", data=body, headers=good, timeout=10).status_code == 202
    assert bridge.good_change_arrives() < 10


def test_query_and_encoded_path_are_part_of_the_signature(bridge):
    target = "/v1/skus/%D0%A1%D0%9A-1%2F2"  # a Cyrillic SKU with a slash, as rawurlencode sends it
    r = requests.get(bridge.url + target, headers=headers_for("GET", target), timeout=10)
    assert r.status_code != 401, r.text
    r = requests.get(bridge.url + target + "?x=1", headers=headers_for("GET", target), timeout=10)
    assert r.status_code == 401
    assert bridge.good_change_arrives() < 10


def test_old_form_is_accepted_for_batches_only(bridge):
    body = batch(event(f"OLD-{time.time_ns()}", 3))
    ts = str(int(time.time()))
    old = {signing.TIMESTAMP_HEADER: ts, signing.SIGNATURE_HEADER: signing.sign_legacy(SECRET, ts, body),
           "Content-Type": "application/json"}
    assert requests.post(bridge.url + "/v1/events", data=body, headers=old, timeout=10).status_code == 202
    empty = {**old, signing.SIGNATURE_HEADER: signing.sign_legacy(SECRET, ts, b"")}
    for method, path in (("GET", "/v1/status"), ("POST", "/v1/guards/1/confirm"), ("POST", "/v1/ping")):
        r = requests.request(method, bridge.url + path, headers=empty, timeout=10)
        assert r.status_code == 401 and "old signature form" in r.json()["detail"], (path, r.text)
    assert "old signature form accepted" in bridge.logs()
    assert bridge.good_change_arrives() < 10


@pytest.mark.parametrize("ts", ["²", "١٢٣٤٥٦٧٨٩٠", "12e3", "1764201600.5", "-5", "9" * 13, "0x10"])
def test_a_timestamp_that_is_not_ascii_digits_is_401(bridge, ts):
    body = batch(event("TS-1", 1))
    raw = ts.encode("latin-1") if ts.isascii() or ts == "²" else ts.encode()  # "²" arrives as itself
    h = {signing.TIMESTAMP_HEADER: raw, signing.SIGNATURE_HEADER: "v2=" + "0" * 64,
         "Content-Type": "application/json"}
    r = requests.post(bridge.url + "/v1/events", data=body, headers=h, timeout=10)
    assert r.status_code == 401, r.text
    assert r.json()["detail"] in ("malformed timestamp", "timestamp outside the 5-minute window")
    assert bridge.good_change_arrives() < 10
