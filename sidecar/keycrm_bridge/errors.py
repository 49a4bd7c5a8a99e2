"""The one error taxonomy: clients decide, the worker acts.

* ``RetryableError`` — the peer may succeed later (5xx, timeout, connection refused, 429).
  The worker keeps the change and tries again after ``retry_after`` or a backoff.
* ``PermanentError`` — the request itself is wrong or not authorised (400/401/403/404/422).
  Retrying cannot help; the worker marks the change failed and shows it in status.
* ``SkipError`` — this one item cannot be synced (unknown SKU, row rejected), but the rest of the
  batch can. The worker sets the item aside, lists it, and goes on.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the clients raise."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class RetryableError(BridgeError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, endpoint=endpoint)
        self.retry_after = retry_after


class PermanentError(BridgeError):
    pass


class SkipError(BridgeError):
    def __init__(self, message: str, *, sku: str | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.sku = sku


def classify_status(status: int) -> type[BridgeError] | None:
    """Map an HTTP status to the taxonomy; ``None`` means success."""
    if 200 <= status < 300:
        return None
    if status == 429 or status >= 500 or status == 408:
        return RetryableError
    return PermanentError
