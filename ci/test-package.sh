#!/usr/bin/env bash
# Tests the Debian package on Debian 12's own nginx, as an operator would
# use it:
#
#  1. installs it with dpkg -i (nginx first; a policy-rc.d so that no
#     service starts) and checks its files, its Depends on nginx's ABI and
#     the /etc/nginx/modules-enabled link;
#  2. starts /usr/sbin/nginx (master and workers, its own prefix in a
#     temporary directory, a free port) with a config that loads the module
#     through `include /etc/nginx/modules-enabled/*.conf;` and serves a WSGI
#     app embedded (rust_wsgi), the same app from a Python pool (rust_pool,
#     rust_wsgi ... pool=), a CGI program (rust_cgi) and PHP from a php-cgi
#     pool (rust_fastcgi_pass, with the packaged example params files);
#     fetches each with curl and checks the bodies and which process
#     answered; stops nginx and checks that none of its processes is left;
#  3. removes the package (dpkg -r) and checks that none of the files
#     `dpkg -L` listed is left and that the modules-enabled link is gone,
#     installs it again (the link comes back, as Debian's module packages
#     do it), removes it, and purges it (dpkg -P).
#
# Usage: ci/test-package.sh [path/to/libnginx-mod-http-rust-gateway_*.deb]
# Without an argument it builds the package with ci/build-deb.sh.
# Needs root (or sudo) for dpkg. Exits non-zero if any check fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

PKG=libnginx-mod-http-rust-gateway
SO=/usr/lib/nginx/modules/ngx_http_rust_gateway_module.so
SNIPPET=/usr/share/nginx/modules-available/mod-http-rust-gateway.conf
ENABLED=/etc/nginx/modules-enabled/50-mod-http-rust-gateway.conf
DOC=/usr/share/doc/$PKG
NGINX=/usr/sbin/nginx

