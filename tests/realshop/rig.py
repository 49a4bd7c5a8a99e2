"""Where the real shop comes from: the shared rig (real WordPress + WooCommerce on loopback), found,
copied outside the checkout, brought up, and driven (wc/v3, wp-admin, Store API, its WP helper).

Environment: KCB_RIG_SRC (the rig's scripts; default shared/rig beside the checkout or its parent), KCB_RIG_DIR (where
they are copied and run; default /tmp/kcb-rig), MIRROR (bare git mirrors; default /work/.mirror).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# shared/ beside the checkout (CI, /work/main), or beside the folder of worktrees (/work/wt/<name>).
_BESIDE = [ROOT.parent / "shared" / "rig", ROOT.parent.parent / "shared" / "rig"]
RIG_SRC = Path(os.environ.get("KCB_RIG_SRC") or next((p for p in _BESIDE if (p / "up.sh").exists()), _BESIDE[0]))
RIG_DIR = Path(os.environ.get("KCB_RIG_DIR", "/tmp/kcb-rig"))
MIRROR = Path(os.environ.get("MIRROR", "/work/.mirror"))
WP_MIRROR = MIRROR / "johnpbloch+wordpress-core" / "repo"
WC_MIRROR = MIRROR / "bitpoke+stack-example-wordpress" / "repo"
# What the rig's scripts are, as opposed to what they generate beside themselves.
_SCRIPTS = ("up.sh", "down.sh", "reset.sh", "smoke.sh", "rigwp.sh", "seed_products.py", "rig.env", "README.md",
            "lib", "mu-plugins")


def why_not() -> str | None:
    """None when a real shop can be built here, else the reason in one line."""
    if not (RIG_SRC / "up.sh").exists() and not (RIG_DIR / "up.sh").exists():
        return f"no rig scripts at {RIG_SRC} (set KCB_RIG_SRC)"
    for mirror in (WP_MIRROR, WC_MIRROR):
        if not (mirror / "HEAD").exists():
            return f"no WordPress/WooCommerce mirror at {mirror} (set MIRROR)"
    return None


def prepare() -> None:
    """Copy the rig's scripts (not what they built) to RIG_DIR, then run its idempotent up.sh."""
    RIG_DIR.mkdir(parents=True, exist_ok=True)
    if RIG_SRC.resolve() != RIG_DIR.resolve() and (RIG_SRC / "up.sh").exists():
        for name in _SCRIPTS:
            src, dst = RIG_SRC / name, RIG_DIR / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            elif src.exists():
                shutil.copy2(src, dst)
        # The shared copy is read-only; the next run copies over this one.
        subprocess.run(["chmod", "-R", "u+w", *(str(RIG_DIR / n) for n in _SCRIPTS if (RIG_DIR / n).exists())],
                       check=False)
    env = {**os.environ, "MIRROR": str(MIRROR)}
    run(["bash", str(RIG_DIR / "up.sh")], env=env, what="rig up.sh")
    sys.path.insert(0, str(RIG_DIR / "lib"))
    os.environ["RIG_DIR"] = str(RIG_DIR)


def run(args: list[str], env: dict[str, str] | None = None, what: str = "", timeout: float = 900) -> str:
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{what or args[0]} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def wp_eval(php: str, scenario: str | None = None) -> str:
    """PHP run with WordPress loaded, as www-data (the rig's stand-in for WP-CLI)."""
    env = {**os.environ, **({"RIG_SCENARIO": scenario} if scenario else {})}
    return run(["bash", str(RIG_DIR / "rigwp.sh"), "eval", php], env=env, what="rigwp eval").strip()


# Plugins → Delete of an earlier copy of the plugin, so that the zip is installed fresh.
REMOVE_PLUGIN = ("require_once ABSPATH . 'wp-admin/includes/plugin.php'; require_once ABSPATH . 'wp-admin/includes/file.php';"
                 "if (file_exists(WP_PLUGIN_DIR . '/keycrm-bridge')) { deactivate_plugins('keycrm-bridge/keycrm-bridge.php', true);"
                 " delete_plugins(['keycrm-bridge/keycrm-bridge.php']); } echo 'ok';")


def versions() -> str:
    return wp_eval("echo 'WordPress ' . get_bloginfo('version') . ', WooCommerce ' . WC()->version . ', PHP ' . PHP_VERSION;")


def set_order_storage(hpos: bool) -> str:
    """Switch WooCommerce between its order tables (HPOS) and posts storage, as its Features screen does:
    WooCommerce refuses while orders are out of sync, so the orders are synchronised first."""
    value = "yes" if hpos else "no"
    return wp_eval(
        "$sync = wc_get_container()->get(\\Automattic\\WooCommerce\\Internal\\DataStores\\Orders\\DataSynchronizer::class);"
        "while ($sync->get_current_orders_pending_sync_count() > 0) {"
        " $sync->process_batch($sync->get_next_batch_to_process(100)); }"
        f"update_option('woocommerce_custom_orders_table_enabled', '{value}');"
        "wp_cache_flush();"
        "echo \\Automattic\\WooCommerce\\Utilities\\OrderUtil::custom_orders_table_usage_is_enabled() ? 'hpos' : 'posts';"
    )


# The hooks the plugin listens to or that place them (the rig's hook logger records every product/stock/order
# action of a request sent with an X-Rig-Scenario header into logs/hooks.jsonl).
KEY_HOOKS = (
    "woocommerce_product_import_before_process_item", "woocommerce_product_set_stock", "woocommerce_variation_set_stock",
    "woocommerce_new_product", "woocommerce_update_product", "woocommerce_update_product_variation",
    "woocommerce_save_product_variation", "woocommerce_reduce_order_item_stock", "woocommerce_reduce_order_stock",
    "woocommerce_order_status_cancelled", "woocommerce_restore_order_item_stock", "woocommerce_restore_order_stock",
    "woocommerce_restock_refunded_item", "woocommerce_order_refunded", "woocommerce_order_partially_refunded",
    "wp_trash_post", "trashed_post", "woocommerce_trash_product", "before_delete_post", "woocommerce_before_delete_product",
    "woocommerce_delete_product", "deleted_post", "shutdown",
)


def hooks(scenario: str) -> list[str]:
    """The key hooks real WooCommerce fired for requests tagged ``scenario``, in order, repeats collapsed."""
    import json

    out: list[str] = []
    path = RIG_DIR / "logs" / "hooks.jsonl"
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if f'"{scenario}"' not in line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("scenario") == scenario and row.get("hook") in KEY_HOOKS and (not out or out[-1] != row["hook"]):
                out.append(row["hook"])
    return out


def assert_hooks(scenario: str, expected: list[str]) -> str:
    """``expected`` must occur in this order (others may come between): the sequence the plugin relies on."""
    seen = hooks(scenario)
    at = 0
    for hook in seen:
        if at < len(expected) and hook == expected[at]:
            at += 1
    assert at == len(expected), f"real WooCommerce fired {seen} for {scenario}, expected in order {expected}"
    return " → ".join(expected)
