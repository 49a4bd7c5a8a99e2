"""How WooCommerce authenticates REST calls, and how the plugin recognises the sidecar's marker.

OAuth 1.0a is checked the way WC_REST_Authentication does it in PHP (not the way the Python
package signs), so a request the Python package signs differently from PHP fails here as it would
on a real shop: e.g. a '/' in a query value, which PHP's rawurlencode escapes and Python's quote
does not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from urllib.parse import quote

OAUTH_PARAMS = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
TIMESTAMP_WINDOW_S = 15 * 60  # WooCommerce's OAuth window
MARKER_PARAM = "kcb_origin"
MARKER_WINDOW_S = 300


class AuthError(Exception):
    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def rfc3986(value: str) -> str:
    """wc_rest_urlencode_rfc3986: PHP rawurlencode (only A-Z a-z 0-9 - _ . ~ unescaped)."""
    return quote(value, safe="-_.~")


def signature_base(method: str, base_uri: str, params: dict[str, str]) -> str:
    """The OAuth string to sign, as check_oauth_signature builds it (params without the signature)."""
    ordered = sorted(params.items(), key=lambda kv: kv[0].encode())  # uksort strcmp: byte order
    normalized = [(rfc3986(k), rfc3986(v)) for k, v in ordered]
    query = "%26".join(rfc3986(f"{k}={v}") for k, v in normalized)
    return f"{method.upper()}&{rfc3986(base_uri)}&{query}"


class OAuthVerifier:
    """One consumer key; remembers nonces inside the timestamp window, as WooCommerce does."""

    def __init__(self, consumer_key: str, consumer_secret: str) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self._nonces: dict[int, str] = {}
        self._lock = threading.Lock()

    def verify(self, method: str, base_uri: str, query: dict[str, str], wall_now: float) -> None:
        missing = [name for name in OAUTH_PARAMS if not query.get(name)]
        if missing:
            raise AuthError(
                "woocommerce_rest_authentication_error", f"Missing OAuth parameter {', '.join(missing)}", 401
            )
        if not hmac.compare_digest(query["oauth_consumer_key"].encode(), self.consumer_key.encode()):
            raise AuthError("woocommerce_rest_authentication_error", "Consumer key is invalid.")
        method_name = query["oauth_signature_method"]
        if method_name not in ("HMAC-SHA1", "HMAC-SHA256"):
            raise AuthError("woocommerce_rest_authentication_error", "Invalid signature - signature method is invalid.")
        signed = {k: v for k, v in query.items() if k != "oauth_signature"}
        digest = hashlib.sha256 if method_name == "HMAC-SHA256" else hashlib.sha1
        expected = base64.b64encode(
            hmac.new(
                f"{self.consumer_secret}&".encode(), signature_base(method, base_uri, signed).encode(), digest
            ).digest()
        ).decode()
        given = query["oauth_signature"].replace(" ", "+")
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise AuthError(
                "woocommerce_rest_authentication_error",
                "Invalid signature - provided signature does not match.",
            )
        try:
            timestamp = int(query["oauth_timestamp"])
        except ValueError as exc:
            raise AuthError("woocommerce_rest_authentication_error", "Invalid timestamp.") from exc
        if abs(timestamp - wall_now) > TIMESTAMP_WINDOW_S:
            raise AuthError("woocommerce_rest_authentication_error", "Invalid timestamp.")
        nonce = query["oauth_nonce"]
        with self._lock:
            # As WooCommerce: one remembered nonce per timestamp second, kept for the window.
            if nonce in self._nonces.values():
                raise AuthError("woocommerce_rest_authentication_error", "Invalid nonce - nonce has already been used.")
            cutoff = wall_now - TIMESTAMP_WINDOW_S
            self._nonces = {t: n for t, n in self._nonces.items() if t >= cutoff}
            self._nonces[timestamp] = nonce

    def verify_basic(self, user: str, password: str) -> None:
        ok_user = hmac.compare_digest(user.encode(), self.consumer_key.encode())
        ok_pass = hmac.compare_digest(password.encode(), self.consumer_secret.encode())
        if not ok_user:
            raise AuthError("woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not ok_pass:
            raise AuthError("woocommerce_rest_authentication_error", "Consumer secret is invalid.")


def marker_state(marker: str | None, shared_secret: str | None, now: float) -> str:
    """'absent', 'valid' or 'invalid': the plugin's check of kcb_origin=<ts>.<hex hmac("origin."+ts)>."""
    if not marker:
        return "absent"
    if not shared_secret:
        return "invalid"
    ts, _, mac = marker.partition(".")
    if not ts.isdigit() or not mac:
        return "invalid"
    expected = hmac.new(shared_secret.encode(), f"origin.{ts}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), mac.lower().encode()):
        return "invalid"
    if abs(int(ts) - now) > MARKER_WINDOW_S:
        return "invalid"
    return "valid"