failures=0
ok() { printf 'ok: %s\n' "$*"; }
not_ok() { printf 'FAILED: %s\n' "$*" >&2; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: runs COMMAND, counts a failure if it fails.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# A failure after which the rest makes no sense: the EXIT trap cleans up.
die() {
    not_ok "$*"
    exit 1
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Runs a dpkg command with a policy-rc.d that answers 101 ("start
# nothing"), so that installing or removing never starts Debian's nginx
# service.
dpkg_quietly() {
    local policy=/usr/sbin/policy-rc.d created="" status=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod +x "$policy"
        created=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive dpkg "$@" >"$tmp/dpkg.log" 2>&1 || status=$?
    [ -z "$created" ] || as_root rm -f "$policy"
    [ "$status" -eq 0 ] || cat "$tmp/dpkg.log" >&2
    return "$status"
}

pkg_status() { dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null || true; }

# What listens on port 80, and whether the service's nginx runs: before and
# after, to leave it as it was found.
port80() { ss -Hltn 'sport = :80' 2>/dev/null | sort || true; }
service_nginx_pid() {
    local pid
    pid=$(cat /run/nginx.pid 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
    return 0
}

# ---- processes of the test's nginx ------------------------------------------

# "pid starttime" of a live process, to tell it from a later one with the
# same pid.
identity() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- "$1" $stat
    printf '%s %s\n' "$1" "${21}"
}
cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }
# The process tree under $1 (itself included), as "pid starttime" lines.
tree_of() {
    local all=("$1") i=0 pid child ppid
    local map
    map=$(ps -e -o pid=,ppid=)
    while [ "$i" -lt "${#all[@]}" ]; do
        while read -r child ppid; do
            [ "$ppid" = "${all[$i]}" ] && all+=("$child")
        done <<<"$map"
        i=$((i + 1))
    done
    for pid in "${all[@]}"; do identity "$pid"; done
}
# Those of "pid starttime" lines on stdin that still run.
still_alive() {
    local pid start
    while read -r pid start; do
        [ "$(identity "$pid")" = "$pid $start" ] && printf '%s\n' "$pid"
    done
    return 0
}
children_named() {
    local parent=$1 name=$2 pid args
    while read -r pid args; do
        [[ "$args" == "$name"* ]] && printf '%s\n' "$pid"
    done < <(ps --ppid "$parent" -o pid=,args=)
    return 0
}

master=""
processes=""    # "pid starttime" lines of the test nginx's tree
# Stops the test's nginx, gracefully, then any of its processes left.
stop_test_nginx() {
    [ -n "$master" ] || return 0
    [ -n "$processes" ] || processes=$(tree_of "$master")
    kill -QUIT "$master" 2>/dev/null || true
    local i left
    for i in $(seq 600); do
        left=$(printf '%s\n' "$processes" | still_alive)
        [ -z "$left" ] && break
        sleep 0.1
    done
    master=""
    if [ -n "$left" ]; then
        not_ok "nginx stopped within 60 s of SIGQUIT, leaving nothing behind (left: $left)"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
        return 1
    fi
}

# ---- cleaning up, whatever happens ------------------------------------------

tmp=$(mktemp -d /tmp/rgw-package-test.XXXXXX)
chmod 0755 "$tmp"
installed_here=""
cleanup() {
    local status=$?
    stop_test_nginx || status=1
    if [ -n "$installed_here" ] && [ -n "$(pkg_status)" ] && [ "$(pkg_status)" != "unknown ok not-installed" ]; then
        echo "cleaning up: purging $PKG" >&2
        dpkg_quietly -P "$PKG" || status=1
    fi
    if [ "$status" -ne 0 ] && [ -f "$tmp/logs/error.log" ]; then
        echo "--- the test nginx's error.log (last 40 lines):" >&2
        tail -n 40 "$tmp/logs/error.log" >&2
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the package -------------------------------------------------------------

ensure_packages nginx curl php-cgi iproute2 procps
deb=${1:-}
if [ -z "$deb" ]; then
    deb=$(ci/build-deb.sh | tail -n 1)
fi
[ -f "$deb" ] || die "the package $deb exists"
[ "$(dpkg-deb -f "$deb" Package)" = "$PKG" ] || die "$deb is the package $PKG"
case "$(pkg_status)" in
    "" | "unknown ok not-installed") ;;
    *) die "$PKG is not installed already (it is: $(pkg_status)); remove it with dpkg -P first" ;;
esac

port80_before=$(port80)
service_before=$(service_nginx_pid)

# The directories of the package that exist before it is installed: they
# may stay after it is removed, the others may not.
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./\(.*[^/]\)/$|/\1|p' >"$tmp/package-dirs"
: >"$tmp/dirs-before"
while read -r dir; do
    [ -d "$dir" ] && printf '%s\n' "$dir" >>"$tmp/dirs-before"
done <"$tmp/package-dirs"

log "installing $(basename "$deb")"
installed_here=1
dpkg_quietly -i "$deb" || die "dpkg -i $deb"
check "dpkg says $PKG is installed" test "$(pkg_status)" = "install ok installed"
dpkg -L "$PKG" >"$tmp/files"

check "the module is in /usr/lib/nginx/modules" test -f "$SO"
check "the module finds its shared libraries (libpython3.11, ...)" bash -c "! ldd '$SO' | grep -q 'not found'"
check "the modules-available snippet loads it" grep -qxF "load_module $SO;" "$SNIPPET"
check "modules-enabled links the snippet" test -L "$ENABLED" -a "$(readlink "$ENABLED" 2>/dev/null)" = "$SNIPPET"

abi=$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*' || true)
depends=$(dpkg-query -W -f='${Depends}' "$PKG")
echo "Depends: $depends"
check "nginx provides an ABI ($abi)" test -n "$abi"
check "Depends names nginx's ABI $abi, so apt refuses another nginx" grep -qE "(^|, )$abi(,|$)" <<<"$depends"
check "Depends names libpython3.11" grep -qE "(^|, )libpython3\.11( |,|$)" <<<"$depends"

check "copyright in $DOC" test -f "$DOC/copyright"
check "the changelog in $DOC" bash -c "ls '$DOC'/changelog*.gz >/dev/null 2>&1"
for doc in README.md docs/*.md; do
    name=$(basename "$doc")
    check "$name in $DOC" bash -c "test -f '$DOC/$name' || test -f '$DOC/$name.gz'"
done
while read -r example; do
    rel=${example#nginx-conf/}
    check "the example $rel in $DOC/examples, as in the tree" cmp -s "$example" "$DOC/examples/$rel"
done < <(git ls-files nginx-conf)
check "the example CGI program stays executable" test -x "$DOC/examples/cgi-bin/hello.sh"

# The distribution's own nginx.conf loads it as the service would.
check "nginx -t of /etc/nginx/nginx.conf passes with the module enabled" "$NGINX" -t -q

# ---- nginx serving through the module ----------------------------------------

mkdir -p "$tmp"/{conf,logs,tmp,apps,cgi-bin,php}
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The params files beside nginx.conf, copied from the package's examples,
# as an operator would.
cp "$DOC/examples/rust_fastcgi.conf" "$DOC/examples/rust_fastcgi_params" "$tmp/conf/"
cat >"$tmp/apps/hello.py" <<'EOF'
import os


def application(environ, start_response):
    body = "wsgi script=%s path=%s pid=%d\n" % (environ["SCRIPT_NAME"], environ["PATH_INFO"], os.getpid())
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
EOF
cat >"$tmp/cgi-bin/hello.sh" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\n\n'
printf 'cgi %s %s %s %s\n' "$REQUEST_METHOD" "$SCRIPT_NAME" "$PATH_INFO" "$QUERY_STRING"
cat
EOF
chmod 0755 "$tmp/cgi-bin/hello.sh"
cat >"$tmp/php/index.php" <<'EOF'
<?php
header('Content-Type: text/plain');
echo "php ", $_SERVER['SCRIPT_NAME'], " x=", $_GET['x'] ?? '', " pid=", getmypid(), "\n";
EOF
chmod -R a+rX "$tmp"
cat >"$tmp/conf/nginx.conf" <<EOF
# Loads the module as an operator's nginx.conf does.
include /etc/nginx/modules-enabled/*.conf;

worker_processes 2;
error_log $tmp/logs/error.log info;
pid $tmp/logs/nginx.pid;

events {
    worker_connections 256;
}

http {
    access_log $tmp/logs/access.log;
    client_body_temp_path $tmp/tmp/client_body;
    proxy_temp_path $tmp/tmp/proxy;
    fastcgi_temp_path $tmp/tmp/fastcgi;
    uwsgi_temp_path $tmp/tmp/uwsgi;
    scgi_temp_path $tmp/tmp/scgi;

    # A request waits for a pool process that is still starting: on a busy
    # machine that may take a while.
    rust_pool py processes=1 threads=2 queue_timeout=120s;
    rust_pool php program=/usr/bin/php-cgi processes=1 queue_timeout=120s env=PHP_FCGI_MAX_REQUESTS=0;

    server {
        listen 127.0.0.1:$port;

        location /wsgi/ {
            rust_wsgi $tmp/apps/hello.py;
        }
        location /pool/ {
            rust_wsgi $tmp/apps/hello.py pool=py;
        }
        location /cgi-bin/ {
            root $tmp;
            rust_cgi;
        }
        location ~ \.php\$ {
            root $tmp/php;
            try_files \$uri =404;
            include rust_fastcgi.conf;
            rust_fastcgi_pass php;
        }
        location = /pool-status {
            rust_pool_status;
        }
        location = /metrics {
            rust_status prometheus;
        }
    }
}
EOF

log "starting $("$NGINX" -v 2>&1) on 127.0.0.1:$port, prefix $tmp"
check "nginx -t of the test config passes" "$NGINX" -t -q -p "$tmp/" -e "$tmp/logs/error.log" -c conf/nginx.conf
"$NGINX" -p "$tmp/" -e "$tmp/logs/error.log" -c conf/nginx.conf || die "nginx starts"
for _ in $(seq 600); do
    [ -s "$tmp/logs/nginx.pid" ] && break
    sleep 0.1
done
master=$(cat "$tmp/logs/nginx.pid" 2>/dev/null || true)
if [ -z "$master" ] || ! kill -0 "$master" 2>/dev/null; then
    die "nginx wrote its pid file within 60 s"
fi
processes=$(tree_of "$master")
status=""
for _ in $(seq 600); do
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/pool-status" || true)
    [ "$status" = 200 ] && break
    sleep 0.1
done
[ "$status" = 200 ] || die "nginx answers on port $port within 60 s"
ok "nginx runs (master $master) and answers"

# get PATH [curl options]: the answer's body in $body; fails unless the
# status is 200.
body=""
get() {
    local path=$1 code
    shift
    code=$(curl -sS --max-time 180 -o "$tmp/body" -w '%{http_code}' "$@" "http://127.0.0.1:$port$path") || code="no answer"
    body=$(cat "$tmp/body" 2>/dev/null || true)
    [ "$code" = 200 ] || { not_ok "GET $path answers 200 (got $code: $body)"; return 1; }
}
is_one_of() { grep -qxF "$1" <<<"$2"; }
not_one_of() { ! is_one_of "$@"; }
is_pool_process() { [[ "$(cmdline_of "$1")" == "nginx: rust pool $2"* ]]; }
runs_php_cgi() { [[ "$(readlink "/proc/$1/exe" 2>/dev/null)" == */php-cgi* ]]; }

