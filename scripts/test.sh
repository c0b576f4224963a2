#!/usr/bin/env bash
# The whole test suite, as root on Debian 12: installs what is needed, builds
# with gcc and with clang + AddressSanitizer + UndefinedBehaviorSanitizer
# (both with -Wall -Wextra -Werror), and runs every test under both builds
# (and the suites that use threads under clang + ThreadSanitizer),
# with a Docker engine (scripts/docker-up.sh) and the test images
# (scripts/images.sh); then runs the fuzz targets (fuzz/run.sh) for 30 s each.
# What runs once, in the gcc build only (tests/CMakeLists.txt says why):
# docker-compose running the exported file, the Kubernetes schema check and
# Chromium on the status page; their suites run in every build all the same.
# Ends with a line "N passed, N failed, N skipped"; CI needs 0 failed. Under
# this script a missing engine, image, postgres or redis is a failure
# (TSVC_REQUIRE_DOCKER=1, TSVC_REQUIRE_SERVERS=1), never a skip.
#
# Time (budget: well under 15 minutes on a 2-core machine, deps and images
# present): the sanitizer and fuzz builds run in the background, niced,
# while the gcc tests run. Most tests wait on servers, Docker and timers,
# not on the CPU (the clang-asan tests took 620 s of test time against the
# gcc tests' 720 s in a clean-clone run, though their code runs 2-3 times
# slower), so the tests run in two lanes at once, each ctest two
# tests at a time (the tests hold on a loaded machine, scripts/stress-test.sh
# proves it, and tests/CMakeLists.txt keeps apart the few that share
# something): lane 1 the gcc tests; lane 2 the clang-asan tests as soon as
# their build is done; the TSan suites after either; beside them the fuzz
# targets one at a time, niced, and the Go client's tests after each
# build's ctest. The Docker daemon restart scenario runs alone, before and
# after the lanes. The end prints each lane's output in order (with the
# times it started and ended), then the stages' start times.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
times=()
stage() {
  local now=$(($(date +%s) - T0))
  echo "== $1 (at ${now} s)"
  times+=("$now $1")
}
stage deps
scripts/deps.sh --test || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
passed=0 failed=0 skipped=0
logs=$(mktemp -d /tmp/tsvc-test.XXXXXX)
trap 'rm -rf "$logs"' EXIT

# A Docker engine and the test images (no registry needed). The docker tests
# fail, not skip, when the engine does not answer.
stage docker
if ! { scripts/docker-up.sh && scripts/images.sh; }; then
  echo "docker setup FAILED"; failed=$((failed + 1))
fi
export TSVC_REQUIRE_DOCKER=1 TSVC_REQUIRE_SERVERS=1

