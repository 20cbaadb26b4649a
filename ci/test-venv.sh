#!/usr/bin/env bash
# Creates (or reuses) the virtualenv the framework tests run in, from
# tests/requirements.txt, and prints its path. It lives outside the checkout
# because nginx workers run as an unprivileged user who may not be able to
# read the checkout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages python3-venv
venv="${RGW_TEST_VENV:-/tmp/ngx-rust-gateway-test-venv}"
stamp="$venv/.requirements"
if ! cmp -s tests/requirements.txt "$stamp" 2>/dev/null; then
    log "creating the test virtualenv $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r tests/requirements.txt >&2
    cp tests/requirements.txt "$stamp"
    chmod -R a+rX "$venv"
fi
echo "$venv"
