#!/usr/bin/env bash
# Line coverage of the code each fuzz target is for, reached by its corpus
# (the seeds and what fuzz/run.sh found). Builds build/clang-fuzz-cov (the
# fuzz flavour with clang's source coverage), replays the inputs without
# fuzzing, and prints llvm-cov's summary per target.
#   fuzz/coverage.sh [WORK_DIR]    (default build/clang-fuzz/fuzz-work)
# Needs llvm-cov and llvm-profdata (Debian: llvm-14); not run by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/clang-fuzz/fuzz-work}
build=build/clang-fuzz-cov
ver=$(clang --version | sed -nE 's/.*clang version ([0-9]+).*/\1/p')
profdata=$(command -v llvm-profdata-"$ver" || command -v llvm-profdata || true)
cov=$(command -v llvm-cov-"$ver" || command -v llvm-cov || true)
if [ -z "$profdata" ] || [ -z "$cov" ]; then
  echo "coverage.sh: llvm-profdata and llvm-cov are needed: apt-get install llvm-$ver" >&2
  exit 1
fi
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTSVC_SANITIZE=ON -DTSVC_FUZZ=ON -DTSVC_TESTS=OFF \
  -DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
  -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_config fuzz_pg_reply fuzz_resp \
  fuzz_http_status fuzz_docker_stream fuzz_api >/dev/null

# The files each target is about (the rest of what it reaches is counted
# by the other targets or the test suite).
declare -A files=(
  [fuzz_config]="src/config/load.c src/config/ytree.c src/config/dump.c src/config/duration.c src/config/diag.c src/config/secret.c"
  [fuzz_pg_reply]="src/probe/pg_reply.c"
  [fuzz_resp]="src/probe/resp.c"
  [fuzz_http_status]="src/probe/http_status.c"
  [fuzz_docker_stream]="src/docker/stream.c"
  [fuzz_api]="src/api/api.c src/api/api_json.c src/api/metrics.c"
)
for t in fuzz_config fuzz_pg_reply fuzz_resp fuzz_http_status fuzz_docker_stream fuzz_api; do
  dirs=("fuzz/corpus/$t")
  [ -d "$work/$t" ] && dirs+=("$work/$t")
  rm -f "$build/$t".prof*
  LLVM_PROFILE_FILE="$build/$t.profraw" "$build/fuzz/$t" -runs=0 "${dirs[@]}" >/dev/null 2>&1
  "$profdata" merge -sparse "$build/$t.profraw" -o "$build/$t.profdata"
  n=$(find "${dirs[@]}" -type f | wc -l)
  echo "== $t ($n inputs)"
  # shellcheck disable=SC2086
  "$cov" report "$build/fuzz/$t" -instr-profile="$build/$t.profdata" ${files[$t]} |
    awk '$1 ~ /\.c$/ || /^TOTAL/ { sub(/.*\//, "", $1);
                             printf "  %-26s lines %7s  functions %7s  regions %7s\n", $1, $10, $7, $4 }'
done
