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
