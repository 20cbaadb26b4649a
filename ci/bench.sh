#!/usr/bin/env bash
# Benchmarks ngx-rust-gateway side by side with the servers it replaces, on
# this machine, in one run:
#   nginx return 200 (the ceiling), nginx -> uWSGI, nginx -> gunicorn,
#   granian, Apache mod_wsgi, nginx -> fcgiwrap, rust_wsgi, rust_pool and
#   rust_cgi; for ASGI, nginx -> uvicorn, nginx -> granian and rust_asgi.
# Installs the peers (Debian and PyPI) when missing, builds the module, and
# prints the tables; they are also written to bench/results/latest.md and
# latest.json. Options go to bench/run.py (see `bench/run.py --help`), e.g.
#   ci/bench.sh --rounds 3 --workloads hello --conns 32
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages curl wrk python3-venv uwsgi uwsgi-plugin-python3 apache2 libapache2-mod-wsgi-py3 fcgiwrap
ci/build.sh
# The WebSocket echo client (wrk speaks no WebSocket).
cargo build --quiet --release --manifest-path bench/wsbench/Cargo.toml

venv="${RGW_BENCH_VENV:-/tmp/ngx-rust-gateway-bench-venv}"
if ! cmp -s bench/requirements.txt "$venv/.requirements" 2>/dev/null; then
    log "creating the benchmark virtualenv $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r bench/requirements.txt
    cp bench/requirements.txt "$venv/.requirements"
    chmod -R a+rX "$venv"
fi

exec /usr/bin/python3 bench/run.py --venv "$venv" "$@"
