#!/usr/bin/env bash
# Every check of the WordPress plugin, in one command (called by .ci/run and `make test`):
#   php -l on every PHP file, phpcs, translation completeness, the distributable zip, then a real WordPress
#   (Debian's `wordpress` package) on real MariaDB behind nginx + PHP-FPM with the plugin installed from the
#   zip, PHPUnit 9 against it, a scan of the PHP logs for plugin warnings, and the headless-Chromium admin test.
# Needs the Debian packages in .ci/apt-packages.txt and python3 with jsonschema. Exits non-zero on any failure.
# KCB_ENV_DIR (default /tmp/kcb-wp-env) holds MariaDB's datadir, the WordPress copy and the logs;
# KCB_KEEP_ENV=1 leaves the servers running afterwards (for debugging or bench/plugin_overhead.sh).
set -uo pipefail

PLUGIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$PLUGIN_DIR" || exit 2
# shellcheck source=lib/env.sh
source tests/lib/env.sh

passed=0
failed=0
failures=()
started=$SECONDS

step() { # step NAME CMD...: run one check, time it, count it
    local name="$1" t0=$SECONDS
    shift
    printf '\n=== %s\n' "$name"
    if "$@"; then
        passed=$((passed + 1))
        printf -- '--- ok: %s (%ds)\n' "$name" $((SECONDS - t0))
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf -- '--- FAILED: %s (%ds)\n' "$name" $((SECONDS - t0))
    fi
}

check_tools() {
    local missing=0 tool
    for tool in php phpunit phpcs mariadbd mariadb-install-db nginx php-fpm8.2 msgfmt msgcmp xgettext zip unzip curl python3; do
        command -v "$tool" >/dev/null || { echo "missing: $tool (see .ci/apt-packages.txt)"; missing=1; }
    done
    command -v chromium >/dev/null || { echo "missing: chromium"; missing=1; }
    [ -d /usr/share/wordpress ] || { echo "missing: Debian package wordpress"; missing=1; }
    python3 -c 'import jsonschema' 2>/dev/null || { echo "missing: python3 module jsonschema"; missing=1; }
    return $missing
}

php_lint() {
    local file bad=0
    while IFS= read -r -d '' file; do
        php -l "$file" >/dev/null || bad=1
    done < <(find . -name '*.php' -not -path './build/*' -not -path './dist/*' -print0)
    return $bad
}

phpcs_check() { phpcs -q --standard=phpcs.xml.dist --no-colors; }

translations() {
    local tmp stats
    tmp="$(mktemp -d)"
    # Every string in the sources (not only the committed .pot) must have a Ukrainian translation.
    xgettext --language=PHP --from-code=UTF-8 --keyword=__:1 --keyword=_e:1 --keyword=esc_html__:1 \
        --keyword=esc_html_e:1 --keyword=esc_attr__:1 --keyword=esc_attr_e:1 --keyword=_x:1,2c --keyword=_n:1,2 \
        --output="$tmp/current.pot" $(find src -name '*.php') keycrm-bridge.php uninstall.php || return 1
    msgcmp languages/keycrm-bridge-uk.po "$tmp/current.pot" || { echo "uk.po lacks strings: run make pot, msgmerge, translate"; return 1; }
    stats="$(msgfmt --check --statistics -o "$tmp/uk.mo" languages/keycrm-bridge-uk.po 2>&1)" || { echo "$stats"; return 1; }
    echo "uk: $stats"
    case "$stats" in *untranslated* | *fuzzy*) return 1 ;; esac
    cmp -s "$tmp/uk.mo" languages/keycrm-bridge-uk.mo || { echo "languages/keycrm-bridge-uk.mo is stale: run make mo"; return 1; }
    rm -rf "$tmp"
}

dist_zip() {
    make -s dist >/dev/null || return 1
    local listing
    # Listed once into a variable: `unzip | grep -q` under pipefail fails at random when grep
    # stops reading early and unzip gets SIGPIPE.
    listing="$(unzip -l dist/keycrm-bridge.zip)" || return 1
    grep -q ' keycrm-bridge/keycrm-bridge.php$' <<<"$listing" || return 1
    grep -q ' keycrm-bridge/languages/keycrm-bridge-uk.mo$' <<<"$listing" || return 1
    ! grep -q 'keycrm-bridge/tests/' <<<"$listing" || return 1
    echo "dist/keycrm-bridge.zip: $(stat -c %s dist/keycrm-bridge.zip) bytes"
}

wordpress_env() { kcb_env_up; }

phpunit_suite() { (cd tests && phpunit -c phpunit.xml.dist --do-not-cache-result); }

php_logs_clean() {
    # WordPress 6.1 itself emits PHP 8.2 deprecations; anything naming the plugin is ours and fails the run.
    local logs=("$KCB_ENV_DIR/wp-debug.log" "$KCB_ENV_DIR/fpm/php-error.log" "$KCB_ENV_DIR/fpm/error.log")
    if grep -h -E 'keycrm-bridge/(src|keycrm-bridge\.php|uninstall\.php)' "${logs[@]}" 2>/dev/null | grep -E 'PHP (Warning|Notice|Fatal|Deprecated|Parse)|Uncaught'; then
        return 1
    fi
    if grep -h -E 'PHP Fatal error|Uncaught' "${logs[@]}" 2>/dev/null; then
        return 1
    fi
    echo "no PHP warnings, notices or fatal errors from the plugin"
}

# shellcheck source=lib/multisite.sh
multisite_uninstall() { source tests/lib/multisite.sh && kcb_multisite_uninstall; }

browser_test() { python3 tests/browser/admin_page_test.py; }

cleanup() { [ -n "${KCB_KEEP_ENV:-}" ] || kcb_env_down; }
trap cleanup EXIT

step "tools present" check_tools || true
step "php -l (every PHP file)" php_lint
step "phpcs (PSR-12 + safety sniffs, phpcs.xml.dist)" phpcs_check
if [ "${1:-}" = "--lint" ]; then # `make lint`: the static checks only
    echo "wp-plugin lint: $passed passed, $failed failed"
    trap - EXIT
    [ "$failed" -eq 0 ]
    exit
fi
step "Ukrainian translation complete" translations
step "build dist/keycrm-bridge.zip" dist_zip
step "WordPress + MariaDB + nginx/PHP-FPM up" wordpress_env
if [[ " ${failures[*]-} " == *"WordPress"* ]]; then
    echo "environment failed; skipping PHPUnit and browser"
else
    step "PHPUnit (WordPress, MariaDB, WooCommerce stand-in, receiver)" phpunit_suite
    step "uninstall on a multisite network (2 sites)" multisite_uninstall
    step "PHP logs free of plugin warnings" php_logs_clean
    step "headless Chromium admin test" browser_test
fi

printf '\n=== wp-plugin checks finished in %ds\n' $((SECONDS - started))
for name in "${failures[@]}"; do echo "FAILED: $name"; done
echo "wp-plugin: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
