"""KeyCRMTransport (through KeyCRMClient's routes) over real HTTP against a scripted local KeyCRM stub
(``keycrm_stub``): retries, the 429 block, the error taxonomy, paging and the budget's priorities.
Time is a FakeClock: backoff and Retry-After waits advance it instead of sleeping.
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.wrappers import Request, Response

from keycrm_bridge.budget import LEAVE_MARGIN_S, Priority, RateBudget
from keycrm_bridge.clock import AcceleratedClock, FakeClock
from keycrm_bridge.errors import PermanentError, RetryableError
from keycrm_bridge.keycrm_client import KeyCRMClient

from keycrm_stub import API_KEY, MaxRandom, StubKeyCRM, json_response, make_client, paged, stock_rows


# -- retries and errors ------------------------------------------------------------------------------
def test_429_blocks_the_budget_for_retry_after_on_the_clock(
    stub: StubKeyCRM, budget: RateBudget, clock: FakeClock
) -> None:
    t0 = clock.now()
    stub.script(
        "GET",
        "/offers/stocks",
        [
            json_response(429, {"message": "Too Many Attempts."}, {"Retry-After": "7"}),
            json_response(200, {"data": stock_rows(1), "next_page_url": None}),
        ],
    )
    client = make_client(stub, budget, clock)
    rows = list(client.iter_stocks())
    assert [r["sku"] for r in rows] == ["SKU-0000"]
    assert len(stub.calls("GET", "/offers/stocks")) == 2
    # The retry started exactly when Retry-After ran out, through the clock, not earlier.
    assert clock.now() == pytest.approx(t0 + 7, abs=0.01)
    assert budget.used_last_minute() == 2
    # Another process sharing the file would have been blocked as well.
    assert budget.blocked_until() is None  # already passed


def test_429_block_is_shared_with_other_budget_objects(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    stub.script("PUT", "/offers/stocks", [json_response(429, {"message": "Too Many Attempts."}, {"Retry-After": "30"})])
    client = make_client(stub, budget, clock, max_attempts=1)
    with pytest.raises(RetryableError) as err:
        client.put_stocks(1, [{"sku": "A", "quantity": 1}])
    assert err.value.status == 429 and err.value.retry_after == 30
    with RateBudget(budget.db_path, clock) as other:  # e.g. a CLI resync in another process
        assert other.blocked_until() == pytest.approx(clock.now() + 30)
        assert other.left() == 0
        assert not other.try_acquire(Priority.WRITE, "PUT /offers/stocks")


def test_429_retry_after_as_http_date(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    from email.utils import format_datetime

    t0 = clock.now()
    when = format_datetime(datetime.fromtimestamp(t0 + 12, tz=UTC), usegmt=True)
    stub.script("GET", "/products/3", [json_response(429, None, {"Retry-After": when}), json_response(200, {"id": 3})])
    client = make_client(stub, budget, clock)
    assert client.get_product(3) == {"id": 3}
    assert clock.now() == pytest.approx(t0 + 12, abs=0.01)


def test_429_without_retry_after_backs_off_exponentially(
    stub: StubKeyCRM, budget: RateBudget, clock: FakeClock
) -> None:
    t0 = clock.now()
    stub.script("GET", "/offers", [json_response(429), json_response(429), json_response(200, {"data": []})])
    client = make_client(stub, budget, clock)
    assert list(client.iter_offers()) == []
    assert clock.now() - t0 == pytest.approx(1 + 2, abs=0.01)


def test_5xx_is_retried_with_backoff_then_retryable_error(
    stub: StubKeyCRM, budget: RateBudget, clock: FakeClock
) -> None:
    t0 = clock.now()
    stub.script("GET", "/offers/stocks", [json_response(503, {"message": "down"}) for _ in range(5)])
    client = make_client(stub, budget, clock, max_attempts=5)
    with pytest.raises(RetryableError) as err:
        list(client.iter_stocks())
    assert err.value.status == 503
    assert len(stub.calls("GET", "/offers/stocks")) == 5
    # Full jitter at its ceiling: 0.5, 1, 2, 4 seconds between the five attempts, no sleep after the last.
    assert clock.now() - t0 == pytest.approx(0.5 + 1 + 2 + 4, abs=0.01)


def test_backoff_is_capped_and_jittered(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    t0 = clock.now()
    stub.script("GET", "/offers", [json_response(500) for _ in range(9)])
    client = make_client(stub, budget, clock, max_attempts=9, rng=random.Random(4))
    with pytest.raises(RetryableError):
        list(client.iter_offers())
    ceilings = [min(30.0, 0.5 * 2**k) for k in range(8)]
    expected_rng = random.Random(4)
    expected = sum(expected_rng.uniform(0, c) for c in ceilings)
    assert clock.now() - t0 == pytest.approx(expected, abs=0.01)
    assert clock.now() - t0 < sum(ceilings)


def test_5xx_then_success_returns_the_answer(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    stub.script("PUT", "/offers/stocks", [json_response(502), json_response(202, {"status": True})])
    client = make_client(stub, budget, clock)
    assert client.put_stocks(3, [{"sku": "A", "quantity": 4}]) == [{"status": True}]
    assert len(stub.calls("PUT", "/offers/stocks")) == 2


def test_422_is_permanent_without_retry_and_never_shows_the_key(
    stub: StubKeyCRM, budget: RateBudget, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stub.script(
        "PUT",
        "/offers/stocks",
        [json_response(422, {"message": "The given data was invalid.", "errors": {"stocks.0.quantity": ["bad"]}})],
    )
    client = make_client(stub, budget, clock)
    t0 = clock.now()
    with caplog.at_level(logging.DEBUG, logger="keycrm_bridge"), pytest.raises(PermanentError) as err:
        client.put_stocks(1, [{"sku": "A", "quantity": 1}])
    assert err.value.status == 422
    assert "The given data was invalid." in str(err.value) and "stocks.0.quantity" in str(err.value)
    assert len(stub.calls("PUT", "/offers/stocks")) == 1
    assert clock.now() == t0
    assert API_KEY not in str(err.value)
    assert caplog.records, "each call is logged"
    for record in caplog.records:
        assert API_KEY not in record.getMessage() and API_KEY not in json.dumps(record.__dict__, default=str)
    call_logs = [r for r in caplog.records if getattr(r, "event", None) == "keycrm_call"]
    assert call_logs[0].endpoint == "PUT /offers/stocks"  # type: ignore[attr-defined]
    assert call_logs[0].status == 422 and call_logs[0].attempt == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_client_errors_are_permanent(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock, status: int) -> None:
    # The server echoes the key back: the client must still not carry it in the error.
    stub.script("GET", "/products/7", [json_response(status, {"message": f"nope {API_KEY}"})])
    client = make_client(stub, budget, clock)
    with pytest.raises(PermanentError) as err:
        client.get_product(7)
    assert err.value.status == status and "nope ***" in str(err.value)
    assert API_KEY not in str(err.value)
    assert len(stub.seen) == 1


def test_a_hang_past_the_timeout_is_retried_then_retryable(
    stub: StubKeyCRM, budget: RateBudget, clock: FakeClock
) -> None:
    def hang(request: Request) -> Response:
        stub.release.wait(timeout=10)
        return json_response(200, {"data": []})

    stub.script("GET", "/offers/stocks", hang)
    # Connecting may take long on a loaded machine; only the read timeout is meant to fire.
    client = make_client(stub, budget, clock, timeout=(5.0, 0.2), max_attempts=2)
    t0 = clock.now()
    with pytest.raises(RetryableError) as err:
        list(client.iter_stocks())
    assert "ReadTimeout" in str(err.value)
    assert len(stub.calls("GET", "/offers/stocks")) == 2
    assert clock.now() - t0 == pytest.approx(0.5, abs=0.01)  # one backoff between the attempts


def test_connection_refused_is_retryable(budget: RateBudget, clock: FakeClock) -> None:
    import socket

    with socket.socket() as s:  # bound but never listening: connections are refused, and the
        s.bind(("127.0.0.1", 0))  # port stays ours, so no other test's server can take it
        port = s.getsockname()[1]
        client = KeyCRMClient(f"http://127.0.0.1:{port}/v1", API_KEY, budget, clock, max_attempts=3, rng=MaxRandom())
        t0 = clock.now()
        with pytest.raises(RetryableError) as err:
            client.get_product(1)
    assert "ConnectionError" in str(err.value)
    assert budget.used_last_minute() == 3
    assert clock.now() - t0 == pytest.approx(0.5 + 1, abs=0.01)
    # A POST that was never sent may be repeated as well.
    with pytest.raises(RetryableError):
        client.create_product({"name": "Bag"})
    assert budget.used_last_minute() == 6


def test_a_malformed_base_url_is_permanent(budget: RateBudget, clock: FakeClock) -> None:
    client = KeyCRMClient("openapi.keycrm.app/v1", API_KEY, budget, clock)  # no scheme
    with pytest.raises(PermanentError):
        client.get_product(1)
    assert budget.used_last_minute() == 1


def test_post_is_not_repeated_after_an_ambiguous_failure(
    stub: StubKeyCRM, budget: RateBudget, clock: FakeClock
) -> None:
    stub.script("POST", "/products", [json_response(500), json_response(201, {"id": 1})])
    client = make_client(stub, budget, clock)
    with pytest.raises(RetryableError):
        client.create_product({"name": "Bag", "sku": "BAG-1"})
    assert len(stub.calls("POST", "/products")) == 1  # may have been created: the caller looks first


# -- pagination ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "meta", "requests_expected"),
    [
        (120, "full", 3),  # 50 + 50 + 20
        (120, "none", 3),  # no metadata: the short page ends it
        (100, "full", 2),  # full last page: last_page stops it, no empty third request
        (100, "next_only", 2),  # next_page_url null stops it
        (100, "none", 3),  # no metadata and a full page: one empty page confirms the end
        (0, "full", 1),
    ],
)
def test_pagination_stops_at_the_right_page(
    stub: StubKeyCRM, budget: RateBudget, clock: FakeClock, n: int, meta: str, requests_expected: int
) -> None:
    rows = stock_rows(n)
    stub.script("GET", "/offers/stocks", paged(rows, meta=meta))
    client = make_client(stub, budget, clock)
    got = list(client.iter_stocks())
    assert [r["sku"] for r in got] == [r["sku"] for r in rows]
    calls = stub.calls("GET", "/offers/stocks")
    assert len(calls) == requests_expected
    assert [c.args["page"] for c in calls] == [str(p) for p in range(1, requests_expected + 1)]
    assert all(c.args["limit"] == "50" and c.args["filter[details]"] == "true" for c in calls)


def test_reads_wait_while_the_budget_is_spent_but_writes_use_the_reserve(
    stub: StubKeyCRM, tmp_path: Path, clock: FakeClock
) -> None:
    stub.script("GET", "/products/1", lambda r: json_response(200, {"id": 1}))
    stub.script("PUT", "/offers/stocks", lambda r: json_response(202, {"status": True}))
    with RateBudget(tmp_path / "b.sqlite3", clock, per_minute=6, write_reserve=2) as small:
        client = make_client(stub, small, clock)
        t0 = clock.now()
        for _ in range(4):
            client.get_product(1)
        assert clock.now() == t0  # four reads fit
        client.put_stocks(1, [{"sku": "A", "quantity": 1}])
        client.put_stocks(1, [{"sku": "A", "quantity": 2}])
        assert clock.now() == t0  # the reserve is the writes'
        client.get_product(1)
        # the fifth read waited a full window (and the margin by which a call leaves it)
        assert clock.now() == pytest.approx(t0 + 60 + LEAVE_MARGIN_S, abs=0.01)


def test_429_from_the_simulator_is_waited_out(tmp_path: Path) -> None:
    """The simulator allows 3 calls a minute, our budget 60: its 429s and Retry-After rule."""
    testing = pytest.importorskip("keycrm_bridge.simulator.testing")
    factor = 60.0  # a simulated minute is one real second: slow enough that a loaded machine still hits the limit
    origin = time.time()
    clock = AcceleratedClock(factor, origin)
    with (
        testing.SimulatorProcess(seed_skus=3, rate=3, clock=f"accelerated:{factor}:{origin}") as sim,
        RateBudget(tmp_path / "b.sqlite3", clock) as budget,
    ):
        client = KeyCRMClient(sim.api_url, sim.api_key, budget, clock, max_attempts=5)
        since = sim.control.last_seq()
        for _ in range(5):
            assert client.get_product(1)["id"] == 1
        log = sim.control.requests(since, path="/products/1")
        ok = [r for r in log if r["status"] == 200]
        limited = [r for r in log if r["status"] == 429]
        assert len(ok) == 5 and limited
        for r in limited:
            # Nothing was sent again before Retry-After ran out.
            assert not [x for x in log if r["time"] < x["time"] < r["time"] + r["retry_after"] - 1e-6]
