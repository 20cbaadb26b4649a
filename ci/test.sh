#!/usr/bin/env bash
# Builds everything and runs every test: the Rust unit tests, then the
# Test::Nginx-style suite in tests/t against the vendored nginx, then the
# module built for Debian's own nginx 1.22, with the suite run against
# /usr/sbin/nginx.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

# perl for prove; curl, git, man2html and strace for the tests that drive them;
# php-cgi, fcgiwrap and libfcgi-perl, the FastCGI programs of the program
# pool tests; dokuwiki, the PHP application 225-program-pool-dokuwiki.t runs;
# prometheus for its promtool, which checks rust_status's page (500-status.t).
ensure_packages perl curl git man2html strace php-cgi fcgiwrap libfcgi-perl dokuwiki prometheus
ci/build.sh
TEST_NGINX_VENV="$(ci/test-venv.sh)"
export TEST_NGINX_VENV

log "unit tests"
cargo test --release --lib

log "layout: folder imports in one direction, no cycles"
ci/imports.sh --check

log "integration tests, $(target/nginx/sbin/nginx -v 2>&1)"
prove -r tests/t

ci/build-debian.sh
log "integration tests, Debian's $(/usr/sbin/nginx -v 2>&1)"
TEST_NGINX_BINARY=/usr/sbin/nginx \
TEST_NGINX_MODULE="$ROOT/target/debian/modules/ngx_http_rust_gateway_module.so" \
    prove -r tests/t

log "the Debian package"
ci/test-package.sh

log "all tests passed"
