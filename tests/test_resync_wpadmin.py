"""S12 from the wp-admin button, in headless Chromium, against the real sidecar.

A real WordPress (Debian's package, MariaDB, nginx + PHP-FPM, the plugin installed from its zip: the
plugin suite's own environment, wp-plugin/tests/lib/env.sh) is pointed at the real bridge: gunicorn,
the worker, the KeyCRM simulator and the WooCommerce peer holding the S12 catalogue. Chromium logs in,
saves the sidecar URL and secret through the form, presses Full resync (dry run, then apply, then dry
run again) and follows the plugin's progress bar to the end; the sidecar's report and both shops are
checked behind it. Skipped where the WordPress toolchain or Chromium is not installed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from resync_stack import ResyncStack, S12Catalogue, with_action, with_problem

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "wp-plugin"
SECRET = "wpadmin-resync-secret-0123456789abcdef"
TOOLS = ("chromium", "mariadbd", "mariadb-install-db", "nginx", "php-fpm8.2", "php", "zip", "unzip")

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS) or not Path("/usr/share/wordpress").is_dir(),
    reason="needs the WordPress test toolchain (.ci/apt-packages.txt) and chromium")


def env_sh(env_dir: Path, command: str) -> None:
    subprocess.run(["bash", "-c", f"source {PLUGIN}/tests/lib/env.sh && {command}"], check=True, timeout=180,
                   env={**os.environ, "KCB_ENV_DIR": str(env_dir)}, capture_output=True)


@pytest.fixture
def wordpress():
    env_dir = Path(tempfile.mkdtemp(prefix="kcb-wp-resync-"))
    try:
        env_sh(env_dir, "kcb_env_up")
        yield json.loads((env_dir / "env.json").read_text())
    finally:
        env_sh(env_dir, "kcb_env_down")
        shutil.rmtree(env_dir, ignore_errors=True)


@pytest.fixture
def browser():
    sys.path.insert(0, str(PLUGIN / "tests" / "browser"))
    from devtools import DevTools, start_chromium

    profile = tempfile.mkdtemp(prefix="kcb-chromium-")
    proc, ws_url = start_chromium(profile)
    try:
        dt = DevTools(ws_url)
        dt.call("Page.enable")
        dt.call("Runtime.enable")
        yield dt
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def stack(tmp_path):
    s = ResyncStack(tmp_path, "keycrm", BRIDGE_SHARED_SECRET=SECRET)
    yield s
    s.stop()


def press_full_resync(dt, dry_run: bool, timeout: float = 60.0) -> str:
    dt.js(f"document.getElementById('kcb-resync-dry-run').checked = {'true' if dry_run else 'false'};"
          "document.getElementById('kcb-resync-start').click(); true")
    dt.wait_for("document.getElementById('kcb-resync-status').dataset.finished !== '1'", "the job to start")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the plugin polls every second; follow its bar to the end
        if dt.js("document.getElementById('kcb-resync-status').dataset.finished === '1'"):
            break
        time.sleep(0.2)
    status = dt.js("document.getElementById('kcb-resync-status').textContent")
    assert dt.js("document.getElementById('kcb-resync-status').classList.contains('kcb-ok')"), status
    assert dt.js("document.getElementById('kcb-resync-progress').value") == 100, status
    return str(status)


def test_s12_from_the_wp_admin_button(wordpress, browser, stack):
    cat = S12Catalogue()
    stack.start(cat.keycrm_offers(), cat.woo_products())
    dt, wp = browser, wordpress["wp_url"]
    dt.login(wp, wordpress["admin_user"], wordpress["admin_pass"])
    dt.connect_sidecar(wp, stack.web.url, SECRET)

    text = press_full_resync(dt, dry_run=True)
    dry = stack.job("latest")
    assert dry["dry_run"] and dry["phase"] == "done" and f"{dry['done']} of {dry['total']} items, 0 errors" in text
    items = stack.plan(dry["id"])
    assert with_action(items, "update_woocommerce") == set(cat.drifted)
    assert with_problem(items, "only_in_woocommerce") | with_problem(items, "only_in_keycrm") == \
        set(cat.woo_only + cat.kc_only)
    assert with_problem(items, "duplicate_in_woocommerce") | with_problem(items, "duplicate_in_keycrm") == \
        set(cat.duplicated)
    assert stack.woo_stock_writes() == {}, "the dry run changed nothing"

    press_full_resync(dt, dry_run=False)
    applied = stack.job("latest")
    assert not applied["dry_run"] and applied["counts"]["writes"] == {"woocommerce_done": 300}
    assert all(stack.woo_stock(s) == cat.sellable[s] for s in cat.drifted[::20])
    assert max(stack.woo_stock_writes().values()) == 1

    press_full_resync(dt, dry_run=True)
    again = stack.job("latest")
    assert again["id"] != dry["id"] and again["counts"]["actions"]["update_woocommerce"] == 0
    assert not dt.exceptions, f"JavaScript errors: {dt.exceptions}"
