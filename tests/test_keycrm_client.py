"""KeyCRMClient over real HTTP against a scripted local KeyCRM stub.

The stub answers whatever a test scripts (statuses, Retry-After, pages of 50, a hang past the
client's timeout) and checks every request the client sends against KeyCRM's published OpenAPI
document (through the simulator's spec validator), so "matches the spec" is tested on every call.
Time is a FakeClock: backoff and Retry-After waits advance it instead of sleeping.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from keycrm_bridge.budget import LEAVE_MARGIN_S, Priority, RateBudget
from keycrm_bridge.clock import AcceleratedClock, FakeClock
from keycrm_bridge.errors import PermanentError, RetryableError
from keycrm_bridge.keycrm_client import MAX_FILTER_CHARS, KeyCRMClient
from keycrm_bridge.simulator.validation import get_validator

API_KEY = "sk-test-SECRET-9f1c2e"
T_SIM = 1_800_000_000.0

Handler = Callable[[Request], Response]


def json_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    return Response(
        "" if body is None else json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


@dataclass
class Seen:
    method: str
    path: str  # relative to /v1
    args: dict[str, str]
    headers: dict[str, str]
    body: Any
    url: str
    spec_status: int  # 0 when the request is valid per KeyCRM's OpenAPI document
    spec_errors: list[dict[str, Any]] = field(default_factory=list)


class StubKeyCRM:
    """A tiny threaded HTTP server; ``routes[(METHOD, path)]`` is a handler or a list of answers."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler | list[Response]] = {}
        self.seen: list[Seen] = []
        self.release = threading.Event()  # lets a hanging handler go at teardown
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, method: str, path: str, answers: Handler | list[Response]) -> None:
        self.routes[(method, path)] = answers

    def calls(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path.removeprefix("/v1")
        raw = request.get_data()
        result = get_validator().validate(
            request.method, path, request.args, request.headers, raw or None, request.content_type
        )
        seen = Seen(
            method=request.method,
            path=path,
            args=dict(request.args),
            headers=dict(request.headers),
            body=json.loads(raw) if raw else None,
            url=request.url,
            spec_status=result.status,
            spec_errors=result.errors,
        )
        with self._lock:
            self.seen.append(seen)
            answer = self.routes.get((request.method, path))
            if isinstance(answer, list):
                response = answer.pop(0) if answer else json_response(500, {"message": "script exhausted"})
            else:
                response = None
        if answer is None:
            response = json_response(404, {"message": "Not found."})
        elif callable(answer):
            response = answer(request)
        assert response is not None
        return response(environ, start_response)


@pytest.fixture
def stub() -> Iterator[StubKeyCRM]:
    server = StubKeyCRM()
    yield server
    server.close()
    invalid = [(s.method, s.path, s.spec_errors) for s in server.seen if s.spec_status]
    assert not invalid, f"client sent requests the KeyCRM spec rejects: {invalid}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def budget(tmp_path: Path, clock: FakeClock) -> Iterator[RateBudget]:
    with RateBudget(tmp_path / "bridge.sqlite3", clock, per_minute=60) as b:
        yield b


class MaxRandom(random.Random):
    """Full jitter at its ceiling, so expected backoff sleeps are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


def make_client(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock, **kw: Any) -> KeyCRMClient:
    kw.setdefault("rng", MaxRandom())
    return KeyCRMClient(stub.base_url, API_KEY, budget, clock, **kw)


def paged(rows: list[dict[str, Any]], *, meta: str = "full") -> Handler:
    """Serve ``rows`` in pages like KeyCRM (``meta``: full | next_only | none)."""

    def handler(request: Request) -> Response:
        limit = int(request.args.get("limit", 15))
        page = int(request.args.get("page", 1))
        data = rows[(page - 1) * limit : page * limit]
        last_page = max(1, -(-len(rows) // limit))
        body: dict[str, Any] = {"data": data}
        if meta in ("full", "next_only"):
            body["next_page_url"] = f"{request.base_url}?page={page + 1}" if page < last_page else None
        if meta == "full":
            body.update(total=len(rows), current_page=page, per_page=limit, last_page=last_page)
        return json_response(200, body)

    return handler


def stock_rows(n: int, prefix: str = "SKU-") -> list[dict[str, Any]]:
    return [
        {
            "id": i + 1,
            "sku": f"{prefix}{i:04d}",
            "quantity": 10,
            "reserve": 1,
            "warehouse": [{"id": 1, "name": "Main", "quantity": 10, "reserve": 1}],
        }
        for i in range(n)
    ]


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


def test_stocks_by_sku_are_chunked_by_50_and_url_length(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    def by_sku(request: Request) -> Response:
        wanted = request.args["filter[offers_sku]"].split(",")
        return json_response(
            200,
            {
                "data": [{"id": 1, "sku": s, "quantity": 1, "reserve": 0} for s in wanted],
                "current_page": 1,
                "last_page": 1,
                "next_page_url": None,
            },
        )

    stub.script("GET", "/offers/stocks", by_sku)
    client = make_client(stub, budget, clock)
    skus = [f"SKU-{i}" for i in range(120)] + ["SKU-3"]  # a duplicate is asked once
    got = [r["sku"] for r in client.iter_stocks(skus=skus)]
    assert got == skus[:120]
    calls = stub.calls("GET", "/offers/stocks")
    assert [len(c.args["filter[offers_sku]"].split(",")) for c in calls] == [50, 50, 20]

    # Long Cyrillic SKUs grow sixfold when encoded: chunks get smaller, URLs stay short.
    stub.seen.clear()
    long_skus = [f"АРТИКУЛ-ДОВГИЙ-{i:03d}-" + "Ж" * 20 for i in range(60)]
    got = [r["sku"] for r in client.iter_stocks(skus=long_skus)]
    assert got == long_skus
    calls = stub.calls("GET", "/offers/stocks")
    assert len(calls) > 2
    for c in calls:
        assert len(c.args["filter[offers_sku]"].split(",")) <= 50
        assert len(urlsplit(c.url).query) < MAX_FILTER_CHARS + 200
        assert c.args["page"] == "1"  # one page each


def test_offer_ids_filter(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    stub.script("GET", "/offers/stocks", [json_response(200, {"data": [{"id": 4, "sku": "X"}], "next_page_url": None})])
    client = make_client(stub, budget, clock)
    assert list(client.iter_stocks(offer_ids=[4, 5], details=False)) == [{"id": 4, "sku": "X"}]
    (call,) = stub.seen
    assert call.args["filter[offers_id]"] == "4,5" and "filter[details]" not in call.args


# -- the routes, as the spec has them -----------------------------------------------------------------------
def test_put_stocks_chunks_10000_rows_as_writes(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    stub.script("PUT", "/offers/stocks", lambda r: json_response(202, {"status": True}))
    client = make_client(stub, budget, clock)
    rows = [{"sku": f"S{i}", "quantity": i % 7} for i in range(25_000)]
    assert client.put_stocks(2, rows) == [{"status": True}] * 3
    calls = stub.calls("PUT", "/offers/stocks")
    assert [len(c.body["stocks"]) for c in calls] == [10_000, 10_000, 5_000]
    assert all(c.body["warehouse_id"] == 2 for c in calls)
    assert [row for c in calls for row in c.body["stocks"]] == rows
    headers = calls[0].headers
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json" and headers["Content-Type"] == "application/json"
    assert budget.calls_by_endpoint() == {"PUT /offers/stocks": 3}
    assert client.put_stocks(2, []) == []  # nothing to send, no call


def test_offers_products_and_orders_routes(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    stub.script("GET", "/offers", paged([{"id": 1, "sku": "A", "product": {"id": 9}}]))
    stub.script("PUT", "/offers", [json_response(202, {"status": True})])
    stub.script("GET", "/products/9", [json_response(200, {"id": 9, "name": "Bag"})])
    stub.script("PUT", "/products/9", [json_response(202, {"id": 9, "name": "Bag 2"})])
    stub.script("POST", "/products", [json_response(201, {"id": 10, "name": "New"})])
    stub.script("POST", "/products/10/offers", lambda r: json_response(201, {"status": True}))
    stub.script("GET", "/order", paged([{"id": 5, "source_uuid": "wc-77"}]))
    client = make_client(stub, budget, clock)

    assert list(client.iter_offers(skus=["A", "B"], include_product=True))[0]["product"] == {"id": 9}
    assert client.put_offers([{"sku": "A", "price": 12.5}]) == [{"status": True}]
    assert client.get_product(9)["name"] == "Bag"
    assert client.update_product(9, {"name": "Bag 2", "price": 10})["name"] == "Bag 2"
    assert client.create_product({"name": "New", "sku": "N-1", "price": 1})["id"] == 10
    offers = [{"sku": f"N-{i}", "price": 1.0} for i in range(150)]
    assert len(client.create_offers(10, offers, product_name="New")) == 2
    t_from = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    orders = list(client.iter_orders(t_from, t_from.timestamp() + 3600, source_uuids=["wc-77", "wc-78"]))
    assert [o["id"] for o in orders] == [5, 5]

    (get_offers,) = stub.calls("GET", "/offers")
    assert get_offers.args["filter[sku]"] == "A,B" and get_offers.args["include"] == "product"
    assert stub.calls("PUT", "/offers")[0].body == {"offers": [{"sku": "A", "price": 12.5}]}
    assert stub.calls("PUT", "/products/9")[0].body == {"name": "Bag 2", "price": 10}
    post_offers = stub.calls("POST", "/products/10/offers")
    assert [len(c.body["offers"]) for c in post_offers] == [100, 50]
    order_calls = stub.calls("GET", "/order")
    assert [c.args["filter[source_uuid]"] for c in order_calls] == ["wc-77", "wc-78"]
    assert order_calls[0].args["filter[updated_between]"] == "2026-03-01 10:00:00, 2026-03-01 11:00:00"
    assert order_calls[0].args["include"] == "products.offer"
    # Reads are READ, product fields (PUT /offers, PUT /products/{id}) FIELDS, other writes WRITE.
    by_priority = dict(budget._conn.execute("SELECT priority, count(*) FROM keycrm_calls GROUP BY priority").fetchall())
    # The two GET /order count as writes (the order poll may use the write reserve); product fields
    # (PUT /offers, PUT /products/{id}) as FIELDS.
    assert by_priority == {"read": 2, "fields": 2, "write": 5}


def test_one_page_readers_for_stocks_and_offers(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    offers = [{"id": i + 1, "sku": f"O-{i:02d}", "product_id": 7} for i in range(60)]
    stub.script("GET", "/offers/stocks", paged(stock_rows(60)))
    stub.script("GET", "/offers", paged(offers, meta="next_only"))
    client = make_client(stub, budget, clock)

    first = client.stocks_page(1)
    assert len(first.rows) == 50 and not first.is_last and first.total == 60
    rows, is_last = client.stocks_page(2, details=False)  # unpacks as (rows, is_last)
    assert [r["sku"] for r in rows] == [f"SKU-{i:04d}" for i in range(50, 60)] and is_last
    with_product = client.offers_page(1, include_product=True)
    assert [o["sku"] for o in with_product.rows] == [f"O-{i:02d}" for i in range(50)]
    assert not with_product.is_last and with_product.total is None  # this page names no total
    last = client.offers_page(2)
    assert [o["id"] for o in last.rows] == list(range(51, 61)) and last.is_last

    stocks_calls = stub.calls("GET", "/offers/stocks")
    assert [c.args for c in stocks_calls] == [
        {"filter[details]": "true", "limit": "50", "page": "1"},
        {"limit": "50", "page": "2"},
    ]
    offers_calls = stub.calls("GET", "/offers")
    assert [c.args for c in offers_calls] == [
        {"include": "product", "limit": "50", "page": "1"},
        {"limit": "50", "page": "2"},
    ]
    assert budget.calls_by_endpoint() == {"GET /offers/stocks": 2, "GET /offers": 2}  # one request a page


def test_warehouse_ids_from_first_detailed_page(stub: StubKeyCRM, budget: RateBudget, clock: FakeClock) -> None:
    rows = stock_rows(60)
    rows[3]["warehouse"].append({"id": 4, "name": "Shop", "quantity": 1, "reserve": 0})
    stub.script("GET", "/offers/stocks", paged(rows))
    client = make_client(stub, budget, clock)
    assert client.warehouse_ids() == [1, 4]
    (call,) = stub.seen
    assert call.args == {"filter[details]": "true", "limit": "50", "page": "1"}


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


def test_against_the_keycrm_simulator(tmp_path: Path) -> None:
    """The same client against the project's KeyCRM simulator (a real process, spec-validated)."""
    testing = pytest.importorskip("keycrm_bridge.simulator.testing")
    clock = FakeClock(T_SIM)
    with (
        testing.SimulatorProcess(seed_skus=120, seed_quantity=7, warehouses=(1, 2), rate=1000) as sim,
        RateBudget(tmp_path / "b.sqlite3", clock) as budget,
    ):
        client = KeyCRMClient(sim.api_url, sim.api_key, budget, clock, rng=MaxRandom())
        rows = list(client.iter_stocks())
        assert len(rows) == 120 and len({r["sku"] for r in rows}) == 120
        assert client.warehouse_ids() == [1, 2]
        sku = rows[0]["sku"]
        client.put_stocks(2, [{"sku": sku, "quantity": 4}])
        (row,) = list(client.iter_stocks(skus=[sku]))
        assert {w["id"]: w["quantity"] for w in row["warehouse"]}[2] == 4
        assert sim.control.truth([sku])[sku]["quantity"] == 11

        # Two 503s, then success: retried through the clock, three requests in the simulator's log.
        since = sim.control.last_seq()
        sim.control.set_faults(fail_next=2, error_status=503, paths=["/offers"])
        t0 = clock.now()
        offers = list(client.iter_offers(skus=[sku], include_product=True))
        assert [o["sku"] for o in offers] == [sku]
        assert clock.now() - t0 == pytest.approx(0.5 + 1, abs=0.01)
        assert [r["status"] for r in sim.control.requests(since, path="/offers")] == [503, 503, 200]
        sim.control.clear_faults()

        product = client.create_product({"name": "Bag", "sku": "BAG-NEW", "price": 10})
        client.create_offers(int(product["id"]), [{"sku": "BAG-NEW-RED", "price": 11}], product_name="Bag")
        assert sim.control.truth(["BAG-NEW-RED"])["BAG-NEW-RED"] is not None
        with pytest.raises(PermanentError) as err:
            client.create_product({"sku": "NO-NAME"})  # the spec requires name
        assert err.value.status == 422

        order = sim.control.create_order({sku: 2}, source_uuid="wc-1001")
        found = list(client.iter_orders(None, None, source_uuids=["wc-1001"]))
        assert [o["id"] for o in found] == [order["id"]]


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
