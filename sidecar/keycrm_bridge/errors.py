"""The one error taxonomy: clients decide, the worker acts.

* ``RetryableError`` — the peer may succeed later (5xx, timeout, connection refused, 429).
  The worker keeps the change and tries again after ``retry_after`` or a backoff.
* ``PermanentError`` — the request itself is wrong or not authorised (400/401/403/404/422).
  Retrying cannot help; the worker marks the change failed and shows it in status.
* ``SkipError`` — this one item cannot be synced (unknown SKU, row rejected), but the rest of the
  batch can. The worker sets the item aside, lists it, and goes on.
"""

from __future__ import annotations

import random


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


RETRYABLE, PERMANENT, SKIP = "retryable", "permanent", "skip"
# SQLite saying so is about the machine (a lock held too long, a full or failing disk), not the item.
_TRANSIENT_SQLITE = ("locked", "busy", "disk is full", "database or disk is full", "disk i/o", "unable to open")


def disposition(exc: BaseException) -> str:
    """What the worker does with an item whose processing raised ``exc``.

    ``retryable``: keep it and try again under the one retry policy (the peer or the machine is at
    fault). ``permanent`` / ``skip``: this item cannot be processed as it is; it is set aside
    (quarantine) and everything else goes on. A bug or a poisoned value (``ValueError``,
    ``OverflowError``, an SQLite constraint) is the item's, so it is permanent too.
    """
    import sqlite3

    if isinstance(exc, RetryableError):
        return RETRYABLE
    if isinstance(exc, PermanentError) and exc.status in (401, 403):
        return RETRYABLE  # a refused key is fixed in settings; the item is not to blame
    if isinstance(exc, SkipError):
        return SKIP
    if isinstance(exc, sqlite3.OperationalError) and any(t in str(exc).lower() for t in _TRANSIENT_SQLITE):
        return RETRYABLE
    if isinstance(exc, MemoryError | OSError):
        return RETRYABLE
    return PERMANENT


def describe(exc: BaseException) -> str:
    """One line for status and logs: the exception's class and message, bounded."""
    text = str(exc) or type(exc).__name__
    name = type(exc).__name__
    return (text if isinstance(exc, BridgeError) else f"{name}: {text}")[:500]


def backoff_s(attempts: int, rng: random.Random) -> float:
    """The one retry policy: exponential backoff with jitter, capped at five minutes (a long outage
    costs few calls). A peer's ``Retry-After`` is honoured on top of it by the caller."""
    return float(min(300.0, 2.0 ** min(attempts, 9)) * (0.5 + rng.random() / 2))
