#!/usr/bin/env bash
# Builds everything, then runs nginx in the foreground with the example
# configuration from nginx-conf/, serving the example WSGI app on
# http://127.0.0.1:8080/. Stop it with Ctrl-C.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

# php-cgi for the example PHP pool (nginx-conf/php/).
ensure_packages php-cgi
ci/build.sh
mkdir -p target/run

globals="daemon off;"
# Run as root, nginx would switch its workers to "nobody", who may not be
# able to read the checkout; this development server keeps your user.
if [ "$(id -u)" -eq 0 ]; then
    globals="$globals user root root;"
fi

log "serving http://127.0.0.1:8080/ (Ctrl-C stops)"
exec target/nginx/sbin/nginx -p "$ROOT/" -c nginx-conf/nginx.conf -g "$globals"
