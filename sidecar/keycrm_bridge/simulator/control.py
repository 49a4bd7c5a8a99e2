"""The control API under ``/__sim``: what a test does to KeyCRM and reads back from it.

JSON in, JSON out; errors are ``{"error": ...}`` with 400 (bad request), 404 or 409. Not rate
limited, not in the request log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from keycrm_bridge.simulator.state import Order, SimError

if TYPE_CHECKING:
    from keycrm_bridge.simulator.app import Simulator


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _csv_arg(name: str) -> list[str] | None:
    raw = request.args.get(name)
    return None if raw is None else [p for p in raw.split(",") if p != ""]


def order_view(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "source_uuid": order.source_uuid,
        "source_id": order.source_id,
        "status": order.status,
        "warehouse_id": order.warehouse_id,
        "products": [asdict(line) for line in order.lines],
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "closed_at": order.closed_at,
    }


def control_blueprint(sim: Simulator) -> Blueprint:
    from keycrm_bridge.simulator.app import json_response

    bp = Blueprint("keycrm_sim_control", __name__)

    def endpoint(func: Callable[..., Any]) -> Callable[..., Response]:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                result = func(*args, **kwargs)
            except SimError as exc:
                return json_response(exc.status, {"error": str(exc)})
            except (ValueError, KeyError, TypeError) as exc:
                return json_response(400, {"error": f"{type(exc).__name__}: {exc}"})
            if isinstance(result, tuple):
                return json_response(result[0], result[1])
            return json_response(200, result)

        return wrapper

    @bp.get("/health")
    @endpoint
    def health() -> Any:
        with sim.state.lock:
            return {
                "ok": True,
                "time": sim.clock.now(),
                "offers": len(sim.state.offers),
                "products": len(sim.state.products),
                "orders": len(sim.state.orders),
                "warehouses": sorted(sim.state.warehouses),
                "last_seq": sim.log.last_seq,
            }

    @bp.post("/reset")
    @endpoint
    def reset() -> Any:
        sim.reset()
        return {"ok": True}

    @bp.post("/seed")
    @endpoint
    def seed() -> Any:
        return sim.state.seed(_body())

    @bp.post("/receive")
    @endpoint
    def receive() -> Any:
        """``{"items": [{"sku", "delta" | "quantity" | "reserve", "warehouse_id"?}]}`` or one item."""
        body = _body()
        items = body["items"] if isinstance(body.get("items"), list) else [body]
        result = sim.state.adjust_stock(items)
        return {"applied": result.applied, "changed_offer_ids": result.changed_offer_ids}

    @bp.post("/offers")
    @endpoint
    def edit_offers() -> Any:
        """Edit offers as a KeyCRM user would: ``{"offers": [{"sku"|"id", "price", ...}]}`` (by ``id``, a
        ``sku`` renames the offer, as KeyCRM's own screens can)."""
        result = sim.state.update_offers(_body().get("offers") or [], user_edit=True)
        return {"applied": result.applied, "ignored": result.ignored}

    @bp.post("/products/<int:product_id>")
    @endpoint
    def edit_product(product_id: int) -> Any:
        with sim.state.lock:
            product = sim.state.update_product(product_id, _body())
            return asdict(product)

    @bp.post("/orders")
    @endpoint
    def create_order() -> Any:
        """``{"items": [{"sku", "quantity"}], "source_uuid"?, "warehouse_id"?, "source_id"?}``: reserves."""
        body = _body()
        order = sim.state.create_order(
            body.get("items") or body.get("products") or [],
            source_uuid=body.get("source_uuid"),
            source_id=int(body.get("source_id", 1)),
            warehouse_id=int(body["warehouse_id"]) if body.get("warehouse_id") is not None else None,
        )
        return 201, order_view(order)

    @bp.get("/orders")
    @endpoint
    def list_orders() -> Any:
        with sim.state.lock:
            return {"orders": [order_view(sim.state.orders[i]) for i in sim.state.order_ids]}

    @bp.post("/orders/<int:order_id>/cancel")
    @endpoint
    def cancel_order(order_id: int) -> Any:
        return order_view(sim.state.cancel_order(order_id))

    @bp.post("/orders/<int:order_id>/complete")
    @endpoint
    def complete_order(order_id: int) -> Any:
        return order_view(sim.state.complete_order(order_id))

    @bp.route("/truth", methods=["GET", "POST"])
    @endpoint
    def truth() -> Any:
        """Per SKU: offer, per-warehouse quantity/reserve, totals, sellable. ``skus`` omitted: all."""
        if request.method == "POST":
            body = _body()
            skus, whs = body.get("skus"), body.get("warehouses")
        else:
            skus, whs = _csv_arg("skus"), _csv_arg("warehouses")
        warehouses = [int(w) for w in whs] if whs is not None else None
        return sim.state.truth(skus, warehouses)

    @bp.route("/faults", methods=["GET", "POST", "DELETE"])
    @endpoint
    def faults() -> Any:
        if request.method == "POST":
            sim.faults.configure(_body())
        elif request.method == "DELETE":
            sim.faults.clear()
            sim.release.set()
            sim.release.clear()
        return sim.faults.snapshot()

    @bp.route("/requests", methods=["GET", "DELETE"])
    @endpoint
    def requests_log() -> Any:
        if request.method == "DELETE":
            sim.log.clear()
            return {"ok": True, "last_seq": sim.log.last_seq}
        since = int(request.args.get("since", 0))
        rows = sim.log.since(
            since,
            method=request.args.get("method"),
            path=request.args.get("path"),
            bodies=request.args.get("bodies", "1") not in ("0", "false"),
        )
        return {"requests": rows, "last_seq": sim.log.last_seq}

    @bp.route("/webhook", methods=["GET", "POST"])
    @endpoint
    def webhook() -> Any:
        """``{"url", "warehouses", "delay", "enabled", "timeout"}`` (any subset)."""
        if request.method == "POST":
            sim.webhooks.configure(_body())
        return sim.webhooks.snapshot()

    @bp.get("/webhook/history")
    @endpoint
    def webhook_history() -> Any:
        return {"deliveries": sim.webhooks.history()}

    @bp.route("/rate", methods=["GET", "POST"])
    @endpoint
    def rate() -> Any:
        """``{"limit", "window", "reset": true}`` (any subset); ``limit`` 0 switches the limit off."""
        if request.method == "POST":
            body = _body()
            sim.limiter.configure(body.get("limit"), body.get("window"))
            if body.get("reset"):
                sim.limiter.reset()
        return sim.limiter.snapshot()

    return bp
