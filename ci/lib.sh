# Shared helpers for the ci/ scripts. Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYO3_PYTHON="${PYO3_PYTHON:-/usr/bin/python3}"

log() { printf '\n==> %s\n' "$*" >&2; }

# Installs the Debian packages that are not installed yet.
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    # Debian's nginx package starts a service on port 80 when installed; a
    # policy-rc.d that answers 101 is Debian's way to say "start nothing".
    local policy=/usr/sbin/policy-rc.d created=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod +x "$policy"
        created=1
    fi
    local status=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    [ -z "$created" ] || "${sudo[@]}" rm -f "$policy"
    return "$status"
}

BUILD_PACKAGES=(build-essential pkg-config libclang-dev libpcre2-dev libssl-dev zlib1g-dev python3-dev)

# The virtualenv of the PyPI peers (uvicorn, gunicorn, granian) that
# ci/bench.sh and ci/autobahn.sh compare against; made again when
# bench/requirements.txt changes. Prints its path.
bench_venv() {
    local venv="${RGW_BENCH_VENV:-/tmp/ngx-rust-gateway-bench-venv}"
    if ! cmp -s "$ROOT/bench/requirements.txt" "$venv/.requirements" 2>/dev/null; then
        log "creating the benchmark virtualenv $venv"
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r "$ROOT/bench/requirements.txt" >&2
        cp "$ROOT/bench/requirements.txt" "$venv/.requirements"
        chmod -R a+rX "$venv"
    fi
    printf '%s\n' "$venv"
}
