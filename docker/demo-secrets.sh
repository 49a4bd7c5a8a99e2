#!/bin/sh
# The `demo-secrets` one-shot (profile demo): makes the demo's database and wp-admin passwords once, into
# the demo-secrets volume that only the demo's containers mount. Readable by the WordPress containers'
# www-data (PHP reads the database password at run time).
set -eu
cd /secrets
for name in db-password wp-admin-password; do
    if [ ! -s "$name" ]; then
        head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$name"
        chmod 0444 "$name"
        echo "demo-secrets: made $name"
    fi
done
