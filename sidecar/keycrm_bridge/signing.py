"""HMAC signatures shared with the plugin (docs/events.md).

Batches: ``X-Bridge-Signature: sha256=HEX`` over ``timestamp + "." + body`` with the shared secret.
Sidecar writes to WooCommerce carry ``kcb_origin=TS.HEX`` (HMAC over ``"origin." + TS``) so the
plugin can tag the hooks they cause ``sidecar`` and no write bounces back.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Bridge-Signature"
TIMESTAMP_HEADER = "X-Bridge-Timestamp"
WINDOW_S = 300


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float) -> dict[str, str]:
    ts = int(now)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, body), "Content-Type": "application/json"}


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float) -> str | None:
    """Return None when valid, else a short reason (never echoing the expected value)."""
    if not timestamp or not signature:
        return "missing signature headers"
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "malformed timestamp"
    if abs(now - int(timestamp)) > WINDOW_S:
        return "timestamp outside the 5-minute window"
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip()):
        return "bad signature"
    return None


def origin_marker(secret: str, now: float) -> str:
    ts = int(now)
    mac = hmac.new(secret.encode(), f"origin.{ts}".encode(), hashlib.sha256).hexdigest()
    return f"{ts}.{mac}"


def verify_origin_marker(secret: str, marker: str, now: float) -> bool:
    ts, _, mac = marker.partition(".")
    if not ts.isdigit() or abs(now - int(ts)) > WINDOW_S:
        return False
    expected = hmac.new(secret.encode(), f"origin.{ts}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mac)
