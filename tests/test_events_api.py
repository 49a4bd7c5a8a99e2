"""S15 and the ingest contract, against gunicorn over loopback."""

import hashlib
import json
import sqlite3
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keycrm_bridge import signing
from keycrm_bridge.config import load_settings
from keycrm_bridge.events import changes_for
from keycrm_bridge.inbox import inbox_path
from keycrm_bridge.store import Store

from bridge import SECRET, Web, bridge_env, event, get_status, post_events


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    d = tmp_path_factory.mktemp("web")
    w = Web(bridge_env(d / "db.sqlite3"), d / "web.log").start()
    w.db = d / "db.sqlite3"
    yield w
    w.stop()


def counts(db):
    """(batches waiting in the inbox, events, queued changes)."""
    with sqlite3.connect(inbox_path(str(db))) as c:
        waiting = c.execute("SELECT count(*) FROM inbox").fetchone()[0]
    with sqlite3.connect(db) as c:
        return (waiting, *(c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "changes")))


def expand(db):
    """What the worker does first each round: split received batches into events and changes."""
    store = Store(str(db))
    settings = load_settings(bridge_env(db))
    try:
        return store.expand_inbox(lambda ev: changes_for(ev, settings))
    finally:
        store.close()


def raw_post(web, body: bytes, headers=None):
    return requests.post(web.url + "/v1/events", data=body, headers=headers or {}, timeout=30)


def test_good_batch_is_committed_before_202(web):
    expand(web.db)
    before = counts(web.db)
    r = post_events(web.url, [event("A-1", 5), event("A-2", 7)])
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2
    # The acknowledgement names the batch: the plugin deletes events only when this matches its body.
    assert r.json()["batch_sha256"] == hashlib.sha256(r.request.body).hexdigest()
    assert counts(web.db) == (before[0] + 1, before[1], before[2])  # durable before the answer
    assert expand(web.db) == (2, 0)
    assert counts(web.db) == (0, before[1] + 2, before[2] + 2)


def test_resend_is_accepted_and_applied_once(web):
    batch = [event("B-1", 3), event("B-2", 4)]
    expand(web.db)
    before = counts(web.db)
    assert post_events(web.url, batch).status_code == 202
    r = post_events(web.url, batch)  # the very same body: answered alike, stored once
    assert r.status_code == 202 and r.json()["accepted"] == 2
    assert counts(web.db)[0] == before[0] + 1
    assert post_events(web.url, batch[::-1]).status_code == 202  # the same events in another batch
    assert expand(web.db) == (2, 2)
    assert counts(web.db) == (0, before[1] + 2, before[2] + 2)


def signed(body: bytes, ts=None, secret=SECRET, method="POST", target="/v1/events"):
    return signing.signed_headers(secret, method, target, body, time.time() if ts is None else ts)


@pytest.mark.parametrize("case,status", [
    ("unsigned", 401), ("bad_signature", 401), ("wrong_secret", 401), ("stale_replay", 401),
    ("future_timestamp", 401), ("not_json", 400), ("schema", 422), ("too_many_events", 413),
    ("too_large", 413), ("empty_batch", 422), ("bad_cause", 422), ("order_without_order_id", 422),
])
def test_bad_input_gets_its_answer_and_stores_nothing(web, case, status):
    good = json.dumps({"events": [event("C-1", 1)]}).encode()
    body, headers = good, signed(good)
    if case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "bad_signature":
        headers[signing.SIGNATURE_HEADER] = "v2=" + "0" * 64
    elif case == "wrong_secret":
        headers = signed(good, secret="another-secret-entirely")
    elif case == "stale_replay":
        headers = signed(good, ts=time.time() - 301)
    elif case == "future_timestamp":
        headers = signed(good, ts=time.time() + 400)
    elif case == "not_json":
        body = b"{not json"
        headers = signed(body)
    elif case == "schema":
        body = json.dumps({"events": [{"id": "x"}]}).encode()
        headers = signed(body)
    elif case == "too_many_events":
        body = json.dumps({"events": [event(f"M-{i}", 1) for i in range(1001)]}).encode()
        headers = signed(body)
    elif case == "too_large":
        body = json.dumps({"events": [event("L", 1, product={"description": "x" * 1_100_000})]}).encode()
        headers = signed(body)
    elif case == "empty_batch":
        body = b'{"events": []}'
        headers = signed(body)
    elif case == "bad_cause":
        body = json.dumps({"events": [event("C-2", 1, cause="magic")]}).encode()
        headers = signed(body)
    elif case == "order_without_order_id":
        body = json.dumps({"events": [event("C-3", 1, cause="order")]}).encode()
        headers = signed(body)
    before = counts(web.db)
    r = raw_post(web, body, headers)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "error" in r.json()
    assert counts(web.db) == before


def test_status_needs_a_signature_and_reports_the_queue(web):
    assert requests.get(web.url + "/v1/status", timeout=5).status_code == 401
    post_events(web.url, [event("S-1", 9)])
    st_ = get_status(web.url)
    assert st_["mode"] == "woocommerce"
    assert st_["queue_depth"] >= 1 and st_["oldest_pending_age_s"] >= 0
    for key in ("last_keycrm_success_at", "unmatched_skus", "budget_used_last_minute"):
        assert key in st_


def test_unknown_route_and_method_are_json(web):
    r = requests.get(web.url + "/nope", timeout=5)
    assert r.status_code == 404 and r.json()["error"]
    r = requests.get(web.url + "/v1/events", timeout=5)
    assert r.status_code == 405 and r.json()["error"]


