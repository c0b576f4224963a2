#!/usr/bin/env bash
# The .deb, as a Debian 12 user gets it: scripts/package.sh builds it
# (Release, gcc or clang as this build, warnings as errors), its control
# fields are checked, then in a fresh Debian 12 container
# (local/debian:bookworm, host network for Debian's mirror) deb_inside.sh
# installs it with apt, runs `version`, `man -w`, the completion and `up`
# on the example config (process runtime) until healthy, removes it and
# checks that only data is left.
# Under TSVC_REQUIRE_DOCKER=1 (scripts/test.sh) a missing Docker engine or
# image fails the test; else it is skipped (exit 77). On a shared machine,
# run it as the other docker tests: flock -s /tmp/tsvc-docker.lock ctest ...
. "$(dirname "$0")/../cli/lib.sh"

B=${TSVC_BUILD_DIR:?}
SRC=${TSVC_SOURCE_DIR:?}
IMAGE=local/debian:bookworm

if ! docker info >/dev/null 2>&1 || ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  if [ "${TSVC_REQUIRE_DOCKER:-}" = 1 ]; then
    bad "no Docker engine or no $IMAGE (scripts/docker-up.sh, scripts/images.sh)"; finish; exit 1
  fi
  echo "SKIP: no Docker engine or no $IMAGE"; exit 77
fi

# ---- build --------------------------------------------------------------------
D=$B/deb
if "$SRC/scripts/package.sh" "$D" -DCMAKE_C_COMPILER="${TSVC_CC:-cc}" -DTSVC_WERROR=ON \
     >"$T/package.log" 2>&1; then
  ok "scripts/package.sh: a Release build (warnings as errors) and cpack -G DEB"
else
  bad "scripts/package.sh: $(tail -30 "$T/package.log")"; finish; exit 1
fi
DEB=$(ls "$D"/tanuki-svc_*_*.deb)
f() { dpkg-deb -f "$DEB" "$1"; }
eq "Package" "$(f Package)" "tanuki-svc"
has "Version" "$(f Version)" "$("$BIN" version | sed -nE '1s/^tanuki-svc ([0-9.]+).*/\1/p')"
deps=$(f Depends)
for lib in libc6 libuv1 libcurl4 libssl3 libjansson4 libyaml-0-2 libmicrohttpd12; do
  has "Depends names $lib (dpkg-shlibdeps; libcurl4, libssl3 by cmake/package.cmake)" "$deps" "$lib"
done
eq "Recommends" "$(f Recommends)" "docker.io, postgresql, redis-server"
has "the library's shlibs" "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./shlibs)" "libtsvc 0 tanuki-svc"
contents=$(dpkg-deb -c "$DEB")
for path in ./usr/bin/tanuki-svc ./usr/lib/x86_64-linux-gnu/libtsvc.so.0 ./usr/include/tsvc.h \
            ./usr/lib/x86_64-linux-gnu/pkgconfig/tsvc.pc ./usr/share/man/man1/tanuki-svc.1.gz \
            ./usr/lib/systemd/system/tanuki-svc@.service ./usr/lib/systemd/user/tanuki-svc@.service \
            ./usr/share/bash-completion/completions/tanuki-svc; do
  has "the package holds $path" "$contents" " $path"
done
unit=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/lib/systemd/system/tanuki-svc@.service)
has "the unit runs /usr/bin/tanuki-svc" "$unit" "ExecStart=/usr/bin/tanuki-svc up --config %f"

# ---- in a fresh Debian 12 -------------------------------------------------------
# What apt downloads (the package lists and the .debs of postgresql,
# redis-server, man-db and the libraries) is kept for the next run: in
# $TSVC_APT_CACHE, else /var/cache/tanuki-svc-test/apt as root (outside the
# tree, so that a clean clone on this machine finds it too), else in the
# build tree. The container is fresh all the same: `apt-get update` runs
# and apt checks every cached file against the lists it fetched.
cache=${TSVC_APT_CACHE:-}
if [ -z "$cache" ]; then
  if [ "$(id -u)" = 0 ]; then cache=/var/cache/tanuki-svc-test/apt; else cache=$B/deb-apt-cache; fi
fi
mkdir -p "$cache/archives/partial" "$cache/lists/partial"
name=tsvc-deb-$$
EXTRA_CLEANUP="docker rm -f $name >/dev/null 2>&1"
docker run --rm --name "$name" --network host \
  -e PG_PORT="$(free_port)" -e REDIS_PORT="$(free_port)" -e API_PORT="$(free_port)" \
  -v "$D:/pkg:ro" -v "$SRC/tests/package/deb_inside.sh:/test/inside.sh:ro" \
  -v "$cache/archives:/var/cache/apt/archives" \
  -v "$cache/lists:/var/lib/apt/lists" \
  "$IMAGE" bash /test/inside.sh >"$T/inside.log" 2>&1
rc=$?
cat "$T/inside.log"
inner=$(grep -cE '^(ok  |FAIL)' "$T/inside.log")
CHECKS=$((CHECKS + inner))
FAILS=$((FAILS + $(grep -c '^FAIL' "$T/inside.log")))
if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$T/inside.log"; then
  bad "the container exited $rc"
fi
finish
