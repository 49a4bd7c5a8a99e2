"""The peer's control API (``/__peer/``: seed, admin edits, orders, faults, the change log, the
plugin's outbox and options) as methods, for tests and benches."""

from __future__ import annotations

import time
from typing import Any

import requests


class WooPeerControl:
    """Client of the peer's /__peer/ API."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        resp = self._session.request(
            method, f"{self.url}/__peer/{route}", json=body, params=params or None, timeout=self.timeout
        )
        if resp.status_code >= 400:
            raise PeerControlError(resp.status_code, resp.json() if resp.content else None)
        return resp.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def seed(
        self,
        simple: int = 0,
        variable: int = 0,
        variations: int = 3,
        stock: int = 10,
        sku_prefix: str = "SKU-",
        products: list[dict[str, Any]] | None = None,
        allow_duplicate_skus: bool = False,
        manage_stock: bool = True,
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            "seed",
            {
                "simple": simple,
                "variable": variable,
                "variations": variations,
                "stock": stock,
                "sku_prefix": sku_prefix,
                "products": products or [],
                "allow_duplicate_skus": allow_duplicate_skus,
                "manage_stock": manage_stock,
            },
        )

    def set_stock(
        self, quantity: int, *, sku: str | None = None, product_id: int | None = None, cause: str = "manual"
    ) -> dict[str, Any]:
        """An admin edit of the stock field (event cause manual unless told)."""
        return self._call("POST", "stock", {"sku": sku, "product_id": product_id, "quantity": quantity, "cause": cause})

    def edit(self, *, sku: str | None = None, product_id: int | None = None, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "edit", {"sku": sku, "product_id": product_id, **fields})

    def rename(
        self, new_sku: str, *, sku: str | None = None, product_id: int | None = None, force: bool = False
    ) -> dict[str, Any]:
        return self._call("POST", "rename", {"sku": sku, "product_id": product_id, "new_sku": new_sku, "force": force})

    def delete(self, *, sku: str | None = None, product_id: int | None = None) -> dict[str, Any]:
        return self._call("POST", "delete", {"sku": sku, "product_id": product_id})

    def place_order(self, items: list[dict[str, Any]], allow_backorder: bool = False) -> dict[str, Any]:
        """items: [{"sku" or "product_id", "quantity"}]."""
        return self._call("POST", "orders", {"items": items, "allow_backorder": allow_backorder})

    def cancel_order(self, order_id: int) -> dict[str, Any]:
        return self._call("POST", f"orders/{order_id}/cancel")

    def refund_order(self, order_id: int) -> dict[str, Any]:
        return self._call("POST", f"orders/{order_id}/refund")

    def product(self, sku: str) -> dict[str, Any] | None:
        """The product with this SKU (the lowest id when duplicated), or None."""
        found = self._call("GET", "products", sku=sku)["products"]
        return found[0] if found else None

    def products_by_sku(self, sku: str) -> list[dict[str, Any]]:
        return self._call("GET", "products", sku=sku)["products"]

    def product_by_id(self, product_id: int) -> dict[str, Any]:
        return self._call("GET", f"products/{product_id}")

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", "log", since=since)["entries"]

    def log_position(self) -> int:
        return int(self._call("GET", "log", since=1 << 62)["last"])

    def clear_log(self) -> None:
        self._call("POST", "log/clear")

    def reset(self) -> None:
        self._call("POST", "reset")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """status, error_rate, fail_next, hang_rate, hang_next, hang_seconds, path_contains, after_commit."""
        return self._call("POST", "faults", faults)

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "faults")

    def events(self, since: int = 0) -> dict[str, Any]:
        return self._call("GET", "events", since=since)

    def retry_events(self) -> None:
        self._call("POST", "events/retry")

    def configure(
        self,
        *,
        sidecar_url: str | None = None,
        shared_secret: str | None = None,
        batch_limit: int | None = None,
        key_permissions: str | None = None,
    ) -> dict[str, Any]:
        """Plugin options and shop settings; key_permissions "read" makes the REST key read-only."""
        body: dict[str, Any] = {}
        if key_permissions is not None:
            body["key_permissions"] = key_permissions
        if batch_limit is not None:
            body["batch_limit"] = batch_limit
        if sidecar_url is not None:
            body["sidecar_url"] = sidecar_url
        if shared_secret is not None:
            body["shared_secret"] = shared_secret
        return self._call("POST", "config", body)

    def wait_events_sent(self, timeout: float = 10.0) -> dict[str, Any]:
        """Poll (bounded) until the plugin outbox is empty; returns the final status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.events()
            if status["pending"] == 0:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"peer still has {status['pending']} event batches pending: {status}")
            time.sleep(0.02)


class PeerControlError(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(f"peer control answered {status}: {payload}")
        self.status = status
        self.payload = payload
