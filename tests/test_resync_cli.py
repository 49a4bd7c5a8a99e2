"""S12 from the CLI: `keycrm-bridge resync` runs the job itself when no worker runs, follows the
worker's when one does, draws a progress bar and ends with a summary and the report's path."""

import csv
import subprocess
import sys

import pytest

from bridge import wait_until
from resync_stack import ResyncStack, S12Catalogue


@pytest.fixture
def stack(tmp_path):
    s = ResyncStack(tmp_path, "keycrm")
    yield s
    s.stop()


def cli(stack, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "keycrm_bridge.cli", "resync", *args], env=stack.env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_s12_from_the_cli(stack, tmp_path):
    cat = S12Catalogue()
    stack.start(cat.keycrm_offers(), cat.woo_products(), worker=False)
    refused = cli(stack)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert stack.call("GET", "/v1/resync/latest").status_code == 404, "nothing started without --yes"

    dry = cli(stack, "--dry-run", "--report-dir", str(tmp_path / "reports"))
    assert dry.returncode == 0, dry.stderr
    assert "no worker is running: running the resync in this process" in dry.stderr
    bars = [line for line in dry.stderr.splitlines() if line.startswith("comparing ")]
    assert bars and bars[-1].startswith("comparing 100% done"), bars[-3:]
    assert any("reading KeyCRM" in b for b in bars)
    shares = [int(b.split()[1].rstrip("%")) for b in bars]
    assert shares == sorted(shares), "the percentage never runs backwards"
    assert f"the same on both sides: {len(cat.matched) - len(cat.drifted)}" in dry.stdout and "in agreement" not in dry.stdout
    assert "actions: update_woocommerce 300" in dry.stdout
    assert "only_in_woocommerce 10" in dry.stdout and "only_in_keycrm 10" in dry.stdout
    assert "duplicate_in_woocommerce 3" in dry.stdout and "duplicate_in_keycrm 2" in dry.stdout
    report = next(line.split("report: ")[1] for line in dry.stdout.splitlines() if "report: " in line
                  and line.endswith(".csv"))
    with open(report, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["sku"] for r in rows if r["action"] == "update_woocommerce"} == set(cat.drifted)
    assert stack.woo_stock_writes() == {}

    stack.start_worker()
    wait_until(lambda: stack.call("GET", "/v1/status").json()["orders_checked_at"], what="the worker's first round")
    applied = cli(stack, "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "no worker is running" not in applied.stderr, "the running worker did the job"
    assert "writes: woocommerce_done 300" in applied.stdout
    assert applied.stdout.index("comparison (dry run)") < applied.stdout.index("applied"), \
        "the comparison is shown before anything is applied"
    assert all(stack.woo_stock(s) == cat.sellable[s] for s in cat.drifted[::10])
    again = cli(stack, "--dry-run")
    assert again.returncode == 0 and "actions: none needed" in again.stdout
