#!/usr/bin/env bash
# Median time the KeyCRM Bridge plugin adds to a stock-changing request on real WordPress (Debian's package,
# MariaDB, nginx + PHP-FPM), sidecar up and down, against the plugin inactive, in one run.
# Last line: {"added_ms_up": .., "added_ms_down": .., ...}. Figures only, no assertions.
# Env: KCB_ENV_DIR (default /tmp/kcb-wp-env), KCB_BENCH_ROUNDS (8), KCB_BENCH_REQUESTS (25 per round).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../wp-plugin/tests/lib/env.sh
source "$ROOT/wp-plugin/tests/lib/env.sh"
trap '[ -n "${KCB_KEEP_ENV:-}" ] || kcb_env_down' EXIT
kcb_env_up >&2
python3 "$ROOT/bench/plugin_overhead.py"
