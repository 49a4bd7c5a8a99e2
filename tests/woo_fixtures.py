"""What the WooCommerce client and peer tests share (their fixtures are in conftest.py): the secret,
a client on the peer, a bare wc/v3 API client, the peer's REST log."""

from __future__ import annotations

import random
from typing import Any

from woocommerce import API

from keycrm_bridge.clock import FakeClock
from keycrm_bridge.woo_client import WooClient

SECRET = "shared-secret-for-tests"
REST = "/wp-json/wc/v3/"


def make_client(url: str, clock: FakeClock, **kw: Any) -> WooClient:
    kw.setdefault("timeout", 5)
    kw.setdefault("rng", random.Random(7))
    return WooClient(url, "ck_test", "cs_test", SECRET, clock, **kw)


def rest_log(peer: Any, since: int = 0) -> list[dict[str, Any]]:
    return peer.control.log(since=since)


def api(url: str, secret: str = "cs_test", key: str = "ck_test") -> API:
    """The `woocommerce` package's own client, without the bridge's."""
    return API(url, key, secret, version="wc/v3", timeout=10)
