"""A pause point between a stock decision and its WooCommerce write, for the race tests.

Off unless ``KCB_WRITE_BARRIER_DIR`` names a directory (the end-to-end tests set it on the worker
they start; nothing in the documented configuration does). When set, every WooCommerce stock write
first writes ``<dir>/waiting.json`` (the products and values about to be written), then waits for
``<dir>/release`` to exist: the test places a checkout in that window, then releases the write (and
every later one: ``release`` stays). Bounded, so a test that forgets to release only slows it down.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .clock import Clock

ENV = "KCB_WRITE_BARRIER_DIR"
MAX_HOLD_S = 120.0


def from_env(clock: Clock) -> Callable[[list[Any]], None] | None:
    directory = os.environ.get(ENV, "")
    if not directory:
        return None
    root = Path(directory)

    def hold(writes: list[Any]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        waiting, release = root / "waiting.json", root / "release"
        waiting.write_text(json.dumps([{"product_id": w.product_id, "sku": w.sku, "expect": w.expect,
                                        "set": w.quantity} for w in writes]))
        deadline = clock.now() + MAX_HOLD_S
        while not release.exists() and clock.now() < deadline:
            clock.sleep(0.02)
        waiting.unlink(missing_ok=True)

    return hold
