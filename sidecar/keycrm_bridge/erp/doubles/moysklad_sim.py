"""A MoySklad JSON API 1.2 stand-in that keeps MoySklad's rules, as a process on loopback.

Bearer token (401 otherwise), ``Accept-Encoding: gzip`` required (answers are gzipped), 45 units
per 3 s per token (a request costs ``--units-per-request``, a stock report at least 5) and at most
5 parallel requests, both answered 429 with ``X-Lognex-Retry-After`` (ms). Routes:
``/entity/assortment``, ``/entity/store``, ``/report/stock/bystore`` (paged), and
``/report/stock/bystore/current`` (``changedSince`` in Moscow time, ``include=zeroLines``).
A stock change POSTs the stock webhook ``{accountId, stockType, reportType, reportUrl}`` with a
``requestId`` query parameter, as MoySklad does (1-5 minutes later there; ``--webhook-delay`` here).

``python -m keycrm_bridge.erp.doubles.moysklad_sim --port 0 --token T`` prints one JSON line
``{"event": "moysklad_ready", "url": …}``. Control routes under ``/control`` seed and change stock.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import requests
from flask import Flask, Response, request
from werkzeug.serving import make_server

API = "/api/remap/1.2"
MOSCOW = timezone(timedelta(hours=3))


def moscow(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")


def parse_moscow(text: str) -> float:
    return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=MOSCOW).timestamp()


class State:
    def __init__(self, token: str, units_per_request: int) -> None:
        self.token, self.units_per_request = token, units_per_request
        self.lock = threading.Lock()
        self.account = str(uuid.uuid4())
        self.stores: dict[str, str] = {}
        self.items: dict[str, dict[str, Any]] = {}                 # id -> {article, code, name, type}
        self.stock: dict[tuple[str, str], tuple[float, float]] = {}  # (item, store) -> (stock, changed_at)
        self.calls: list[tuple[float, int]] = []
        self.running = 0
        self.log: list[dict[str, Any]] = []
        self.forced_429 = 0
        self.webhook_url = ""
        self.webhook_delay = 0.0
        self.webhooks_sent: list[dict[str, Any]] = []

    def charge(self, cost: int) -> float | None:
        """None when the request may run; else ms until it could (the 429's Retry-After)."""
        now = time.time()
        with self.lock:
            self.calls = [(t, u) for t, u in self.calls if t > now - 3.0]
            if self.forced_429 > 0:
                self.forced_429 -= 1
                return 1000.0
            used = sum(u for _, u in self.calls)
            if used + cost > 45:
                return max(1.0, (self.calls[0][0] + 3.0 - now) * 1000)
            if self.running >= 5:
                return 100.0
            self.calls.append((now, cost))
            self.running += 1
            return None


def create_app(state: State, public_url: dict[str, str]) -> Flask:
    app = Flask("moysklad_sim")

    def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        raw = gzip.compress(json.dumps(body, ensure_ascii=False).encode())
        resp = Response(raw, status=status, content_type="application/json;charset=utf-8")
        resp.headers["Content-Encoding"] = "gzip"
        for k, v in (headers or {}).items():
            resp.headers[k] = v
        return resp

    def error(status: int, text: str, code: int, headers: dict[str, str] | None = None) -> Response:
        return answer({"errors": [{"error": text, "code": code}]}, status, headers)

    @app.before_request
    def _rules() -> Response | None:
        if request.path.startswith("/control"):
            return None
        state.log.append({"t": time.time(), "path": request.path, "query": request.query_string.decode()})
        if request.headers.get("Authorization") != f"Bearer {state.token}":
            return error(401, "Ошибка аутентификации", 1056)
        if "gzip" not in request.headers.get("Accept-Encoding", ""):
            return error(415, "Заголовок Accept-Encoding: gzip обязателен", 1062)
        cost = max(state.units_per_request, 5 if "/report/" in request.path else 1)
        wait_ms = state.charge(cost)
        if wait_ms is not None:
            state.log[-1]["status"] = 429
            return error(429, "Превышено ограничение на количество запросов", 1049,
                         {"X-RateLimit-Limit": "45", "X-Lognex-Retry-TimeInterval": "3000",
                          "X-Lognex-Retry-After": str(int(wait_ms)), "X-RateLimit-Remaining": "0"})
        request.environ["sim.charged"] = True
        return None

    @app.teardown_request
    def _done(_exc: BaseException | None) -> None:
        if request.environ.get("sim.charged"):
            with state.lock:
                state.running -= 1

    def page(rows: list[Any]) -> Response:
        limit = min(int(request.args.get("limit", 1000)), 1000)
        offset = int(request.args.get("offset", 0))
        return answer({"meta": {"size": len(rows), "limit": limit, "offset": offset},
                       "rows": rows[offset:offset + limit]})

    def href(kind: str, ident: str) -> str:
        return f"{public_url['url']}{API}/entity/{kind}/{ident}"

    @app.get(f"{API}/entity/store")
    def stores() -> Response:
        return page([{"meta": {"href": href("store", i), "type": "store"}, "id": i, "name": n}
                     for i, n in state.stores.items()])

    @app.get(f"{API}/entity/assortment")
    def assortment() -> Response:
        return page([{"meta": {"href": href(it["type"], i), "type": it["type"]}, "id": i, "name": it["name"],
                      **({"article": it["article"]} if it.get("article") else {}),
                      **({"code": it["code"]} if it.get("code") else {}),
                      "salePrices": [{"value": it.get("price", 0) * 100, "priceType": {"name": "Цена продажи"}}]}
                     for i, it in state.items.items()])

    @app.get(f"{API}/report/stock/bystore")
    def bystore() -> Response:
        rows = []
        for i, it in state.items.items():
            per = [{"meta": {"href": href("store", s)}, "name": state.stores[s], "stock": q, "reserve": 0,
                    "inTransit": 0} for (a, s), (q, _) in state.stock.items() if a == i]
            rows.append({"meta": {"href": href(it["type"], i) + "?expand=supplier", "type": it["type"]},
                         "stockByStore": per})
        return page(rows)

    @app.get(f"{API}/report/stock/bystore/current")
    def current() -> Response:
        since = request.args.get("changedSince")
        zeros = "zeroLines" in request.args.get("include", "")
        t0 = parse_moscow(since) if since else None
        rows = [{"assortmentId": a, "storeId": s, "stock": q} for (a, s), (q, at) in state.stock.items()
                if (t0 is None or at >= t0) and (zeros or q != 0)]
        return answer(rows)

    # -- control ----------------------------------------------------------------------------------

    @app.post("/control/seed")
    def seed() -> Response:
        body = request.get_json(force=True)
        now = time.time() - 86400
        with state.lock:
            state.stores.update(body.get("stores") or {})
            for it in body.get("items") or []:
                ident = it.get("id") or str(uuid.uuid4())
                state.items[ident] = {"article": it.get("article"), "code": it.get("code"), "name": it.get("name", ""),
                                      "type": it.get("type", "product"), "price": it.get("price", 0)}
                for s, q in (it.get("stock") or {}).items():
                    state.stock[(ident, s)] = (float(q), now)
        return answer({"items": len(state.items)})

    @app.post("/control/stock")
    def change() -> Response:
        body = request.get_json(force=True)
        now = time.time()
        by_article = {it.get("article"): i for i, it in state.items.items()}
        with state.lock:
            for ch in body.get("changes") or []:
                ident = ch.get("id") or by_article[ch["article"]]
                state.stock[(ident, ch["store"])] = (float(ch["stock"]), now)
        if state.webhook_url:
            threading.Timer(state.webhook_delay, _send_webhook, (state, public_url["url"], now)).start()
        return answer({"changed": len(body.get("changes") or [])})

    @app.post("/control/config")
    def config() -> Response:
        body = request.get_json(force=True)
        with state.lock:
            if "webhook_url" in body:
                state.webhook_url = body["webhook_url"] or ""
            state.webhook_delay = float(body.get("webhook_delay", state.webhook_delay))
            state.forced_429 = int(body.get("force_429", state.forced_429))
        return answer({"ok": True})

    @app.get("/control/log")
    def control_log() -> Response:
        return answer({"requests": state.log, "webhooks": state.webhooks_sent})

    return app


def _send_webhook(state: State, url: str, changed_at: float) -> None:
    request_id = str(uuid.uuid4())
    body = {"accountId": state.account, "stockType": "stock", "reportType": "bystore",
            "reportUrl": f"{url}{API}/report/stock/bystore/current?changedSince={moscow(changed_at - 1)}"}
    for _ in range(3):  # MoySklad repeats an unanswered webhook with the same requestId
        try:
            r = requests.post(state.webhook_url, params={"requestId": request_id}, json=body, timeout=1.5)
            state.webhooks_sent.append({"requestId": request_id, "status": r.status_code, "at": time.time()})
            if r.status_code < 500:
                return
        except requests.RequestException:
            state.webhooks_sent.append({"requestId": request_id, "status": None, "at": time.time()})
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="moysklad_sim")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="ms-token")
    ap.add_argument("--units-per-request", type=int, default=4)
    args = ap.parse_args(argv)
    public: dict[str, str] = {}
    state = State(args.token, args.units_per_request)
    server = make_server(args.host, args.port, create_app(state, public), threaded=True)
    public["url"] = f"http://{args.host}:{server.server_port}"
    print(json.dumps({"event": "moysklad_ready", "url": public["url"], "api_url": public["url"] + API}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
