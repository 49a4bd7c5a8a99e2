#!/usr/bin/env bash
# Installs the Debian packages the tests need (WordPress, MariaDB, PHP, PHPUnit, phpcs, Chromium),
# only when one is missing, so a second run on the same machine costs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t pkgs < <(grep -v -E '^\s*(#|$)' .ci/apt-packages.txt)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
