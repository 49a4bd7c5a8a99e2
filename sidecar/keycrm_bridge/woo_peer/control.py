"""Test controls under /__peer/: what a shop owner, a customer or a test harness does.

Nothing here is logged as a REST request. Changes made here reach the sidecar as plugin events
with the cause the real plugin would report (admin edit: manual; checkout: order; cancel or
refund with restock: order_restore). Routes (JSON bodies; ``WooPeerControl`` wraps them):

  GET  health                      products count, url
  POST seed                        {simple, variable, variations, stock, sku_prefix, manage_stock,
                                    products: [wc/v3 fields + variations: [...]], allow_duplicate_skus}
  POST stock                       {sku|product_id, quantity, cause?}      admin stock edit
  POST edit                        {sku|product_id, name?, regular_price?, ...}
  POST rename                      {sku|product_id, new_sku, force?}      product.upsert with old_sku
  POST delete                      {sku|product_id}
  POST orders                      {items: [{sku|product_id, quantity}], allow_backorder?}
  POST orders/<id>/cancel|refund   restores stock once
  GET  products?sku=S | products/<id>
  GET  log?since=N  POST log/clear  POST reset
  GET|POST|DELETE faults           {status, error_rate, fail_next, hang_rate, hang_next, hang_seconds,
                                    path_contains, after_commit, retry_after}
  GET  events?since=N  POST events/retry  POST config {sidecar_url, shared_secret, batch_limit,
                                    key_permissions}
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .plugin import events_for_change
from .product import FieldError, Product, product_json

if TYPE_CHECKING:
    from .server import WooPeer

CAUSES = ("order", "order_restore", "manual", "rest", "import", "sidecar")


class ControlError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail


def _ok(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, content_type="application/json")


def _target(peer: WooPeer, body: dict[str, Any]) -> Product:
    if body.get("product_id") is not None:
        p = peer.catalog.get(int(body["product_id"]))
        if p is None:
            raise ControlError(404, "no such product", body["product_id"])
        return p
    sku = body.get("sku")
    if not isinstance(sku, str):
        raise ControlError(400, "give product_id or sku")
    found = peer.catalog.by_sku(sku)
    if not found:
        raise ControlError(404, "no such sku", sku)
    if len(found) > 1:
        raise ControlError(409, "sku is duplicated; give product_id", [p.id for p in found])
    return found[0]


def _cause(body: dict[str, Any], default: str) -> str:
    cause = body.get("cause", default)
    if cause not in CAUSES:
        raise ControlError(400, "unknown cause", cause)
    return str(cause)


def seed(peer: WooPeer, body: dict[str, Any]) -> dict[str, Any]:
    """Create products as if they already existed: no events."""
    prefix = str(body.get("sku_prefix", "SKU-"))
    stock = int(body.get("stock", 10))
    manage = bool(body.get("manage_stock", True))
    unique = not body.get("allow_duplicate_skus", False)
    created: list[int] = []
    for _ in range(int(body.get("simple", 0))):
        n = peer.catalog.peek_next_id()
        p = peer.catalog.create(
            {
                "name": f"Product {n}",
                "sku": f"{prefix}{n:06d}",
                "regular_price": "100.00",
                "manage_stock": manage,
                "stock_quantity": stock,
                "weight": "0.5",
            },
            unique_sku=unique,
        )
        created.append(p.id)
    per_parent = int(body.get("variations", 3))
    for _ in range(int(body.get("variable", 0))):
        n = peer.catalog.peek_next_id()
        parent = peer.catalog.create(
            {"type": "variable", "name": f"Variable {n}", "sku": f"{prefix}V{n:06d}"}, unique_sku=unique
        )
        created.append(parent.id)
        for j in range(1, per_parent + 1):
            v = peer.catalog.create(
                {
                    "name": f"Variable {n} - {j}",
                    "sku": f"{prefix}V{n:06d}-{j}",
                    "regular_price": "50.00",
                    "manage_stock": manage,
                    "stock_quantity": stock,
                },
                parent_id=parent.id,
                unique_sku=unique,
            )
            created.append(v.id)
    for spec in body.get("products", []):
        spec = dict(spec)
        children = spec.pop("variations", None) or []
        parent_id = int(spec.pop("parent_id", 0) or 0)
        p = peer.catalog.create(spec, parent_id=parent_id, unique_sku=unique)
        created.append(p.id)
        for child in children:
            created.append(peer.catalog.create(dict(child), parent_id=p.id, unique_sku=unique).id)
    return {
        "created": len(created),
        "ids": created if len(created) <= 1000 else created[:1000],
        "first_id": created[0] if created else None,
        "last_id": created[-1] if created else None,
    }


def edit(peer: WooPeer, body: dict[str, Any], default_cause: str = "manual") -> dict[str, Any]:
    p = _target(peer, body)
    cause = _cause(body, default_cause)
    fields = {k: v for k, v in body.items() if k not in ("product_id", "sku", "cause", "new_sku", "force", "quantity")}
    if "new_sku" in body:
        fields["sku"] = body["new_sku"]
    if "quantity" in body:
        fields["stock_quantity"] = body["quantity"]
    p, changed, old_sku = peer.catalog.update(p.id, fields, unique_sku=not body.get("force", False))
    events = events_for_change(peer.events, p, changed, old_sku, cause)
    peer.sender.enqueue(events)
    return {"product": product_json(p, peer.home_url), "changed": sorted(changed), "events": len(events)}


def place_order(peer: WooPeer, body: dict[str, Any]) -> dict[str, Any]:
    """Checkout: stock is reduced per item (wc_reduce_stock_levels), one batch for the order."""
    items = body.get("items") or []
    if not items:
        raise ControlError(400, "an order needs items")
    resolved: list[tuple[Product, int]] = []
    for item in items:
        p = _target(peer, item)
        qty = int(item.get("quantity", 1))
        if qty <= 0:
            raise ControlError(400, "quantity must be positive", item)
        if not p.manage_stock or p.stock_quantity is None:
            raise ControlError(409, "product does not manage stock", p.id)
        resolved.append((p, qty))
    order_id = peer.next_order_id()
    events = []
    with peer.catalog.lock:
        if not body.get("allow_backorder", False):
            short = [p.id for p, qty in resolved if (p.stock_quantity or 0) < qty]
            if short:
                raise ControlError(409, "not enough stock", short)
        for p, qty in resolved:
            changed = peer.catalog.change_stock(p.id, -qty)
            events.append(peer.events.stock_set(changed, "order", order_id=order_id, delta=-qty))
    with peer.orders_lock:
        peer.orders[order_id] = {"items": [(p.id, qty) for p, qty in resolved], "status": "processing"}
    peer.sender.enqueue(events)
    return {
        "order_id": order_id,
        "items": [
            {"product_id": p.id, "sku": p.sku, "quantity": q, "stock_quantity": p.stock_quantity} for p, q in resolved
        ],
    }


def restore_order(peer: WooPeer, order_id: int, status: str) -> dict[str, Any]:
    """Cancel, or refund with restock: stock comes back once; a second restore is refused."""
    with peer.orders_lock:
        order = peer.orders.get(order_id)
        if order is None:
            raise ControlError(404, "no such order", order_id)
        if order["status"] != "processing":
            raise ControlError(409, f"order already {order['status']}", order_id)
        order["status"] = status
    events = []
    restored = []
    for pid, qty in order["items"]:
        try:
            p = peer.catalog.change_stock(pid, qty)
        except FieldError:
            continue  # product deleted or no longer managed: WooCommerce skips it too
        events.append(peer.events.stock_set(p, "order_restore", order_id=order_id, delta=qty))
        restored.append({"product_id": pid, "sku": p.sku, "quantity": qty, "stock_quantity": p.stock_quantity})
    peer.sender.enqueue(events)
    return {"order_id": order_id, "status": status, "items": restored}


def delete(peer: WooPeer, body: dict[str, Any]) -> dict[str, Any]:
    p = _target(peer, body)
    removed = peer.catalog.delete(p.id)
    peer.sender.enqueue([peer.events.deleted(r, _cause(body, "manual")) for r in removed])
    return {"deleted": [r.id for r in removed]}


def events_status(peer: WooPeer, since: int) -> dict[str, Any]:
    sent = list(peer.sender.sent)
    return {
        "enabled": peer.sender.enabled,
        "pending": peer.sender.pending(),
        **peer.sender.stats,
        "rejected": list(peer.sender.rejected),
        "sent": sent[since:] if since else sent,
    }


def _route(peer: WooPeer, method: str, route: str, request: Request) -> Any:
    body: dict[str, Any] = {}
    raw = request.get_data()
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            raise ControlError(400, "body is not JSON") from None
        if not isinstance(body, dict):
            raise ControlError(400, "body must be a JSON object")
    args = request.args
    if route == "health":
        return {"ok": True, "products": len(peer.catalog), "url": peer.home_url}
    if route == "seed" and method == "POST":
        return seed(peer, body)
    if route == "stock" and method == "POST":
        if "quantity" not in body:
            raise ControlError(400, "quantity is required")
        return edit(peer, body)
    if route == "edit" and method == "POST":
        return edit(peer, body)
    if route == "rename" and method == "POST":
        if "new_sku" not in body:
            raise ControlError(400, "new_sku is required")
        return edit(peer, body)
    if route == "delete" and method == "POST":
        return delete(peer, body)
    if route == "orders" and method == "POST":
        return place_order(peer, body)
    m = re.fullmatch(r"orders/(\d+)/(cancel|refund)", route)
    if m and method == "POST":
        return restore_order(peer, int(m.group(1)), "cancelled" if m.group(2) == "cancel" else "refunded")
    if route == "products" and method == "GET":
        sku = args.get("sku")
        if sku is None:
            raise ControlError(400, "sku is required")
        return {"products": [product_json(p, peer.home_url) for p in peer.catalog.by_sku(sku)]}
    m = re.fullmatch(r"products/(\d+)", route)
    if m and method == "GET":
        p = peer.catalog.get(int(m.group(1)))
        if p is None:
            raise ControlError(404, "no such product", int(m.group(1)))
        return product_json(p, peer.home_url)
    if route == "log" and method == "GET":
        entries, last = peer.requests.since(int(args.get("since", "0")))
        return {"entries": entries, "last": last}
    if route == "log/clear" and method == "POST":
        peer.requests.clear()
        return {"ok": True}
    if route == "reset" and method == "POST":
        peer.reset()
        return {"ok": True}
    if route == "faults" and method == "GET":
        return peer.faults_dict()
    if route == "faults" and method == "POST":
        try:
            peer.set_faults(**body)
        except TypeError as exc:
            raise ControlError(400, "unknown fault option", str(exc)) from None
        return peer.faults_dict()
    if route == "faults" and method == "DELETE":
        peer.clear_faults()
        return peer.faults_dict()
    if route == "events" and method == "GET":
        return events_status(peer, int(args.get("since", "0")))
    if route == "events/retry" and method == "POST":
        peer.sender.retry_now()
        return {"ok": True}
    if route == "config" and method == "POST":
        if "sidecar_url" in body:
            peer.sender.sidecar_url = body["sidecar_url"] or None
        if "shared_secret" in body:
            peer.sender.shared_secret = body["shared_secret"] or None
        if "batch_limit" in body:
            peer.batch_limit = max(1, int(body["batch_limit"]))
        if "key_permissions" in body:
            if body["key_permissions"] not in ("read", "write", "read_write"):
                raise ControlError(400, "key_permissions is read, write or read_write")
            peer.key_permissions = body["key_permissions"]
        return {
            "sidecar_url": peer.sender.sidecar_url,
            "enabled": peer.sender.enabled,
            "batch_limit": peer.batch_limit,
            "key_permissions": peer.key_permissions,
        }
    raise ControlError(404, "no such control", route)


def handle_control(peer: WooPeer, request: Request, route: str) -> Response:
    try:
        if request.method == "GET":
            return _ok(_route(peer, request.method, route.strip("/"), request))
        # Like REST writes: commit and queue events in one step so batches keep commit order.
        with peer.catalog.lock:
            return _ok(_route(peer, request.method, route.strip("/"), request))
    except ControlError as exc:
        return _ok({"error": exc.error, "detail": exc.detail}, exc.status)
    except FieldError as exc:
        return _ok({"error": exc.code, "detail": exc.message}, exc.status)
    except (TypeError, ValueError) as exc:
        return _ok({"error": "bad request", "detail": str(exc)}, 400)
