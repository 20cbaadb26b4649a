#!/usr/bin/env bash
# Runs the Autobahn TestSuite (the fuzzing client, every case) against an
# echo app served by rust_asgi, and prints the per-group summary (also
# written to target/autobahn/summary.md; the HTML reports land in
# target/autobahn/reports/). Exits 1 unless every case is OK, NON-STRICT or
# INFORMATIONAL with its close behaviour OK or INFORMATIONAL.
#
# The suite runs on Python 2.7 only: it is installed from PyPI (pinned in
# ci/autobahn-requirements.txt) into target/autobahn/venv with pyenv's 2.7
# ($AUTOBAHN_PYTHON2 to use another). Options go to ci/autobahn.py, e.g.
#   ci/autobahn.sh --cases '12.*,13.*'
#   ci/autobahn.sh --peers rust_asgi,uvicorn      (side by side with uvicorn)
#   ci/autobahn.sh --location 'rust_asgi_websocket_compression off;'
#   ci/autobahn.sh --pool                         (the app in a rust_pool process)
# The whole run takes about 4 minutes on 2 cores; it is not part of
# ci/test.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ci/build.sh

work="$ROOT/target/autobahn"
venv="$work/venv"
if ! cmp -s ci/autobahn-requirements.txt "$venv/.requirements" 2>/dev/null; then
    python2="${AUTOBAHN_PYTHON2:-$(pyenv root 2>/dev/null)/versions/2.7.18/bin/python}"
    [ -x "$python2" ] || { echo "no Python 2.7 at $python2 (set AUTOBAHN_PYTHON2)" >&2; exit 1; }
    log "installing the Autobahn TestSuite into $venv"
    rm -rf "$venv" "$work/virtualenv"
    # virtualenv for 2.7 goes into its own directory, not into the
    # interpreter's site-packages.
    "$python2" -m pip install --quiet --disable-pip-version-check --target "$work/virtualenv" 'virtualenv<20.22' 2>&1 \
        | grep -v DEPRECATION >&2 || true
    PYTHONPATH="$work/virtualenv" "$python2" -m virtualenv --quiet "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r ci/autobahn-requirements.txt 2>&1 \
        | grep -v DEPRECATION >&2 || true
    "$venv/bin/python" -c 'import autobahntestsuite, wsaccel'
    cp ci/autobahn-requirements.txt "$venv/.requirements"
fi

peer_args=()
if [[ " $* " == *uvicorn* ]]; then
    peer_args=(--venv "$(bench_venv)")
fi
log "running the fuzzing client"
exec /usr/bin/python3 ci/autobahn.py --wstest "$venv/bin/wstest" --work "$work" "${peer_args[@]}" "$@"