# The Go client package (go/, no module proxy: standard library only): its
# tests run against the program of a build; each test or example counts.
export GOFLAGS=-mod=mod GOPROXY=off
# go_tests_start FLAVOUR: in the background (8-12 s, beside the next ctest
# run: their bounds are 10-90 s waits for events; the lane that started it
# waits for $go_pid); go_tests_end FLAVOUR prints its output and counts it.
go_tests_start() {
  (cd go && TSVC_BINARY="../build/$1/tanuki-svc" go test -count=1 -v ./... >"$logs/go-$1.out" 2>&1
   echo $? >"$logs/go-$1.rc") &
  go_pid=$!
}
go_tests_end() {
  local out rc p f s
  out=$(cat "$logs/go-$1.out"); rc=$(cat "$logs/go-$1.rc" 2>/dev/null || echo 1)
  grep -vE '^=== (RUN|PAUSE|CONT)' <<<"$out"
  p=$(grep -c '^--- PASS' <<<"$out"); f=$(grep -c '^--- FAIL' <<<"$out")
  s=$(grep -c '^--- SKIP' <<<"$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # no test ran: build error, fixture, panic
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}
stage "go vet"
if (cd go && go vet ./...); then passed=$((passed + 1)); else echo "go vet FAILED"; failed=$((failed + 1)); fi

# Count ctest's output $1 into passed/failed/skipped. ctest counts a skipped
# test (exit 77: tu_skip in tests/testutil.h, or a script's SKIP) among the
# passed in its summary and lists it under "did not run ... (Skipped)".
count_ctest() {
  local line f t s
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' <<<"$1" | tail -n1)
  if [ -z "$line" ]; then echo "ctest printed no summary"; failed=$((failed + 1)); return; fi
  f=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  t=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
  s=$(grep -cE '^[[:space:]]+[0-9]+ - .* \((Skipped|Disabled)\)$' <<<"$1")
  passed=$((passed + t - f - s)); failed=$((failed + f)); skipped=$((skipped + s))
}
# run_ctest FLAVOUR JOBS [ctest args]: JOBS tests at a time.
run_ctest() {
  local flavour=$1 jobs=$2 out; shift 2
  out=$(cd "build/$flavour" && ctest -j"$jobs" --output-on-failure --timeout 300 "$@" 2>&1)
  echo "$out"
  count_ctest "$out"
}
# ctest_to NAME FLAVOUR JOBS [ctest args]: the same in a lane (a background
# subshell): its output to $logs/ctest-NAME.out, the time it started and
# ended (seconds from the start) to $logs/ctest-NAME.times; ctest_end NAME
# prints and counts it.
ctest_to() {
  local name=$1 flavour=$2 jobs=$3; shift 3
  echo "$(($(date +%s) - T0))" >"$logs/ctest-$name.times"
  (cd "build/$flavour" && ctest -j"$jobs" --output-on-failure --timeout 300 "$@") \
    >"$logs/ctest-$name.out" 2>&1
  echo "$(($(date +%s) - T0))" >>"$logs/ctest-$name.times"
}
ctest_end() {
  local out
  if [ ! -e "$logs/ctest-$1.out" ]; then return; fi
  out=$(cat "$logs/ctest-$1.out")
  echo "== ctest $1: from $(tr '\n' ' ' <"$logs/ctest-$1.times" | sed -E 's/ ([0-9]+) $/ s to \1 s/')"
  echo "$out"
  count_ctest "$out"
}
# A build in the background: its output and status in $logs; build_wait
# FLAVOUR waits (in a lane) until it has ended.
build_bg() {
  local flavour=$1; shift
  nice -n 10 scripts/build.sh "$flavour" "$@" >"$logs/build-$flavour.log" 2>&1
  echo $? >"$logs/build-$flavour.rc"
}
build_wait() { while [ ! -e "$logs/build-$1.rc" ]; do sleep 1; done; }
build_ok() { # FLAVOUR: print its log; true when it built
  cat "$logs/build-$1.log"
  if [ "$(cat "$logs/build-$1.rc" 2>/dev/null)" = 0 ]; then return 0; fi
  echo "build $1 FAILED"; failed=$((failed + 1)); return 1
}
built() { [ "$(cat "$logs/build-$1.rc" 2>/dev/null)" = 0 ]; }

# ThreadSanitizer over the suites whose code runs on several threads: the
# monitor (readers on other threads), the manager and the API (test_owner,
# test_api_limits), and the program end to end (its API threads, signals,
# reloads). Every report is written to a file; any report fails the run,
# even one from a daemon whose test passed. The TSan build makes only what
# these suites run: their programs and tanuki-svc.
tsan_c='test_monitor test_owner test_api_limits test_systemd test_board'
tsan_suites="^(${tsan_c// /|}|cli_test_api|cli_test_cli|cli_test_reload)\$"
tsan_dir=$(mktemp -d /tmp/tsvc-tsan.XXXXXX)
# The daemon restart scenario (s8) stops dockerd: it runs alone, before
# (gcc) and after (clang-asan) the two lanes; every other test runs in them.
no_s8='^test_docker_scenarios_s8$'

stage "build gcc"
gcc_ok=0
scripts/build.sh gcc && gcc_ok=1 || { echo "build gcc FAILED"; failed=$((failed + 1)); }
# The other builds, one after the other, niced, beside the gcc tests: the
# fuzz targets are built before the TSan build so that they run early.
( build_bg clang-asan; build_bg clang-fuzz
  # shellcheck disable=SC2086
  build_bg clang-tsan --target tanuki-svc $tsan_c ) &
builds=$!
if [ "$gcc_ok" = 1 ]; then
  stage "test gcc: the daemon restart, alone"
  run_ctest gcc 1 -R "$no_s8"
fi

# Two lanes, each two tests at a time (most tests wait on servers, Docker
# and timers, not on the CPU): lane 1 runs the gcc tests, lane 2 the
# clang-asan tests as soon as that build is there; the TSan suites run once
# their build is there and either lane is done. A test that runs in both
# builds never shares anything with its twin but the machine
# (tests/CMakeLists.txt: root's layout is taken with flock, not a ctest
# RESOURCE_LOCK, for that reason). The Go client's tests start in the
# background after the ctest run of their build. The fuzz targets run one
# at a time, niced, as soon as they are built (fuzz/README.md): each 30 s
# from its seeds; a crash, a leak or a broken property fails that target.
# Longer runs: fuzz/run.sh build/clang-fuzz SECONDS.
stage "lanes: gcc | clang-asan | clang-tsan after either | fuzz"
(
  if [ "$gcc_ok" = 1 ]; then
    ctest_to gcc gcc 2 -E "$no_s8"
    touch "$logs/done-gcc"
    go_tests_start gcc
    wait "$go_pid"
  fi
  touch "$logs/done-gcc"
) &
lane1=$!
(
  build_wait clang-asan
  if built clang-asan; then
    ctest_to clang-asan clang-asan 2 -E "$no_s8"
    touch "$logs/done-clang-asan"
    go_tests_start clang-asan
    wait "$go_pid"
  fi
  touch "$logs/done-clang-asan"
) &
lane2=$!
(
  build_wait clang-tsan
  if built clang-tsan; then
    while [ ! -e "$logs/done-gcc" ] && [ ! -e "$logs/done-clang-asan" ]; do sleep 1; done
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$tsan_dir/report" \
      ctest_to clang-tsan clang-tsan 2 -R "$tsan_suites"
  fi
) &
lane_tsan=$!
(
  build_wait clang-fuzz
  if built clang-fuzz; then
    FUZZ_JOBS=1 nice -n 10 fuzz/run.sh build/clang-fuzz 30 >"$logs/fuzz.log" 2>&1
  fi
) &
lane_fuzz=$!
wait "$lane1"
stage "gcc lane done"
wait "$lane2"
stage "clang-asan lane done"
wait "$builds" "$lane_tsan"
stage "clang-tsan done"
asan_ok=0
if build_ok clang-asan; then
  asan_ok=1
  stage "test clang-asan: the daemon restart, alone"
  run_ctest clang-asan 1 -R "$no_s8"
fi
wait "$lane_fuzz"
stage "fuzz done"

# The results, in order.
if [ "$gcc_ok" = 1 ]; then
  ctest_end gcc
  echo "== go test gcc"; go_tests_end gcc
fi
if [ "$asan_ok" = 1 ]; then
  ctest_end clang-asan
  echo "== go test clang-asan"; go_tests_end clang-asan
fi
if build_ok clang-tsan; then
  ctest_end clang-tsan
  if compgen -G "$tsan_dir/report*" >/dev/null; then
    echo "ThreadSanitizer reports:"; cat "$tsan_dir"/report*
    failed=$((failed + 1))
  else
    echo "ThreadSanitizer: no report"
  fi
fi
rm -rf "$tsan_dir"
if build_ok clang-fuzz; then
  out=$(cat "$logs/fuzz.log" 2>/dev/null)
  echo "== fuzz"; echo "$out"
  if [[ $(tail -n1 <<<"$out") =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
  else
    echo "fuzz printed no summary"; failed=$((failed + 1))
  fi
fi
stage end
echo "stages (start, seconds from the start):"
printf '  %s\n' "${times[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
