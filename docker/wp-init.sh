#!/bin/sh
# One-shot setup of the compose stack's WordPress (the `wp-init` service, image wordpress:cli):
# installs WordPress, installs and activates WooCommerce, activates the keycrm-bridge plugin
# (mounted from ./wp-plugin), points it at the sidecar with the shared secret, and gives the
# sidecar a WooCommerce REST key. Every step looks before it acts, so running it again on every
# `docker compose up` is safe and keeps the plugin in step with a changed BRIDGE_SHARED_SECRET.
set -eu

WP_URL="${WP_URL:-http://localhost:8080}"
WP_TITLE="${WP_TITLE:-KeyCRM Bridge demo shop}"
WP_ADMIN_USER="${WP_ADMIN_USER:-admin}"
# The demo's generated wp-admin password (docker/demo-secrets.sh), or one given directly.
if [ -n "${WP_ADMIN_PASSWORD_FILE:-}" ]; then
    WP_ADMIN_PASSWORD="$(cat "$WP_ADMIN_PASSWORD_FILE")"
fi
: "${WP_ADMIN_PASSWORD:?WP_ADMIN_PASSWORD or WP_ADMIN_PASSWORD_FILE must be set}"
WOOCOMMERCE_VERSION="${WOOCOMMERCE_VERSION:?WOOCOMMERCE_VERSION must be set (the version the real-shop suite runs)}"
WP_ADMIN_EMAIL="${WP_ADMIN_EMAIL:-admin@example.com}"
SIDECAR_URL="${SIDECAR_URL:-http://sidecar:8787}"
: "${BRIDGE_SHARED_SECRET:?BRIDGE_SHARED_SECRET must be set}"
: "${WOO_CONSUMER_KEY:?WOO_CONSUMER_KEY must be set}"
: "${WOO_CONSUMER_SECRET:?WOO_CONSUMER_SECRET must be set}"
export WP_ADMIN_USER WOO_CONSUMER_KEY WOO_CONSUMER_SECRET

say() { printf 'wp-init: %s\n' "$*"; }

# The wordpress container copies WordPress into the shared volume on its first start, and
# MariaDB may still be opening: wait for both (bounded), then go.
tries=0
until [ -f /var/www/html/wp-config.php ] && wp db check >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 90 ]; then
        say "WordPress files or the database did not appear within 3 minutes"
        exit 1
    fi
    sleep 2
done

if ! wp core is-installed >/dev/null 2>&1; then
    say "installing WordPress at $WP_URL"
    wp core install --url="$WP_URL" --title="$WP_TITLE" --admin_user="$WP_ADMIN_USER" \
        --admin_password="$WP_ADMIN_PASSWORD" --admin_email="$WP_ADMIN_EMAIL" --skip-email
fi
# The REST API lives under /wp-json/ only with pretty permalinks.
wp rewrite structure '/%postname%/' >/dev/null

if [ "$(wp plugin get woocommerce --field=version 2>/dev/null || true)" != "$WOOCOMMERCE_VERSION" ]; then
    # Pinned, from wordpress.org; a download that fails is tried again (bounded) before giving up.
    tries=0
    until wp plugin install woocommerce --version="$WOOCOMMERCE_VERSION" --force; do
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            say "could not download WooCommerce $WOOCOMMERCE_VERSION after $tries tries"
            exit 1
        fi
        sleep $((tries * 5))
    done
fi
wp plugin activate woocommerce
# A fresh WooCommerce shows a setup wizard and a "coming soon" page; a demo shop wants neither.
wp option update woocommerce_onboarding_profile '{"skipped":true}' --format=json >/dev/null
wp option update woocommerce_coming_soon no >/dev/null

wp plugin activate keycrm-bridge
wp option update kcb_sidecar_url "$SIDECAR_URL" >/dev/null
wp option update kcb_shared_secret "$BRIDGE_SHARED_SECRET" >/dev/null
# The plugin generated a secret on activation and waits to show it once; ours replaces it.
wp option delete kcb_secret_reveal >/dev/null 2>&1 || true

wp eval-file /docker/wp-rest-key.php

say "ready: shop $WP_URL (wp-admin: $WP_ADMIN_USER / $WP_ADMIN_PASSWORD), WooCommerce $WOOCOMMERCE_VERSION, plugin sends to $SIDECAR_URL"
