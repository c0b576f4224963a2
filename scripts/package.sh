#!/usr/bin/env bash
# Build the Debian package tanuki-svc_<version>_<arch>.deb: a Release build
# for the prefix /usr (Debian's multiarch library directory), then
# `cpack -G DEB` (cmake/package.cmake). Prints the .deb's path.
#   scripts/package.sh [BUILD_DIR [CMAKE_ARGS...]]    (default build/deb)
# Needs what scripts/deps.sh installs (dpkg-shlibdeps comes with dpkg-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in file:file dpkg-shlibdeps:dpkg-dev cmake:cmake cpack:cmake; do
  command -v "${tool%%:*}" >/dev/null ||
    { echo "package.sh: ${tool%%:*} is missing (apt-get install ${tool#*:}, or scripts/deps.sh)" >&2; exit 1; }
done
dir=${1:-build/deb}
[ $# -gt 0 ] && shift
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DTSVC_TESTS=OFF -DTSVC_BENCH=OFF "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)" 2>&1 | grep -vE '^\[ *[0-9]+%\]' || true
test "${PIPESTATUS[0]}" -eq 0
rm -f "$dir"/tanuki-svc_*.deb
(cd "$dir" && cpack -G DEB >cpack.log 2>&1) || { cat "$dir/cpack.log" >&2; exit 1; }
ls "$dir"/tanuki-svc_*.deb
