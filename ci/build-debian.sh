#!/usr/bin/env bash
# Builds the module against Debian's own nginx (package nginx-dev: the
# configured nginx 1.22 source in /usr/share/nginx/src), so that
# `load_module` works in /usr/sbin/nginx. Leaves
# target/debian/modules/ngx_http_rust_gateway_module.so.
#
# The same steps build against any configured nginx source tree: set
# NGINX_SOURCE_DIR and NGINX_BUILD_DIR yourself and run the cargo command
# at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages "${BUILD_PACKAGES[@]}" nginx-dev nginx

src="$ROOT/target/debian/nginx-src"
if [ ! -f "$src/objs/ngx_auto_config.h" ]; then
    log "configuring Debian's nginx source in $src"
    rm -rf "$src"
    mkdir -p "$src"
    # configure writes a Makefile into the source tree, so work on a copy.
    cp -a /usr/share/nginx/src/. "$src/"
    (
        cd "$src"
        # shellcheck disable=SC1091
        . ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" --builddir="$src/objs" >"$src/configure.log" 2>&1 \
            || { tail -30 "$src/configure.log"; exit 1; }
    )
fi

log "building the module for $(/usr/sbin/nginx -v 2>&1)"
NGINX_SOURCE_DIR="$src" NGINX_BUILD_DIR="$src/objs" CARGO_TARGET_DIR="$ROOT/target/debian/cargo" \
    cargo build --release --no-default-features --features export-modules
install -D -m 0644 "$ROOT/target/debian/cargo/release/libngx_http_rust_gateway_module.so" \
    "$ROOT/target/debian/modules/ngx_http_rust_gateway_module.so"
log "built target/debian/modules/ngx_http_rust_gateway_module.so"
