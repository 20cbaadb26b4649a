#!/usr/bin/env bash
# Builds nginx (the source the nginx-src crate carries) and the module
# against it, and leaves:
#   target/nginx/sbin/nginx
#   target/nginx/modules/ngx_http_rust_gateway_module.so
# Installs the Debian build packages it needs when they are missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages "${BUILD_PACKAGES[@]}"

log "building nginx and the module (release)"
# The JSON messages say where nginx-sys built nginx (its OUT_DIR).
messages="$ROOT/target/build-messages.json"
mkdir -p "$ROOT/target"
cargo build --release --message-format=json-render-diagnostics >"$messages"
nginx_bin="$(/usr/bin/python3 - "$messages" <<'PY'
import json, sys
out = None
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "build-script-executed" and msg["package_id"].split("#")[-1].startswith("nginx-sys@"):
        out = msg["out_dir"]
print(f"{out}/objs/nginx" if out else "")
PY
)"
[ -x "$nginx_bin" ] || { echo "cannot find the nginx binary nginx-sys built" >&2; exit 1; }

install -D -m 0755 "$nginx_bin" "$ROOT/target/nginx/sbin/nginx"
install -D -m 0644 "$ROOT/target/release/libngx_http_rust_gateway_module.so" \
    "$ROOT/target/nginx/modules/ngx_http_rust_gateway_module.so"
log "built $("$ROOT/target/nginx/sbin/nginx" -v 2>&1) and target/nginx/modules/ngx_http_rust_gateway_module.so"
