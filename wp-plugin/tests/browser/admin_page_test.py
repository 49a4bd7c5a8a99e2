#!/usr/bin/env python3
"""Headless Chromium test of the admin page, driven over the DevTools protocol (stdlib only).

Logs into wp-admin, opens WooCommerce → KeyCRM Bridge, saves the sidecar URL and secret through the form,
runs the connection test, presses Full resync (dry run) and follows the progress bar to the end, checks the
"Download report" links that appear then (fetched, and clicked into a real download; still there after a
reload), then keeps a full-page screenshot in tests/artifacts/; then a sidecar that waits on the owner: the notices,
the quarantine list (with Retry / Drop) and the excluded SKUs, in English and Ukrainian (notices-quarantine-*.png).
Reads the environment from $KCB_ENV_DIR/env.json.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from devtools import DEADLINE_S, DevTools, start_chromium

HERE = Path(__file__).resolve().parent
PLUGIN = HERE.parent.parent
ARTIFACTS = PLUGIN / "tests" / "artifacts"
SECRET = "b0a710ad" * 8


# A sidecar that waits on the owner: first sync not reviewed, a guard hold, two items set aside, an excluded SKU.
WAITING = {
    "first_sync": {"approved": False, "waiting_reason": "first sync: review the comparison and apply it (a full"
                   " resync) to start writing stock", "waiting_reason_code": "first_sync", "waiting_reason_args": {}},
    "guard_holds": [{"id": 1, "skus": ["G-1", "G-2"]}],
    "quarantine": {"count": 2, "by_stage": {"sync": 1, "intake": 1}, "items": [
        {"id": 4, "stage": "sync", "key": "sku:QA-1", "sku": "QA-<b>1</b>", "attempts": 2, "status": "held",
         "reason": "KeyCRM rejected the stock row: quantity must be a number", "reason_code": "keycrm_rejected_row",
         "reason_args": {"detail": "quantity must be a number"}, "first_at": time.time() - 900,
         "last_at": time.time() - 300},
        {"id": 5, "stage": "intake", "key": "event:e1", "sku": None, "attempts": 1, "status": "retry",
         "reason": "ValueError: 1e309 is not a finite number", "reason_code": "other", "reason_args": {},
         "first_at": time.time() - 60, "last_at": time.time() - 60},
    ]},
    "excluded_skus": [{"sku": "EXC-7", "product_id": 0, "since": time.time() - 3600}],
    "excluded_count": 1,
}


def control(url: str, command: dict[str, Any]) -> None:
    request = urllib.request.Request(url + "/_control", data=json.dumps(command).encode(), method="POST")  # noqa: S310
    urllib.request.urlopen(request, timeout=10)  # noqa: S310 - http://127.0.0.1 only


def start_receiver(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    schema = PLUGIN.parent / "sidecar" / "keycrm_bridge" / "schema" / "events.schema.json"
    proc = subprocess.Popen(
        [sys.executable, str(PLUGIN / "tests" / "receiver.py"), "--secret", SECRET, "--schema", str(schema)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = f"http://127.0.0.1:{line.split()[1]}"
    control(url, {"resync": True, "unmatched": [
        {"sku": "DEMO-404", "product_id": 0, "reason": "exists in KeyCRM only"},
    ]})
    return proc, url


def wpctl(env_dir: str, *args: str) -> None:
    subprocess.run(["php", str(PLUGIN / "tests" / "lib" / "wpctl.php"), env_dir, *args], check=True)


def screenshot(dt: DevTools, name: str) -> str:
    height = dt.js("Math.max(document.body.scrollHeight, 1200)")
    dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(height), deviceScaleFactor=1, mobile=False)
    shot = dt.call("Page.captureScreenshot", format="png")
    target = ARTIFACTS / name
    target.write_bytes(base64.b64decode(shot["data"]))
    return f"screenshot {target.relative_to(PLUGIN)} ({target.stat().st_size} bytes)"


def check_report_links(dt: DevTools) -> str:
    """The links are shown after the dry run; fetching the CSV one gives an attachment of the plan."""
    dt.wait_for("!document.getElementById('kcb-resync-report').hidden", "report links")
    texts = dt.js("[...document.querySelectorAll('#kcb-resync-report a')].map(a => a.textContent)")
    assert texts == ["Download report (CSV)", "Download report (JSON)"], texts
    label = dt.js("document.querySelector('#kcb-resync-report .kcb-report-label').textContent")
    assert label.startswith("Report of the last dry run, finished "), label
    reply = dt.js(
        "fetch(document.getElementById('kcb-report-csv').href, {credentials: 'same-origin'}).then(async r => ({"
        "status: r.status, type: r.headers.get('content-type'), disposition: r.headers.get('content-disposition'),"
        "body: await r.text()}))"
    )
    assert reply["status"] == 200, reply
    assert reply["type"] == "text/csv; charset=utf-8", reply["type"]
    assert reply["disposition"].startswith('attachment; filename="keycrm-resync-rs-'), reply["disposition"]
    assert reply["disposition"].endswith('.csv"'), reply["disposition"]
    lines = reply["body"].splitlines()
    assert lines[0].startswith("sku,action,problems,") and len(lines) == 4, lines
    assert "Сорочка" in reply["body"], reply["body"]
    json_reply = dt.js(
        "fetch(document.getElementById('kcb-report-json').href, {credentials: 'same-origin'}).then(r => r.json())"
    )
    assert len(json_reply["items"]) == 3, json_reply
    return f"{texts[0]} / {texts[1]} shown; fetched {reply['disposition']} ({len(lines) - 1} rows) and the JSON"


def click_and_download(dt: DevTools, profile: str) -> str:
    """A click on the CSV link saves the file under the sidecar's name and leaves the page where it is."""
    target = Path(profile) / "downloads"
    target.mkdir()
    try:
        dt.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(target))
    except RuntimeError:
        dt.call("Page.setDownloadBehavior", behavior="allow", downloadPath=str(target))
    page = dt.js("location.href")
    dt.js("document.getElementById('kcb-report-csv').click(); true")
    deadline = time.monotonic() + DEADLINE_S
    while True:
        done = [p for p in target.iterdir() if p.suffix == ".csv"]
        if done and done[0].stat().st_size > 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"no download in {target}: {[p.name for p in target.iterdir()]}")
        time.sleep(0.1)
    saved = done[0]
    assert saved.name.startswith("keycrm-resync-rs-"), saved.name
    assert saved.read_text(encoding="utf-8").startswith("sku,action,"), saved.read_text(encoding="utf-8")[:200]
    assert dt.js("location.href") == page, "the page stays put during a download"
    return f"clicking the link downloaded {saved.name} ({saved.stat().st_size} bytes)"