# -- property-based fuzz: whatever arrives, the answer is never a 500 and a rejection stores nothing --

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"id": st.text(min_size=0, max_size=70), "type": st.sampled_from(["stock.set", "product.upsert",
                                                                      "product.deleted", "x"]),
     "occurred_at": st.one_of(st.floats(allow_nan=False), st.integers(), st.text(max_size=5)),
     "product_id": st.one_of(st.integers(-5, 10**12), st.text(max_size=3)),
     "sku": st.one_of(st.text(max_size=40), st.integers()),
     "cause": st.sampled_from(["order", "order_restore", "manual", "rest", "import", "sidecar", "?"])},
    optional={"stock_quantity": st.one_of(st.none(), st.floats(allow_nan=False), st.text(max_size=3)),
              "order_id": st.integers(-3, 10**6), "product": json_values, "old_sku": st.text(max_size=10)},
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(event_like, max_size=4).map(lambda evs: json.dumps({"events": evs}).encode()),
)


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, sign=st.sampled_from(["good", "none", "bad", "stale"]))
def test_fuzz_events_never_500(web, body, sign):
    headers = {"good": signed(body), "none": {}, "bad": {**signed(body), signing.SIGNATURE_HEADER: "v2=00"},
               "stale": signed(body, ts=time.time() - 3600)}[sign]
    before = counts(web.db)
    r = raw_post(web, body, headers)
    assert r.status_code in (202, 400, 401, 413, 422), (r.status_code, r.text)
    assert r.json()["error"] if r.status_code != 202 else r.json()["accepted"] >= 0
    if r.status_code != 202:
        assert counts(web.db) == before
    if sign != "good":
        assert r.status_code in (401, 413)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.one_of(json_values, st.lists(event_like, max_size=3).map(lambda evs: {"events": evs})))
def test_fast_validator_agrees_with_the_reference(batch):
    # Ingest uses the compiled validator; jsonschema (draft 2020-12) is the reference for the schema.
    from keycrm_bridge.events import reference_schema_errors, schema_errors
    assert (schema_errors(batch) == []) == (reference_schema_errors(batch) == [])


def test_webhook_token_and_secrets_never_reach_the_log(tmp_path):
    token = "webhook-secret-token-abcdef0123"
    log = tmp_path / "web.log"
    w = Web(bridge_env(tmp_path / "db.sqlite3", KEYCRM_WEBHOOK_TOKEN=token, LOG_LEVEL="DEBUG"), log).start()
    try:
        rows = [{"offer_id": 1, "sku": "W-1", "in_stock": 5, "in_reserve": 1}]
        assert requests.post(f"{w.url}/v1/keycrm/webhook/{token}", json=rows, timeout=5).status_code == 202
        assert requests.post(f"{w.url}/v1/keycrm/webhook/wrong-token-000000000", json=rows,
                             timeout=5).status_code == 404
        assert requests.post(f"{w.url}/v1/keycrm/webhook/{token}", data=b"[1]", timeout=5).status_code == 422
        assert post_events(w.url, [event("W-1", 2)]).status_code == 202
        assert raw_post(w, b"{}", signed(b"{}", secret="a-wrong-secret-00000")).status_code == 401
    finally:
        w.stop()
    text = log.read_text()
    assert "/v1/keycrm/webhook/[redacted]" in text  # the request is logged, its token is not
    assert token not in text and SECRET not in text and "sim-key" not in text


near_valid_event = st.fixed_dictionaries(
    {"id": st.one_of(st.from_regex(r"[A-Za-z0-9._:-]{6,66}", fullmatch=True), st.just("abcdefgh\n")),
     "type": st.sampled_from(["stock.set", "product.deleted", "product.upsert"]),
     "occurred_at": st.one_of(st.floats(9e8, 1.1e10), st.integers(9 * 10**8, 11 * 10**9), st.booleans()),
     "product_id": st.one_of(st.integers(-1, 10**9), st.booleans(), st.floats(0, 5),
                             st.integers(2**53 - 2, 2**53 + 1)),
     "sku": st.one_of(st.text(max_size=195), st.none(), st.just("A\x07B"), st.just("A\x7f")),
     "cause": st.sampled_from(["order", "order_restore", "manual", "rest", "import", "sidecar", "x"])},
    optional={"stock_quantity": st.one_of(st.none(), st.floats(allow_nan=False), st.integers(), st.booleans(),
                                          st.integers(10**9 - 1, 10**9 + 1), st.floats(-1e9 - 1, -1e9 + 1)),
              "quantity_delta": st.one_of(st.floats(), st.integers(), st.none(), st.integers(10**9, 10**9 + 1)),
              "order_id": st.one_of(st.integers(-1, 10**6), st.floats(0, 9), st.integers(2**53 - 1, 2**53)),
              "parent_id": st.one_of(st.integers(-2, 9), st.integers(2**53 - 1, 2**53)),
              "old_sku": st.text(max_size=195), "extra": st.integers()},
)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.fixed_dictionaries({"events": st.lists(near_valid_event, min_size=0, max_size=3)},
                                   optional={"site": st.text(max_size=3), "plugin_version": st.text(max_size=40)}))
def test_the_plain_shortcut_never_accepts_what_the_schema_refuses(batch):
    # Stock and deletion events take a shortcut past the compiled schema on the ingest path.
    from keycrm_bridge.events import reference_schema_errors, schema_errors
    assert (schema_errors(batch) == []) == (reference_schema_errors(batch) == [])
