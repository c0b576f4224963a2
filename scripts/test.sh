#!/usr/bin/env bash
# The whole test suite, as root on Debian 12: installs what is needed, builds
# with gcc and with clang + AddressSanitizer + UndefinedBehaviorSanitizer
# (both with -Wall -Wextra -Werror), and runs every test under both builds
# (and the suites that use threads under clang + ThreadSanitizer),
# with a Docker engine (scripts/docker-up.sh) and the test images
# (scripts/images.sh); then runs the fuzz targets (fuzz/run.sh) for 60 s each.
# Ends with a line "N passed, N failed, N skipped"; CI needs 0 failed. Under
# this script a missing engine, image, postgres or redis is a failure
# (TSVC_REQUIRE_DOCKER=1, TSVC_REQUIRE_SERVERS=1), never a skip.
#
# Time (budget: well under 15 minutes on a 2-core machine, deps and images
# present). Most tests wait on servers, containers and timers, not on the
# CPU, so the flavours run side by side:
#   1. gcc is built; the sanitizer and fuzz builds follow in the background,
#      niced (clang-asan first: its tests come next).
#   2. The tests that need the Docker daemon to themselves (the daemon
#      restart scenario, s8, and test_docker_engine's exec timings) run first
#      under gcc, alone: nothing else runs tests yet.
#   3. Two lanes, each `ctest -j2` (the tests hold on a loaded machine:
#      scripts/stress-test.sh proves it; tests/CMakeLists.txt keeps apart the
#      few that share something, across flavours too: the root layout of the
#      process runtime is taken with flock(1)):
#        lane 1: the other gcc tests, then go test;
#        lane 2: once clang-asan is built, its tests but those of step 2,
#                then go test;
#      the clang-tsan suites take the lane that ends first.
#      The fuzz targets run one at a time, niced, once clang-fuzz is built.
#   4. Under clang-asan, the tests of step 2, alone again.
# Each stage prints its start time (seconds from the start); the end prints
# them all, then each lane's output.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
logs=$(mktemp -d /tmp/tsvc-test.XXXXXX)
trap 'rm -rf "$logs"' EXIT
# Stage times and counts go to files: the lanes are subshells.
stage() {
  local now=$(($(date +%s) - T0))
  echo "== $1 (at ${now} s)"
  echo "$now $1" >>"$logs/stages"
}
# count PASSED FAILED SKIPPED
count() { echo "$1 $2 $3" >>"$logs/counts"; }
fail1() { echo "$1 FAILED"; count 0 1 0; }

stage deps
scripts/deps.sh --test || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# A Docker engine and the test images (no registry needed). The docker tests
# fail, not skip, when the engine does not answer.
stage docker
if ! { scripts/docker-up.sh && scripts/images.sh; }; then fail1 "docker setup"; fi
export TSVC_REQUIRE_DOCKER=1 TSVC_REQUIRE_SERVERS=1

