#!/bin/sh
# The `demo-seed` service (profile demo, image wordpress:cli): fills WooCommerce with the same
# catalogue the KeyCRM simulator generates from `--seed-skus`, then says how to watch the sync.
set -eu

DEMO_SKUS="${DEMO_SKUS:-20}"
DEMO_STOCK="${DEMO_STOCK:-10}"
export DEMO_SKUS DEMO_STOCK

wp eval-file /docker/demo-seed.php

cat <<MSG
demo-seed: the demo is ready.
  Shop:   http://localhost:8080/wp-admin  (user ${WP_ADMIN_USER:-admin}, password in the wp-init log)
          Products SKU-000001 … SKU-$(printf '%06d' "$DEMO_SKUS"), $DEMO_STOCK in stock on both sides.
  KeyCRM: the simulator at http://localhost:8089 (API under /v1, key sim-key). A receiving of 5:
          curl -s -X POST http://localhost:8089/__sim/receive -H 'Content-Type: application/json' \\
               -d '{"items":[{"sku":"SKU-000001","delta":5}]}'
          and SKU-000001's stock in the shop follows. Edit a product's price in the shop and
          KeyCRM follows:  curl -s -X POST http://localhost:8089/__sim/truth -d '{"skus":["SKU-000001"]}' \\
               -H 'Content-Type: application/json'
  Bridge: http://localhost:8787/metrics, and: docker compose exec sidecar keycrm-bridge status
MSG
