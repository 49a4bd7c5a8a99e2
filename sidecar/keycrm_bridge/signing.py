"""HMAC signatures shared with the plugin (docs/events.md).

Requests: ``X-Bridge-Signature: v2=HEX``, HMAC-SHA256 with the shared secret over
``"v2\\n" METHOD "\\n" PATH "\\n" QUERY "\\n" TIMESTAMP "\\n" BODY``, so a signature is good for one
request only: its method, its path (inside the API, each segment percent-encoded as PHP's
``rawurlencode`` does), its raw query string, its time and its body. The first release signed
``timestamp + "." + body`` (``sha256=HEX``); that form is accepted on ``POST /v1/events`` alone
during the upgrade (see :func:`verify`).

Sidecar writes to WooCommerce carry ``kcb_origin=TS.HEX`` (HMAC over ``"origin." + TS``) so the
plugin can tag the hooks they cause ``sidecar`` and no write bounces back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote, unquote

SIGNATURE_HEADER = "X-Bridge-Signature"
TIMESTAMP_HEADER = "X-Bridge-Timestamp"
WINDOW_S = 300
VERSION = "v2"
LEGACY_PREFIX = "sha256="
# Only the route whose body says what it is: an old signature over a batch can do nothing there
# but deliver that batch, so accepting it keeps stock flowing while the plugin is upgraded.
LEGACY_ROUTE = ("POST", "/v1/events")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() is true for "²"


def sign_request(secret: str, method: str, path: str, query: str, timestamp: int | str, body: bytes) -> str:
    """``path`` percent-decoded (as the app routes on it), ``query`` raw: the server's view."""
    head = f"{VERSION}\n{method.upper()}\n{quote(path, safe='/')}\n{query}\n{timestamp}\n"
    return f"{VERSION}=" + hmac.new(secret.encode(), head.encode("utf-8") + body, hashlib.sha256).hexdigest()


def sign(secret: str, method: str, target: str, timestamp: int | str, body: bytes) -> str:
    """The client's view: ``target`` is the path inside the API and its query string as sent."""
    path, _, query = target.partition("?")
    return sign_request(secret, method, unquote(path), query, timestamp, body)


def sign_legacy(secret: str, timestamp: int | str, body: bytes) -> str:
    """The first release's form; kept for the upgrade test and for old plugins' batches only."""
    return LEGACY_PREFIX + hmac.new(secret.encode(), str(timestamp).encode() + b"." + body,
                                    hashlib.sha256).hexdigest()


def signed_headers(secret: str, method: str, target: str, body: bytes, now: float) -> dict[str, str]:
    ts = int(now)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, method, target, ts, body),
            "Content-Type": "application/json"}


def verify(secret: str, method: str, path: str, query: str, timestamp: str | None, signature: str | None,
           body: bytes, now: float) -> str | None:
    """Return None when valid, else a short reason (never echoing the expected value)."""
    if not timestamp or not signature:
        return "missing signature headers"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "malformed timestamp"
    if abs(now - int(timestamp)) > WINDOW_S:
        return "timestamp outside the 5-minute window"
    given = signature.strip()
    if given.startswith(LEGACY_PREFIX):
        if (method.upper(), path) != LEGACY_ROUTE:
            return "old signature form (timestamp.body): upgrade the plugin"
        expected = sign_legacy(secret, timestamp, body)
    else:
        expected = sign_request(secret, method, path, query, timestamp, body)
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        return "bad signature"
    return None


def origin_marker(secret: str, now: float) -> str:
    ts = int(now)
    mac = hmac.new(secret.encode(), f"origin.{ts}".encode(), hashlib.sha256).hexdigest()
    return f"{ts}.{mac}"


def verify_origin_marker(secret: str, marker: str, now: float) -> bool:
    ts, _, mac = marker.partition(".")
    if not _TIMESTAMP.fullmatch(ts) or abs(now - int(ts)) > WINDOW_S:
        return False
    expected = hmac.new(secret.encode(), f"origin.{ts}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace"))