def main() -> int:
    env_dir = os.environ.get("KCB_ENV_DIR", "/tmp/kcb-wp-env")
    env = json.loads(Path(env_dir, "env.json").read_text())
    wp = env["wp_url"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    receiver, receiver_url = start_receiver(env)
    profile = tempfile.mkdtemp(prefix="kcb-chromium-")
    browser, ws_url = start_chromium(profile)
    checks: list[str] = []
    try:
        dt = DevTools(ws_url)
        dt.call("Page.enable")
        dt.call("Runtime.enable")

        dt.login(wp, env["admin_user"], env["admin_pass"])
        checks.append("logged in")

        dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
        assert dt.js("document.querySelector('h1').textContent") == "KeyCRM Bridge"
        menu = dt.js("document.querySelector('#toplevel_page_woocommerce a[href*=\"page=keycrm-bridge\"]') !== null")
        assert menu, "the page is in the WooCommerce menu"
        checks.append("page opened from the WooCommerce menu")

        dt.connect_sidecar(wp, receiver_url, SECRET)
        checks.append("settings saved through the form")

        dt.js("document.getElementById('kcb-test-connection').click(); true")
        dt.wait_for(
            "document.getElementById('kcb-test-result').className.match(/kcb-(ok|error)/)",
            "connection test result",
        )
        result = dt.js("document.getElementById('kcb-test-result').textContent")
        assert dt.js("document.getElementById('kcb-test-result').classList.contains('kcb-ok')"), result
        assert "Connected" in result, result
        checks.append(f"connection test: {result}")

        assert dt.js("document.getElementById('kcb-resync-dry-run').checked"), "dry run is the default"
        # Every text the status line shows while the job runs, not only the last one.
        dt.js(
            "window.kcbSeen = []; (function (el) { new MutationObserver(function () { kcbSeen.push(el.textContent); })"
            ".observe(el, {childList: true, characterData: true, subtree: true}); })"
            "(document.getElementById('kcb-resync-status')); true"
        )
        dt.js("document.getElementById('kcb-resync-start').click(); true")
        dt.wait_for("document.getElementById('kcb-resync-status').dataset.finished === '1'", "resync to finish")
        progress = dt.js("document.getElementById('kcb-resync-progress').value")
        status = dt.js("document.getElementById('kcb-resync-status').textContent")
        seen = dt.js("kcbSeen")
        assert progress == 100, progress
        assert dt.js("document.getElementById('kcb-resync-status').classList.contains('kcb-ok')"), status
        assert status == "Finished — 120 of 120 items, 0 errors.", status
        running = [text for text in seen if text.startswith("Reading KeyCRM… — ")]
        assert running, f"no progress in words among {seen}"
        assert not [text for text in seen if "planning_" in text or "done" in text.split(" ")], seen
        checks.append(f"Full resync (dry run) followed to {progress}%: {running[0]} / {status}")

        checks.append(check_report_links(dt))
        download = click_and_download(dt, profile)
        checks.append(download)
        checks.append(screenshot(dt, "admin-page.png"))  # the finished bar, its message and the links
        dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
        assert dt.js("!document.getElementById('kcb-resync-report').hidden"), "links kept after a reload"
        checks.append("report links still offered after a reload")

        unmatched = dt.js("(document.querySelector('table.kcb-unmatched') || {textContent: ''}).textContent")
        assert "DEMO-404" in unmatched, unmatched
        checks.append("unmatched SKUs listed")

        # What waits on the owner: the notices, and the items set aside with their buttons.
        control(receiver_url, {"status": WAITING})
        # Notices are drawn before the page's own status call refreshes their cache: the second view has them.
        dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
        dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
        notices = dt.js("[...document.querySelectorAll('.kcb-notice')]"
                        ".map(n => n.className.match(/kcb-notice-(\\w+)/)[1])")
        assert {"review", "guard", "quarantine"} <= set(notices), notices
        rows = dt.js("[...document.querySelectorAll('table.kcb-quarantine tbody tr')].map(r => r.textContent)")
        assert len(rows) == 2 and "QA-<b>1</b>" in rows[0] and "Retry" in rows[0] and "syncing stock" in rows[0], rows
        assert "retry requested" in rows[1], rows
        excluded = dt.js("document.querySelector('table.kcb-excluded-skus').textContent")
        assert "EXC-7" in excluded, excluded
        checks.append(f"notices {sorted(notices)}, quarantine list ({len(rows)} items) and excluded SKUs shown")
        checks.append(screenshot(dt, "notices-quarantine-en.png"))
        control(receiver_url, {"status": {}})

        assert not dt.exceptions, f"JavaScript errors: {dt.exceptions}"
        checks.append("no JavaScript errors")

        # The same page for an admin whose language is Ukrainian.
        wpctl(env_dir, "locale", env["admin_user"], "uk")
        try:
            dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
            heading = dt.js("document.querySelector('.kcb-admin h2').textContent")
            assert heading == "З'єднання з sidecar", heading
            button = dt.js("document.getElementById('kcb-resync-start').textContent")
            assert button == "Повна пересинхронізація", button
            link = dt.js("document.getElementById('kcb-report-csv').textContent")
            assert link == "Завантажити звіт (CSV)", link
            checks.append(f"Ukrainian page: {heading} / {button} / {link}")
            checks.append(screenshot(dt, "admin-page-uk.png"))
            control(receiver_url, {"status": WAITING})
            dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
            dt.goto(f"{wp}/wp-admin/admin.php?page=keycrm-bridge")
            reason = dt.js("document.querySelector('table.kcb-quarantine tbody tr').textContent")
            assert "KeyCRM відхилив рядок залишку" in reason and "синхронізація залишків" in reason, reason
            checks.append("Ukrainian quarantine list: reasons translated from their codes")
            checks.append(screenshot(dt, "notices-quarantine-uk.png"))
        finally:
            wpctl(env_dir, "locale", env["admin_user"], "")
    except AssertionError as failure:
        for check in checks:
            print(f"ok   {check}")
        print(f"FAIL {failure}")
        print(f"browser: {len(checks)} passed, 1 failed")
        return 1
    finally:
        browser.terminate()
        receiver.terminate()
        browser.wait(timeout=10)
        receiver.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    for check in checks:
        print(f"ok   {check}")
    print(f"browser: {len(checks)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
