#!/usr/bin/env bash
# Configure and build one flavour of tanuki-svc, warnings as errors
# (TSVC_WERROR: the project's own builds stay warning-free; a plain
# `cmake` build, a packager's, only warns).
#   scripts/build.sh [gcc|clang|clang-asan|gcc-asan|clang-tsan|clang-fuzz] [--target T...]
#   -> build/<flavour>; arguments after the flavour go to `cmake --build`
#   (scripts/test.sh builds only the TSan suites' targets).
# clang-tsan: ThreadSanitizer (scripts/test.sh runs the threaded suites).
# clang-fuzz: the libFuzzer targets of fuzz/ (with ASan and UBSan), no tests
# and no benchmarks (clang-asan builds those with clang).
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-gcc}
[ $# -gt 0 ] && shift
case "$flavour" in
  gcc)        cc=gcc;   extra=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  clang)      cc=clang; extra=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  clang-asan) cc=clang; extra=(-DCMAKE_BUILD_TYPE=Debug -DTSVC_SANITIZE=ON) ;;
  gcc-asan)   cc=gcc;   extra=(-DCMAKE_BUILD_TYPE=Debug -DTSVC_SANITIZE=ON) ;;
  clang-tsan) cc=clang; extra=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTSVC_TSAN=ON) ;;
  clang-fuzz) cc=clang; extra=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTSVC_SANITIZE=ON
                               -DTSVC_FUZZ=ON -DTSVC_TESTS=OFF -DTSVC_BENCH=OFF) ;;
  *) echo "build.sh: unknown flavour '$flavour'" >&2; exit 2 ;;
esac
cmake -S . -B "build/$flavour" -DCMAKE_C_COMPILER=$cc -DTSVC_WERROR=ON "${extra[@]}" >/dev/null
cmake --build "build/$flavour" -j"$(nproc)" "$@" 2>&1 | grep -vE '^\[ *[0-9]+%\]' || true
test "${PIPESTATUS[0]}" -eq 0
