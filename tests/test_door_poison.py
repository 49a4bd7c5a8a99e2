"""Poison at the door: what the sidecar could not process later is refused now with a 4xx, nothing of it
is stored, and a good change sent afterwards still reaches KeyCRM within seconds (real processes)."""

import time

import pytest
import requests

from keycrm_bridge import signing

from bridge import SECRET, event
from door import TOKEN, DoorBridge, Slowloris, batch
from hostile_cases import BATCH_POISON, WEBHOOK_POISON


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    b = DoorBridge(tmp_path_factory.mktemp("door"))
    yield b
    b.stop()


@pytest.mark.parametrize("case", list(BATCH_POISON))
def test_signed_poison_batch_is_refused_and_the_sync_goes_on(bridge, case):
    body = BATCH_POISON[case]
    before = bridge.rows()
    r = bridge.signed("POST", "/v1/events", body)
    assert r.status_code in (400, 422), (case, r.status_code, r.text)
    assert r.json()["error"] and r.headers["Content-Type"].startswith("application/json")
    assert bridge.rows() == before, "nothing of a refused batch is stored"
    assert bridge.good_change_arrives(timeout=10) < 10


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
    assert answers[0].json()["accepted"] == 50
    assert bridge.rows()["inbox"] == before + 1
    assert bridge.good_change_arrives(timeout=10) < 10


def test_fifty_slow_connections_do_not_starve_the_plugin(bridge):
    with Slowloris(bridge.url, 50) as slow:
        for n in range(10):
            r = requests.post(bridge.url + "/v1/events", data=(b := batch(event(f"SLOW-{n}", n))),
                              headers=signing.signed_headers(SECRET, "POST", "/v1/events", b, time.time()),
                              timeout=5)
            assert r.status_code == 202
            assert slow.open_count() == 50, "the slow connections were all held open meanwhile"
        assert bridge.good_change_arrives(timeout=10) < 10


def test_no_answer_was_a_500(bridge):
    assert '"status": 500' not in bridge.logs() and "unhandled error" not in bridge.logs()
