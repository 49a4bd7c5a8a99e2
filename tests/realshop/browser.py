"""Headless Chromium on the real shop: the owner presses Full resync on the plugin's page and follows it
to the end; the plugin's page and a product's stock panel are kept as screenshots."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "wp-plugin" / "tests" / "browser"))

from devtools import DevTools, start_chromium  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _shot(dt: DevTools, name: str) -> str:
    import base64

    height = dt.js("Math.max(document.body.scrollHeight, 1200)")
    dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(height), deviceScaleFactor=1, mobile=False)
    target = ARTIFACTS / name
    target.write_bytes(base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"]))
    return f"{target.relative_to(ROOT)} ({target.stat().st_size} bytes)"


def _wait_long(dt: DevTools, expression: str, what: str, seconds: float = 240.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            dt.wait_for(expression, what)
            return
        except AssertionError:
            if time.monotonic() >= deadline:
                raise


def full_resync(base: str, user: str, password: str, product_id: int) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    profile = tempfile.mkdtemp(prefix="kcb-realshop-chromium-")
    browser, ws_url = start_chromium(profile)
    try:
        dt = DevTools(ws_url)
        dt.call("Page.enable")
        dt.call("Runtime.enable")
        dt.login(base, user, password)
        dt.goto(f"{base}/wp-admin/admin.php?page=keycrm-bridge")
        assert dt.js("document.querySelector('h1').textContent") == "KeyCRM Bridge"
        assert dt.js("document.getElementById('kcb-resync-dry-run').checked"), "dry run is the default"
        dt.js("document.getElementById('kcb-resync-start').click(); true")
        # A real shop's REST pages take seconds each, and the resync now reads KeyCRM within the shared
        # budget: allow minutes, not the page helper's 30 s.
        _wait_long(dt, "document.getElementById('kcb-resync-status').dataset.finished === '1'", "the resync to finish")
        status = dt.js("document.getElementById('kcb-resync-status').textContent")
        assert dt.js("document.getElementById('kcb-resync-status').classList.contains('kcb-ok')"), status
        assert dt.js("document.getElementById('kcb-resync-progress').value") == 100
        dt.wait_for("!document.getElementById('kcb-resync-report').hidden", "the report links")
        page_shot = _shot(dt, "realshop-plugin-page.png")
        dt.goto(f"{base}/wp-admin/post.php?post={product_id}&action=edit")
        dt.js("(document.querySelector('.inventory_options a') || {click() {}}).click(); true")
        dt.wait_for("document.getElementById('_stock') !== null", "the product's inventory panel")
        panel_shot = _shot(dt, "realshop-product-panel.png")
        assert not dt.exceptions, f"JavaScript errors: {dt.exceptions}"
        return f"Full resync (dry run) in Chromium: {status}; screenshots {page_shot}, {panel_shot}"
    finally:
        browser.terminate()
        browser.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