workers=$(children_named "$master" "nginx: worker process")
check "nginx runs 2 workers" test "$(wc -w <<<"$workers")" -eq 2

if get /wsgi/a; then
    echo "rust_wsgi: $body"
    if [[ "$body" =~ ^wsgi\ script=/wsgi\ path=/a\ pid=([0-9]+)$ ]]; then
        check "the embedded WSGI app ran in an nginx worker" is_one_of "${BASH_REMATCH[1]}" "$workers"
    else
        not_ok "rust_wsgi answers 'wsgi script=/wsgi path=/a pid=N' (got '$body')"
    fi
fi

if get /pool/b; then
    echo "rust_wsgi pool=py: $body"
    if [[ "$body" =~ ^wsgi\ script=/pool\ path=/b\ pid=([0-9]+)$ ]]; then
        pid=${BASH_REMATCH[1]}
        check "the pooled WSGI app ran in a pool process (nginx: rust pool py)" is_pool_process "$pid" py
        check "... not in an nginx worker" not_one_of "$pid" "$workers"
    else
        not_ok "the pool answers 'wsgi script=/pool path=/b pid=N' (got '$body')"
    fi
fi

if get '/cgi-bin/hello.sh/x?y=1' --data-binary 'posted body'; then
    echo "rust_cgi: $body"
    check "rust_cgi ran the CGI program with the RFC 3875 variables and the request body" \
        test "$body" = "cgi POST /cgi-bin/hello.sh /x y=1
