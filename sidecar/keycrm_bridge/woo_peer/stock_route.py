"""The plugin's conditional stock route, as the peer's plugin serves it.

``POST /wp-json/keycrm-bridge/v1/stock`` with ``{"items": [{"product_id" | "sku", "expect", "set"}]}``,
signed like the plugin's own calls. Each item is applied under the catalogue lock (the plugin's row
lock on ``_stock``) only where the shop still shows ``expect``; otherwise the answer is a conflict
naming the current value and nothing changes. Same answers as wp-plugin/src/StockRoute.php: per item
``applied`` (with the new ``stock_quantity``), ``conflict`` (with the current one) or ``error``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .. import signing
from .plugin import events_for_change
from .product import FieldError, Product, wp_date

if TYPE_CHECKING:
    from .server import WooPeer

STOCK_PATH = "/wp-json/keycrm-bridge/v1/stock"
SIGNED_ROUTE = "/keycrm-bridge/v1/stock"  # the REST route, as WordPress routes on it
MAX_ITEMS = 100


def _answer(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status,
                    content_type="application/json; charset=UTF-8")


def _signed(peer: WooPeer, request: Request, raw: bytes) -> str | None:
    """Why the call is not the sidecar's (None when it is)."""
    if not peer.shared_secret:
        return "no shared secret set"
    return signing.verify(peer.shared_secret, "POST", SIGNED_ROUTE, "", request.headers.get("X-Bridge-Timestamp"),
                          request.headers.get("X-Bridge-Signature"), raw, peer.clock.now())


def _quantity(value: Any, negative_ok: bool = False) -> bool:
    whole = isinstance(value, int) and not isinstance(value, bool)
    number = whole or (isinstance(value, float) and math.isfinite(value))
    return number and (negative_ok or value >= 0) and abs(value) < 1e12


def _product(peer: WooPeer, item: dict[str, Any]) -> Product | None:
    pid = item.get("product_id")
    if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
        return peer.catalog.get(pid)
    sku = item.get("sku")
    if isinstance(sku, str) and sku:
        found = peer.catalog.by_sku(sku)
        return found[0] if len(found) == 1 else None
    return None


def _apply(peer: WooPeer, item: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    item = item if isinstance(item, dict) else {}
    answer: dict[str, Any] = {k: item[k] for k in ("product_id", "sku") if k in item}
    expect, target = item.get("expect"), item.get("set")
    if not _quantity(target) or (expect is not None and not _quantity(expect, True)):
        return {**answer, "status": "error", "error": "set must be a number >= 0, expect a number or null"}
    p = _product(peer, item)
    if p is None:
        return {**answer, "status": "error", "error": "not_found"}
    if not p.manage_stock or p.stock_quantity is None:
        return {**answer, "status": "error", "error": "stock_not_managed"}
    answer["product_id"] = p.id
    current = p.stock_quantity
    if expect is None or float(current) != float(expect):
        return {**answer, "status": "conflict", "stock_quantity": current}
    if float(current) != float(target):
        try:
            p, changed, old_sku = peer.catalog.update(p.id, {"stock_quantity": int(target)})
        except FieldError as exc:
            return {**answer, "status": "error", "error": f"write failed: {exc}"}
        events.extend(events_for_change(peer.events, p, changed, old_sku, "sidecar"))
    return {**answer, "status": "applied", "stock_quantity": p.stock_quantity,
            "date_modified_gmt": wp_date(p.date_modified)}


def handle_stock(peer: WooPeer, request: Request) -> Response:
    raw = request.get_data(cache=True)
    body: Any = None
    hang, fault_status, faults = peer._draw_faults(STOCK_PATH)  # injected trouble, as for wc/v3 calls
    if hang > 0:
        peer._release.wait(hang)
    status, payload, events = _stock_answer(peer, request, raw, None if faults.after_commit else fault_status)
    answers = payload.get("items")  # what was applied, also when the answer is then lost
    if answers is not None:
        body = json.loads(raw)
    if fault_status is not None and status == 200:  # applied, then the answer is lost
        status, payload = fault_status, {"code": "internal_server_error", "message": "Injected fault after commit.",
                                         "data": {"status": fault_status}}
    peer.requests.add({"at": peer.clock.now(), "method": request.method, "path": STOCK_PATH, "query": {},
                       "body": body, "status": status, "marked": status != 401, "marker": "signed",
                       "events": len(events), "user_agent": request.headers.get("User-Agent", ""),
                       "answers": answers})
    response = _answer(status, payload)
    if fault_status is not None and faults.retry_after is not None:
        response.headers["Retry-After"] = str(faults.retry_after)
    return response


def _stock_answer(peer: WooPeer, request: Request, raw: bytes, fault_status: int | None
                  ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    if fault_status is not None:
        return fault_status, {"code": "internal_server_error", "message": "Injected fault.",
                              "data": {"status": fault_status}}, []
    if request.method != "POST":
        return 404, {"code": "rest_no_route", "data": {"status": 404},
                     "message": "No route was found matching the URL and request method."}, []
    problem = _signed(peer, request, raw)
    if problem is not None:
        return 401, {"code": "kcb_unauthorized", "message": problem, "data": {"status": 401}}, []
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        return 400, {"code": "kcb_bad_request", "data": {"status": 400},
                     "message": f'expected {{"items": [...]}} with at most {MAX_ITEMS} items'}, []
    events: list[dict[str, Any]] = []
    with peer.catalog.lock:
        answers = [_apply(peer, item, events) for item in items]
        peer.sender.enqueue(events)
    return 200, {"items": answers}, events
