#!/usr/bin/env bash
# Run the fuzz targets of a clang-fuzz build (scripts/build.sh clang-fuzz),
# SECONDS each, FUZZ_JOBS at a time (default 2: one per core of the CI
# machine; scripts/test.sh runs them one at a time beside the tests).
#
#   fuzz/run.sh [BUILD_DIR [SECONDS [TARGET...]]]
#   (defaults: build/clang-fuzz, 60, every fuzz/fuzz_*.c)
#
# Each target starts from its seeds (fuzz/corpus/<target>, only read) and
# the inputs of earlier runs (BUILD_DIR/fuzz-work/<target>, where new ones
# go). A crash, a leak, a timeout (10 s on one input) or a broken property
# fails the target; the input is kept as BUILD_DIR/fuzz-work/crashes/
# <target>-crash-<sha1> (reproduce: BUILD_DIR/fuzz/<target> FILE).
# Prints one line per target with its executions per second and coverage,
# then "N passed, N failed"; exits 0 only when none failed.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/clang-fuzz}
secs=${2:-60}
shift $(($# < 2 ? $# : 2))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
work=$build/fuzz-work
mkdir -p "$work/crashes"

run_one() {
  local t=$1 log=$work/$1.log dict=()
  mkdir -p "$work/$t"
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  "$build/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/crashes/$t-" "${dict[@]}" \
    "$work/$t" "fuzz/corpus/$t" >"$log" 2>&1
  local rc=$?
  local execs rate cov
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1)
  if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
    echo "fuzz $t: ok, $execs runs in ${secs} s ($rate/s), $cov" >"$work/$t.result"
  else
    { echo "fuzz $t: FAILED (exit $rc), log $log:"; grep -vE '^#[0-9]+' "$log" | tail -n 60
      ls "$work/crashes/$t-"* 2>/dev/null; } >"$work/$t.result"
  fi
}

if [ ! -x "$build/fuzz/${targets[0]}" ]; then
  echo "fuzz: no targets in $build/fuzz (scripts/build.sh clang-fuzz first)" >&2
  echo "0 passed, ${#targets[@]} failed"
  exit 1
fi
for t in "${targets[@]}"; do
  rm -f "$work/$t.result"
  while [ "$(jobs -rp | wc -l)" -ge "${FUZZ_JOBS:-2}" ]; do wait -n; done
  run_one "$t" &
done
wait
passed=0 failed=0
for t in "${targets[@]}"; do
  if [ -f "$work/$t.result" ] && head -n1 "$work/$t.result" | grep -q ': ok,'; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
  cat "$work/$t.result" 2>/dev/null || echo "fuzz $t: FAILED (no result)"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
