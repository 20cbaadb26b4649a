#!/usr/bin/env bash
# Builds the Debian package of the module for Debian 12's own nginx, with
# dpkg-buildpackage and debhelper from debian/ (as Debian builds its
# libnginx-mod-* packages; debian/rules compiles with ci/build-debian.sh),
# then checks it with lintian, failing on errors. Leaves
# target/debian/libnginx-mod-http-rust-gateway_<version>_<arch>.deb and
# prints its path on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages "${BUILD_PACKAGES[@]}" nginx-dev nginx debhelper dpkg-dev fakeroot lintian

out="$ROOT/target/debian"
name=libnginx-mod-http-rust-gateway
version="$(dpkg-parsechangelog -S Version)"
arch="$(dpkg-architecture -qDEB_HOST_ARCH)"
deb="$out/${name}_${version}_${arch}.deb"
changes="$out/${name}_${version}_${arch}.changes"
buildinfo="$out/${name}_${version}_${arch}.buildinfo"
rm -f "$deb" "$changes" "$buildinfo"

log "building $(basename "$deb")"
# -b: the binary package only; -tc: debian/rules clean afterwards, so that
# debhelper's files (debian/.debhelper, debian/files, ...) do not stay in
# the tree. The .deb, .changes and .buildinfo go to target/debian, not to
# the parent directory of the project.
RGW_DEB_DESTDIR="$out" dpkg-buildpackage -b -us -uc -tc \
    --changes-file="$changes" --changes-option=-u"$out" \
    --buildinfo-file="$buildinfo" --buildinfo-option=-u"$out" >&2
[ -f "$deb" ] || { echo "dpkg-buildpackage made no $deb" >&2; exit 1; }
dpkg-deb -I "$deb" >&2
dpkg-deb -c "$deb" >&2

log "lintian $(basename "$deb")"
# Errors fail the build; warnings are printed.
lintian --fail-on error --info "$deb" >&2

log "built $deb"
printf '%s\n' "$deb"
