"""The simulator's control API (``/__sim``: seed, stock edits, orders, faults, the request log,
webhooks, the rate budget) as methods, for tests and benches."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import requests


class SimControlError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {body[:500]}")
        self.status = status
        self.body = body


class SimControl:
    """The control API (``/__sim``) as methods. ``url`` is the simulator's root URL (no ``/v1``)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        resp = self._session.request(
            method, f"{self.url}/__sim{path}", json=body, params=params, timeout=self.timeout
        )
        if resp.status_code >= 400:
            raise SimControlError(method, path, resp.status_code, resp.text)
        return resp.json()

    # ------------------------------------------------------------ catalogue
    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def reset(self) -> None:
        """Empty catalogue, orders, request log, faults, rate window; keep key/rate/webhook config."""
        self._call("POST", "/reset")

    def seed(
        self,
        count: int = 0,
        *,
        warehouses: Sequence[int | Mapping[str, Any]] | None = None,
        quantity: float | Mapping[int, float] | None = None,
        reserve: float | Mapping[int, float] | None = None,
        offers: Iterable[Mapping[str, Any]] | None = None,
        products: Iterable[Mapping[str, Any]] | None = None,
        prefix: str = "SKU-",
        start: int = 1,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add ``count`` generated simple products (``SKU-000001``…, see :func:`generated_sku`), explicit
        ``offers`` (``{"sku", "quantity", "reserve", "price", …}``) and ``products`` with variations
        (``{"name", "offers": [{"sku", "properties": [{"name", "value"}], …}]}``). A number for
        ``quantity``/``reserve`` goes to the first warehouse; a mapping gives it per warehouse."""
        body: dict[str, Any] = {"count": count, "prefix": prefix, "start": start, **extra}
        if warehouses is not None:
            body["warehouses"] = list(warehouses)
        for key, value in (("quantity", quantity), ("reserve", reserve)):
            if value is not None:
                body[key] = {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else value
        if offers is not None:
            body["offers"] = [_stringify_stock(o) for o in offers]
        if products is not None:
            body["products"] = [
                {**p, "offers": [_stringify_stock(o) for o in p.get("offers", [])]} for p in products
            ]
        return self._call("POST", "/seed", body)

    def edit_offers(self, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Edit offers as a KeyCRM user (price, weight, …) by ``sku`` or ``id``."""
        return self._call("POST", "/offers", {"offers": list(rows)})

    def edit_product(self, product_id: int, **fields: Any) -> dict[str, Any]:
        return self._call("POST", f"/products/{product_id}", fields)

    # ---------------------------------------------------------------- stock
    def receive(self, sku: str, delta: float, warehouse_id: int | None = None) -> dict[str, Any]:
        """A receiving (+) or write-off (−) in KeyCRM; fires the stock webhook."""
        return self.adjust([{"sku": sku, "delta": delta, "warehouse_id": warehouse_id}])

    def set_stock(
        self,
        sku: str,
        *,
        quantity: float | None = None,
        reserve: float | None = None,
        warehouse_id: int | None = None,
    ) -> dict[str, Any]:
        """A manual edit in KeyCRM: absolute quantity and/or reserve; fires the stock webhook."""
        return self.adjust(
            [{"sku": sku, "quantity": quantity, "reserve": reserve, "warehouse_id": warehouse_id}]
        )

    def adjust(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        rows = [{k: v for k, v in item.items() if v is not None} for item in items]
        return self._call("POST", "/receive", {"items": rows})

    def truth(
        self, skus: Iterable[str] | None = None, warehouses: Iterable[int] | None = None
    ) -> dict[str, Any]:
        """Per SKU: ``offer_id``, ``quantity``, ``reserve``, ``sellable``, ``warehouses`` {id: {quantity,
        reserve}}, price/weight/…; ``None`` for an unknown SKU. ``skus=None``: the whole catalogue."""
        body: dict[str, Any] = {}
        if skus is not None:
            body["skus"] = list(skus)
        if warehouses is not None:
            body["warehouses"] = list(warehouses)
        return self._call("POST", "/truth", body)

    def sellable(self, sku: str, warehouses: Iterable[int] | None = None) -> float:
        row = self.truth([sku], warehouses)[sku]
        if row is None:
            raise KeyError(sku)
        return row["sellable"]

    def sellable_map(
        self, skus: Iterable[str] | None = None, warehouses: Iterable[int] | None = None
    ) -> dict[str, float]:
        return {sku: row["sellable"] for sku, row in self.truth(skus, warehouses).items() if row is not None}

    # --------------------------------------------------------------- orders
    def create_order(
        self,
        items: Mapping[str, float] | Iterable[Mapping[str, Any]],
        *,
        source_uuid: str | None = None,
        warehouse_id: int | None = None,
    ) -> dict[str, Any]:
        """Place an order in KeyCRM (it reserves stock).

        ``items``: ``{"SKU": qty}`` or ``[{"sku", "quantity"}]``."""
        rows = (
            [{"sku": k, "quantity": v} for k, v in items.items()]
            if isinstance(items, Mapping)
            else list(items)
        )
        body: dict[str, Any] = {"items": rows, "source_uuid": source_uuid}
        if warehouse_id is not None:
            body["warehouse_id"] = warehouse_id
        return self._call("POST", "/orders", body)

    def cancel_order(self, order_id: int) -> dict[str, Any]:
        return self._call("POST", f"/orders/{order_id}/cancel")

    def complete_order(self, order_id: int) -> dict[str, Any]:
        return self._call("POST", f"/orders/{order_id}/complete")

    def orders(self) -> list[dict[str, Any]]:
        return self._call("GET", "/orders")["orders"]

    # --------------------------------------------------------------- faults
    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Merge fault settings: ``error_rate``, ``error_status``, ``fail_next``, ``seed``, ``latency``
        (clock s), ``hang_seconds`` (real s, then 504), ``down`` (503), ``paths``, ``methods``."""
        return self._call("POST", "/faults", settings)

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/faults")

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/faults")

    def down(self, is_down: bool = True) -> dict[str, Any]:
        return self.set_faults(down=is_down)

    # ---------------------------------------------------------- request log
    def requests(
        self,
        since: int = 0,
        *,
        method: str | None = None,
        path: str | None = None,
        bodies: bool = True,
    ) -> list[dict[str, Any]]:
        """Logged API requests after ``since``: seq, time, method, path, query, body, status, and for
        stock writes applied/ignored/ignored_rows/changed."""
        params: dict[str, Any] = {"since": since, "bodies": "1" if bodies else "0"}
        if method:
            params["method"] = method
        if path:
            params["path"] = path
        return self._call("GET", "/requests", params=params)["requests"]

    def last_seq(self) -> int:
        return int(self._call("GET", "/health")["last_seq"])

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    # ------------------------------------------------------------- webhooks
    def configure_webhook(self, **settings: Any) -> dict[str, Any]:
        """Any of ``url``, ``warehouses`` (list, or None for all), ``delay`` (clock s), ``enabled``,
        ``timeout``."""
        return self._call("POST", "/webhook", settings)

    def webhook_status(self) -> dict[str, Any]:
        return self._call("GET", "/webhook")

    def webhook_history(self) -> list[dict[str, Any]]:
        return self._call("GET", "/webhook/history")["deliveries"]

    def wait_webhooks_idle(self, timeout: float = 10.0) -> dict[str, Any]:
        """Poll (bounded) until no webhook is queued or in flight; returns the webhook status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.webhook_status()
            if status["pending"] == 0:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"webhooks still pending after {timeout}s: {status}")
            time.sleep(0.02)

    # ----------------------------------------------------------------- rate
    def rate(
        self, limit: int | None = None, window: float | None = None, reset: bool = False
    ) -> dict[str, Any]:
        """Read or change the budget (``limit`` 0: unlimited); ``reset`` forgets the current window."""
        body: dict[str, Any] = {"reset": reset}
        if limit is not None:
            body["limit"] = limit
        if window is not None:
            body["window"] = window
        return self._call("POST", "/rate", body)


def _stringify_stock(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("quantity", "reserve"):
        if isinstance(out.get(key), Mapping):
            out[key] = {str(k): v for k, v in out[key].items()}
    return out
