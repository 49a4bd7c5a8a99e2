"""What an order does in the simulated account: a new order reserves each line at one warehouse,
cancelling releases the reserve, completing ships the goods (quantity and reserve both drop).
``SimState``'s order methods are these, under its lock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from keycrm_bridge.simulator.records import Order, OrderLine, SimError, num

if TYPE_CHECKING:
    from keycrm_bridge.simulator.state import SimState


def create_order(
    state: SimState,
    items: Iterable[Mapping[str, Any]],
    *,
    source_uuid: str | None = None,
    source_id: int = 1,
    warehouse_id: int | None = None,
) -> Order:
    """A new order reserves each line's quantity at ``warehouse_id`` (default: the first)."""
    with state.lock:
        wh = warehouse_id if warehouse_id is not None else state.default_warehouse()
        if wh not in state.warehouses:
            raise SimError(f"unknown warehouse {wh}")
        lines: list[OrderLine] = []
        for item in items:
            ids = state.find_offer_ids(offer_id=item.get("offer_id"), sku=item.get("sku"))
            if not ids:
                raise SimError(f"unknown offer {item.get('sku') or item.get('offer_id')!r}", 404)
            offer = state.offers[ids[0]]
            product = state.products[offer.product_id]
            lines.append(
                OrderLine(
                    offer.id,
                    offer.sku,
                    num(item.get("quantity", 1)),
                    num(item.get("price", offer.price)),
                    product.name,
                )
            )
        if not lines:
            raise SimError("an order needs at least one product")
        now = state.clock.now()
        order = Order(state._next_order, source_uuid, source_id, "new", wh, lines, now, now)
        state._next_order += 1
        state.orders[order.id] = order
        state.order_ids.append(order.id)
        if source_uuid is not None:
            state.orders_by_uuid.setdefault(source_uuid, []).append(order.id)
        _move(state, order, reserve_sign=+1, quantity_sign=0, now=now)
        return order


def cancel_order(state: SimState, order_id: int) -> Order:
    """Cancelling a new order releases its reserve."""
    return _close(state, order_id, "canceled", quantity_sign=0)


def complete_order(state: SimState, order_id: int) -> Order:
    """Completing ships the goods: quantity and reserve both drop by each line's quantity."""
    return _close(state, order_id, "completed", quantity_sign=-1)


def _close(state: SimState, order_id: int, status: str, *, quantity_sign: int) -> Order:
    with state.lock:
        order = _open_order(state, order_id)
        now = state.clock.now()
        order.status, order.updated_at, order.closed_at = status, now, now
        _move(state, order, reserve_sign=-1, quantity_sign=quantity_sign, now=now)
        return order


def _open_order(state: SimState, order_id: int) -> Order:
    order = state.orders.get(order_id)
    if order is None:
        raise SimError(f"order {order_id} not found", 404)
    if order.status != "new":
        raise SimError(f"order {order_id} is already {order.status}", 409)
    return order


def _move(state: SimState, order: Order, *, reserve_sign: int, quantity_sign: int, now: float) -> None:
    changed: dict[int, None] = {}
    for line in order.lines:
        cell = state.cell(line.offer_id, order.warehouse_id)
        cell.reserve = num(cell.reserve + reserve_sign * line.quantity)
        cell.quantity = num(cell.quantity + quantity_sign * line.quantity)
        state.offers[line.offer_id].updated_at = now
        changed[line.offer_id] = None
    state._notify(list(changed))