# The Go client package (go/, no module proxy: standard library only): its
# tests run against the program of a build; each test or example counts.
export GOFLAGS=-mod=mod GOPROXY=off
go_tests() {
  local out rc p f s
  out=$(cd go && TSVC_BINARY="../build/$1/tanuki-svc" go test -count=1 -v ./... 2>&1); rc=$?
  grep -vE '^=== (RUN|PAUSE|CONT)' <<<"$out"
  p=$(grep -c '^--- PASS' <<<"$out"); f=$(grep -c '^--- FAIL' <<<"$out")
  s=$(grep -c '^--- SKIP' <<<"$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # no test ran: build error, fixture, panic
  count "$p" "$f" "$s"
}
stage "go vet"
if (cd go && go vet ./...); then count 1 0 0; else fail1 "go vet"; fi

# Count ctest's output $1. ctest counts a skipped test (exit 77: tu_skip in
# tests/testutil.h, or a script's SKIP) among the passed in its summary and
# lists it under "did not run ... (Skipped)".
count_ctest() {
  local line f t s
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' <<<"$1" | tail -n1)
  if [ -z "$line" ]; then fail1 "ctest (no summary)"; return; fi
  f=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  t=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
  s=$(grep -cE '^[[:space:]]+[0-9]+ - .* \((Skipped|Disabled)\)$' <<<"$1")
  count $((t - f - s)) "$f" "$s"
}
# run_ctest FLAVOUR [ctest args]: two tests at a time.
run_ctest() {
  local flavour=$1 out; shift
  out=$(cd "build/$flavour" && ctest -j2 --output-on-failure --timeout 300 "$@" 2>&1)
  echo "$out"
  count_ctest "$out"
}
# A build in the background: its output in $logs, then its status.
build_bg() {
  nice -n 10 scripts/build.sh "$1" >"$logs/build-$1.log" 2>&1
  echo $? >"$logs/build-$1.rc"
}
# Wait for FLAVOUR's background build; print its log; true when it built.
build_ok() {
  while [ ! -e "$logs/build-$1.rc" ]; do sleep 1; done
  cat "$logs/build-$1.log"
  if [ "$(cat "$logs/build-$1.rc")" = 0 ]; then return 0; fi
  fail1 "build $1"; return 1
}

stage "build gcc"
gcc_ok=0
scripts/build.sh gcc && gcc_ok=1 || fail1 "build gcc"
# The other builds, one after the other, beside the gcc tests.
( for f in clang-asan clang-fuzz clang-tsan; do build_bg "$f"; done ) &

# The tests that need the Docker daemon to themselves: s8 restarts it,
# test_docker_engine times execs through it (tests/CMakeLists.txt: RUN_SERIAL).
alone='^(test_docker_scenarios_s8|test_docker_engine)$'
if [ "$gcc_ok" = 1 ]; then
  stage "test gcc: the tests that run alone"
  run_ctest gcc -R "$alone"
fi

# ThreadSanitizer over the suites whose code runs on several threads: the
# monitor (readers on other threads), the manager and the API (test_owner,
# test_api_limits), and the program end to end (its API threads, signals,
# reloads). Every report is written to a file; any report fails the run,
# even one from a daemon whose test passed.
tsan_suites='^(test_monitor|test_owner|test_api_limits|test_systemd|cli_test_api|cli_test_cli|cli_test_reload)$'
tsan_tests() {
  local tsan_dir
  tsan_dir=$(mktemp -d /tmp/tsvc-tsan.XXXXXX)
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$tsan_dir/report" \
    run_ctest clang-tsan -R "$tsan_suites"
  if compgen -G "$tsan_dir/report*" >/dev/null; then
    echo "ThreadSanitizer reports:"; cat "$tsan_dir"/report*
    fail1 "ThreadSanitizer"
  else
    echo "ThreadSanitizer: no report"
  fi
  rm -rf "$tsan_dir"
}

# Lane 1: gcc.
(
  if [ "$gcc_ok" = 1 ]; then
    stage "lane 1: test gcc"
    run_ctest gcc -E "$alone"
    stage "lane 1: go test gcc"
    go_tests gcc
  fi
) >"$logs/lane1.log" 2>&1 &
lane1=$!

# Lane 2: clang-asan once built.
(
  if build_ok clang-asan; then
    stage "lane 2: test clang-asan"
    run_ctest clang-asan -E "$alone"
    stage "lane 2: go test clang-asan"
    go_tests clang-asan
  fi
) >"$logs/lane2.log" 2>&1 &
lane2=$!

# Fuzzing (fuzz/README.md): each target 60 s from its seeds, one at a time
# beside the tests; a crash, a leak or a broken property fails that target.
(
  if build_ok clang-fuzz; then
    stage "fuzz"
    out=$(FUZZ_JOBS=1 nice -n 10 fuzz/run.sh build/clang-fuzz 60 2>&1)
    echo "$out"
    if [[ $(tail -n1 <<<"$out") =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
      count "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" 0
    else
      fail1 "fuzz (no summary)"
    fi
  fi
) >"$logs/fuzz.log" 2>&1 &
fuzz=$!

# clang-tsan in the lane that ends first.
wait -n "$lane1" "$lane2"
(
  if build_ok clang-tsan; then
    stage "test clang-tsan"
    tsan_tests
  fi
) >"$logs/tsan.log" 2>&1
wait "$lane1" "$lane2"
if [ "$(cat "$logs/build-clang-asan.rc")" = 0 ]; then
  stage "test clang-asan: the tests that run alone"
  run_ctest clang-asan -R "$alone"
fi
stage "wait for fuzz"
wait "$fuzz"
stage end
for l in lane1 lane2 tsan fuzz; do
  echo "---- $l ----"
  cat "$logs/$l.log"
done
echo "stages (start, seconds from the start):"
sort -n "$logs/stages" | sed 's/^/  /'
read -r passed failed skipped < <(awk '{p += $1; f += $2; s += $3} END {print p + 0, f + 0, s + 0}' "$logs/counts")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