posted body"
fi

if get '/index.php?x=1'; then
    echo "rust_fastcgi_pass: $body"
    if [[ "$body" =~ ^php\ /index\.php\ x=1\ pid=([0-9]+)$ ]]; then
        check "PHP ran in the pool's php-cgi" runs_php_cgi "${BASH_REMATCH[1]}"
    else
        not_ok "the php-cgi pool answers 'php /index.php x=1 pid=N' (got '$body')"
    fi
fi

if get /metrics; then
    check "rust_status counts the CGI program it ran" grep -qx 'rust_cgi_spawned_total 1' <<<"$body"
    check "... the embedded WSGI app's request" \
        grep -qE '^rust_app_requests_total\{app="[^"]*/hello\.py",interface="wsgi",pool=""\} 1$' <<<"$body"
    check "... the pooled one's" grep -qE '^rust_app_requests_total\{app="[^"]*/hello\.py",interface="wsgi",pool="py"\} 1$' <<<"$body"
    check "... and PHP's" grep -qE '^rust_app_requests_total\{app="/usr/bin/php-cgi",interface="fastcgi",pool="php"\} 1$' <<<"$body"
fi

log "stopping nginx"
processes=$(tree_of "$master")
echo "the test nginx's processes: $(cut -d' ' -f1 <<<"$processes" | tr '\n' ' ')"
stop_test_nginx && ok "nginx stopped and none of its $(wc -l <<<"$processes") processes is left"
check "no [alert], [crit] or [emerg] in error.log" bash -c "! grep -E '\[(alert|crit|emerg)\]' '$tmp/logs/error.log'"

