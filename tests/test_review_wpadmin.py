"""The first-sync review in wp-admin, in headless Chromium, against the real sidecar.

A bridge that has never synced (nothing approved) meets a drifted catalogue. The owner sees the
admin notice and "Writing stock: not yet", presses "Review and start", cancels once half way, runs
it again and reads the comparison on the page — counts per action and per problem, the rows (paged,
searchable by SKU, both sides' values and the reason) — in English and in Ukrainian, then applies it:
the stock is written and the notice is gone. Screenshots go to wp-plugin/tests/artifacts/.
"""

import json
import subprocess
import time

from test_resync_wpadmin import PLUGIN, SECRET, browser, pytestmark, wordpress  # noqa: F401 - fixtures

from resync_stack import ResyncStack, S12Catalogue

ARTIFACTS = PLUGIN / "tests" / "artifacts"


def shot(dt, name: str) -> None:
    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = dt.js("Math.max(document.body.scrollHeight, 1200)")
    dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(height), deviceScaleFactor=1, mobile=False)
    (ARTIFACTS / name).write_bytes(base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"]))


def wait_js(dt, expression: str, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the plugin polls the sidecar every second
        value = dt.js(expression)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def text(dt, selector: str) -> str:
    return dt.js(f"(document.querySelector({json.dumps(selector)}) || {{textContent: ''}}).textContent")


def test_first_sync_is_reviewed_on_the_plugin_page(wordpress, browser, tmp_path):  # noqa: F811
    cat = S12Catalogue(total=300, drifted=40)
    stack = ResyncStack(tmp_path, "keycrm", reviewed=False, BRIDGE_SHARED_SECRET=SECRET)
    stack.start(cat.keycrm_offers(), cat.woo_products())
    try:
        dt, wp = browser, wordpress["wp_url"]
        dt.login(wp, wordpress["admin_user"], wordpress["admin_pass"])
        dt.connect_sidecar(wp, stack.web.url, SECRET)

        # What waits on the owner is said on every admin page, and on this one in the status table.
        dt.goto(f"{wp}/wp-admin/index.php")
        assert "no stock is written to either side" in text(dt, ".kcb-notice-review"), "admin notice on the dashboard"
        dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
        assert "not yet" in text(dt, "table.kcb-status"), text(dt, "table.kcb-status")
        assert "Not known yet" in text(dt, ".kcb-admin"), "no unmatched SKUs claimed before a comparison"
        assert text(dt, "#kcb-resync-start") == "Review and start"
        shot(dt, "review-waiting-en.png")

        # Cancel, half way through a slow comparison.
        stack.sim.control.set_faults(latency=1.0)
        dt.js("document.getElementById('kcb-resync-start').click(); true")
        wait_js(dt, "!document.getElementById('kcb-resync-cancel').hidden", "the Cancel button")
        dt.js("document.getElementById('kcb-resync-cancel').click(); true")
        wait_js(dt, "document.getElementById('kcb-resync-status').dataset.phase === 'cancelled'", "cancelled")
        assert stack.job("latest")["phase"] == "cancelled"
        stack.sim.control.clear_faults()

        # The comparison, on the page.
        seen = []
        dt.js("document.getElementById('kcb-resync-start').click(); true")
        while not dt.js("document.getElementById('kcb-resync-status').dataset.phase === 'done'"):
            seen.append(dt.js("document.getElementById('kcb-resync-progress').value"))
            time.sleep(0.2)
        assert seen == sorted(seen), f"the bar ran backwards: {seen}"
        wait_js(dt, "!document.getElementById('kcb-review').hidden", "the review")
        counts = text(dt, "#kcb-review-counts")
        assert "SKUs compared" in counts and f"to be changed in WooCommerce{len(cat.drifted)}" in counts, counts
        assert "problem: only in KeyCRM" in counts, counts
        rows = dt.js("[...document.querySelectorAll('#kcb-review-rows tr')].map(tr => tr.textContent)")
        assert len(rows) == 20 and all("WooCommerce will be set to" in r for r in rows), rows[:3]
        assert text(dt, "#kcb-review-page").startswith("Rows 1–20 of "), text(dt, "#kcb-review-page")
        sku = cat.drifted[3]
        before = dt.js("document.getElementById('kcb-review').dataset.loaded")
        dt.js(f"var s = document.getElementById('kcb-review-sku'); s.value = {json.dumps(sku)};"
              "s.dispatchEvent(new Event('input')); true")
        wait_js(dt, f"document.getElementById('kcb-review').dataset.loaded !== {json.dumps(before)}", "the search")
        found = dt.js("[...document.querySelectorAll('#kcb-review-rows tr')].map(tr => tr.textContent)")
        woo, kc = cat.woo_stock[sku], cat.sellable[sku]
        assert len(found) == 1 and sku in found[0] and f"{woo}{kc}WooCommerce will be set to {kc}" in found[0], found
        dt.js("var s = document.getElementById('kcb-review-sku'); s.value = ''; s.dispatchEvent(new Event('input')); true")
        time.sleep(0.6)  # the search waits 250 ms for typing to stop; the screenshot shows the first page
        shot(dt, "review-rows-en.png")
        assert stack.woo_stock_writes() == {}, "nothing written before the review was applied"

        env_dir = wordpress["env_dir"]
        from admin_page_test import wpctl

        wpctl(env_dir, "locale", wordpress["admin_user"], "uk")
        try:
            dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
            wait_js(dt, "!document.getElementById('kcb-review').hidden", "the review after a reload")
            assert text(dt, "#kcb-review h3") == "Що знайшло порівняння"
            assert text(dt, "#kcb-resync-start") == "Переглянути й почати"
            assert "залишки не записуються" in text(dt, ".kcb-notice-review")
            wait_js(dt, "document.querySelectorAll('#kcb-review-rows tr').length > 0", "rows in Ukrainian")
            assert "у WooCommerce буде" in text(dt, "#kcb-review-rows")
            shot(dt, "review-rows-uk.png")
        finally:
            wpctl(env_dir, "locale", wordpress["admin_user"], "")

        dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
        wait_js(dt, "!document.getElementById('kcb-review').hidden", "the review")
        dt.js("document.getElementById('kcb-review-apply').click(); true")
        wait_js(dt, "document.getElementById('kcb-resync-status').dataset.phase === 'done'", "the apply", 120)
        applied = stack.job("latest")
        assert not applied["dry_run"] and applied["counts"]["writes"] == {"woocommerce_done": len(cat.drifted)}
        assert all(stack.woo_stock(s) == cat.sellable[s] for s in cat.drifted[::5])
        assert stack.call("GET", "/v1/status").json()["first_sync"]["approved"] is True
        dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
        assert dt.js("document.querySelector('.kcb-notice-review') === null"), "the notice is gone once applied"
        assert "yes: the first comparison was reviewed and applied" in text(dt, "table.kcb-status")

        # "Why is this SKU at 3?" on the product's edit screen.
        sku = cat.drifted[0]
        out = subprocess.run(["php", str(PLUGIN / "tests" / "lib" / "wpctl.php"), env_dir, "product", sku, "3"],
                             capture_output=True, text=True, check=True)
        product_id = int(out.stdout.strip().split()[-1])
        dt.goto(f"{wp}/wp-admin/post.php?post={product_id}&action=edit")
        wait_js(dt, "document.querySelector('#kcb-product-panel .kcb-timeline li') !== null", "the product panel")
        facts = text(dt, "#kcb-product-panel .kcb-sku-facts")
        quantity, reserve = cat.quantity[sku], cat.reserve[sku]
        assert f"on hand {quantity} − reserved {reserve} = sellable {cat.sellable[sku]}" in facts, facts
        assert "Last sync to WooCommerce" in facts and f"(set to {cat.sellable[sku]})" in facts, facts
        timeline = dt.js("[...document.querySelectorAll('#kcb-product-panel .kcb-timeline li')].map(li => li.textContent)")
        assert any("full resync" in t for t in timeline), timeline
        assert not any("None" in t or "{'" in t for t in timeline), timeline
        shot(dt, "product-panel-en.png")
        # The "Don't sync this product" switch sits in the panel, off (its save: tests/test_exclude_e2e.py and
        # the plugin suite's ProductExclusionTest).
        assert "Don't sync this product" in text(dt, "#kcb-product-panel .kcb-exclude")
        assert dt.js("document.querySelector('#kcb-product-panel .kcb-exclude-switch').checked") is False
        wpctl(env_dir, "locale", wordpress["admin_user"], "uk")
        try:
            dt.goto(f"{wp}/wp-admin/post.php?post={product_id}&action=edit")
            assert "на складі" in text(dt, "#kcb-product-panel .kcb-sku-facts")
            assert "Не синхронізувати цей товар" in text(dt, "#kcb-product-panel .kcb-exclude")
            # The timeline is worded by the plugin from the sidecar's kinds and values, so it reads in Ukrainian too.
            timeline_uk = dt.js("[...document.querySelectorAll('#kcb-product-panel .kcb-timeline li')]"
                                ".map(li => li.textContent)")
            assert any("повна пересинхронізація: WooCommerce" in t for t in timeline_uk), timeline_uk
            assert not any("full resync" in t for t in timeline_uk), timeline_uk
            shot(dt, "product-panel-uk.png")
        finally:
            wpctl(env_dir, "locale", wordpress["admin_user"], "")
        assert not dt.exceptions, f"JavaScript errors: {dt.exceptions}"
    finally:
        stack.stop()
