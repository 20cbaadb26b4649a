#!/usr/bin/env bash
# Benchmarks ngx-rust-gateway side by side with the servers it replaces, on
# this machine, in one run:
#   nginx return 200 (the ceiling), nginx -> uWSGI, nginx -> gunicorn,
#   granian, Apache mod_wsgi, nginx -> fcgiwrap, rust_wsgi, rust_pool and
#   rust_cgi; for ASGI, nginx -> uvicorn, nginx -> granian and rust_asgi;
#   for PHP, nginx -> php-fpm (its own master, started and stopped by
#   bench/run.py, with its own config and socket: Debian's php-fpm service,
#   started or not, plays no part) and php-cgi in a rust_pool.
# Installs the peers (Debian and PyPI) when missing, builds the module, and
# prints the tables; they are also written to bench/results/latest.md and
# latest.json (--name NAME: NAME.md and NAME.json). Options go to
# bench/run.py (see `bench/run.py --help`), e.g.
#   ci/bench.sh --rounds 3 --workloads hello --conns 32
#   ci/bench.sh --workloads php-hello,php-64k --name php-2026-12-07
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages curl wrk python3-venv uwsgi uwsgi-plugin-python3 apache2 libapache2-mod-wsgi-py3 fcgiwrap \
    php-cgi php-fpm
ci/build.sh
# The WebSocket echo client (wrk speaks no WebSocket).
cargo build --quiet --release --manifest-path bench/wsbench/Cargo.toml

venv="$(bench_venv)"

exec /usr/bin/python3 bench/run.py --venv "$venv" "$@"