# ---- removing and purging -----------------------------------------------------

# check_removed: nothing of what `dpkg -L` listed is left, but for
# directories that were there before the install or that another package
# owns.
check_removed() {
    local path left=()
    while read -r path; do
        [ "$path" = /. ] && continue    # dpkg -L lists the root too
        if [ -L "$path" ] || [ -f "$path" ]; then
            left+=("$path")
        elif [ -d "$path" ] && ! grep -qxF "$path" "$tmp/dirs-before" \
            && ! dpkg-query -S "$path" >/dev/null 2>&1; then
            left+=("$path/")
        fi
    done <"$tmp/files"
    check "none of the package's $(wc -l <"$tmp/files") paths is left${left[*]:+ (left: ${left[*]})}" test "${#left[@]}" -eq 0
}

log "dpkg -r $PKG"
dpkg_quietly -r "$PKG" || die "dpkg -r $PKG"
check "dpkg says $PKG is removed" test "$(pkg_status)" = "deinstall ok config-files"
check_removed
check "the modules-enabled link is gone" test ! -e "$ENABLED" -a ! -L "$ENABLED"
# Debian's module packages keep the admin's choice across a removal: the
# link becomes 50-mod-*.conf.removed (which the *.conf include does not
# load) until a reinstall, or a purge, takes it away.
check "the link is kept as $(basename "$ENABLED").removed until purge" test -L "$ENABLED.removed"
check "nginx -t of /etc/nginx/nginx.conf passes without the module" "$NGINX" -t -q

log "dpkg -i again, dpkg -r again"
dpkg_quietly -i "$deb" || die "dpkg -i $deb, after dpkg -r"
check "a reinstall enables the module again" test -L "$ENABLED" -a ! -e "$ENABLED.removed"
dpkg_quietly -r "$PKG" || die "dpkg -r $PKG, after the reinstall"
check_removed

log "dpkg -P $PKG"
dpkg_quietly -P "$PKG" || die "dpkg -P $PKG"
check "dpkg has forgotten $PKG" bash -c "[ -z \"\$(dpkg-query -W -f='\${Status}' $PKG 2>/dev/null | grep -v not-installed)\" ]"
check_removed
check "no modules-enabled link, not even the .removed one" test ! -e "$ENABLED" -a ! -L "$ENABLED" -a ! -L "$ENABLED.removed"
check "no maintainer scripts left in /var/lib/dpkg/info" bash -c "! ls /var/lib/dpkg/info/$PKG.* 2>/dev/null"
installed_here=""

# ---- Debian's nginx service, as it was found ----------------------------------

service_after=$(service_nginx_pid)
if [ -n "$service_after" ] && [ "$service_after" != "$service_before" ]; then
    not_ok "Debian's nginx service did not start (it runs as pid $service_after: stopping it)"
    as_root kill -QUIT "$service_after" || true
else
    ok "Debian's nginx service did not start"
fi
check "what listens on port 80 is as before" test "$(port80)" = "$port80_before"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) of the Debian package FAILED" >&2
    exit 1
fi
log "the Debian package passed"
