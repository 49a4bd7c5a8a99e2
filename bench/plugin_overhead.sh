#!/usr/bin/env bash
# Median time the KeyCRM Bridge plugin adds to a stock-changing request on real WordPress (Debian's package,
# MariaDB), behind nginx + PHP-FPM and behind Apache with mod_php, sidecar up, down and hanging (accepts,
# never answers), against the plugin inactive, in one run.
# Last line: {"added_ms_up": .., "added_ms_down": .., "added_ms_hang_fpm": .., "added_ms_hang_modphp": .., ...,
# "real_checkout_added_ms_up": .., "real_checkout_added_ms_up_se": .., ...}: the real-shop keys come from
# bench/plugin_overhead_realshop.py (its own env: KCB_BENCH_REAL_*).
# Figures only, no assertions. --quick: fewer rounds in both (a smoke run; its figures are not for reports).
# Env: KCB_ENV_DIR (default /tmp/kcb-wp-env), KCB_BENCH_ROUNDS (8), KCB_BENCH_REQUESTS (25 per round).
set -euo pipefail
if [ "${1:-}" = "--quick" ]; then
    export KCB_BENCH_QUICK=1 KCB_BENCH_ROUNDS="${KCB_BENCH_ROUNDS:-2}"
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../wp-plugin/tests/lib/env.sh
source "$ROOT/wp-plugin/tests/lib/env.sh"
trap '[ -n "${KCB_KEEP_ENV:-}" ] || kcb_env_down' EXIT
kcb_env_up >&2
kcb_apache_up >&2
stand_in="$(python3 "$ROOT/bench/plugin_overhead.py")"
printf '%s\n' "$stand_in" | sed '$d'
# The same on the real shop (WordPress 7.0 + WooCommerce 11.0, the real-shop suite's rig) when its sources
# are on this machine (docs/development.md); its keys join the last line.
real="$("$ROOT/.venv/bin/python" "$ROOT/bench/plugin_overhead_realshop.py" | tail -1)"
python3 -c 'import json, sys; a = json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' \
    "$(printf '%s\n' "$stand_in" | tail -1)" "$real"
