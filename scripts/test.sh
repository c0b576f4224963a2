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
# present): ctest runs two tests at a time (-j2; the tests hold on a loaded
# machine, scripts/stress-test.sh proves it, and tests/CMakeLists.txt keeps
# apart the few that share something). The sanitizer and fuzz builds run
# in the background, niced, while the gcc tests run (most of them wait on
# servers and timers); the fuzz targets run one at a time, niced, beside the
# sanitizer tests; the Go client's tests run in the background beside the
# next stage. Each stage prints its start time; the end prints them all.
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
# stage: their bounds are 10-90 s waits for events); go_tests_end FLAVOUR
# waits for it, prints its output and counts it.
go_tests_start() {
  (cd go && TSVC_BINARY="../build/$1/tanuki-svc" go test -count=1 -v ./... >"$logs/go-$1.out" 2>&1
   echo $? >"$logs/go-$1.rc") &
  go_pid=$!
}
go_tests_end() {
  local out rc p f s
  wait "$go_pid"
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
# A build in the background: its output and status in $logs.
build_bg() {
  nice -n 10 scripts/build.sh "$1" >"$logs/build-$1.log" 2>&1
  echo $? >"$logs/build-$1.rc"
}
build_ok() { # FLAVOUR: print its log; true when it built
  cat "$logs/build-$1.log"
  if [ "$(cat "$logs/build-$1.rc" 2>/dev/null)" = 0 ]; then return 0; fi
  echo "build $1 FAILED"; failed=$((failed + 1)); return 1
}

stage "build gcc"
gcc_ok=0
scripts/build.sh gcc && gcc_ok=1 || { echo "build gcc FAILED"; failed=$((failed + 1)); }
# The other builds, one after the other, beside the gcc tests.
( for f in clang-asan clang-tsan clang-fuzz; do build_bg "$f"; done ) &
builds=$!
if [ "$gcc_ok" = 1 ]; then
  stage "test gcc"
  # Two at a time: three saved 30 s of 441 and failed two timing tests
  # (a docker exec the daemon started 30 s late, an API deadline).
  run_ctest gcc 2
  stage "go test gcc (in the background)"
  go_tests_start gcc
fi
stage "wait for the sanitizer and fuzz builds"
wait "$builds"

# Fuzzing (fuzz/README.md): each target 30 s from its seeds, one at a time
# beside the sanitizer tests (whose CPU it shares: 60 s each kept one core
# busy for the whole ASan stage); a crash, a leak or a broken property
# fails that target. Longer runs: fuzz/run.sh build/clang-fuzz SECONDS.
fuzz_pid=
if build_ok clang-fuzz; then
  FUZZ_JOBS=1 nice -n 10 fuzz/run.sh build/clang-fuzz 30 >"$logs/fuzz.log" 2>&1 &
  fuzz_pid=$!
fi

asan_ok=0
if build_ok clang-asan; then
  stage "test clang-asan"
  run_ctest clang-asan 2
  asan_ok=1
fi
if [ "$gcc_ok" = 1 ]; then
  stage "go test gcc: its results"
  go_tests_end gcc
fi
if [ "$asan_ok" = 1 ]; then
  stage "go test clang-asan (in the background)"
  go_tests_start clang-asan
fi

# ThreadSanitizer over the suites whose code runs on several threads: the
# monitor (readers on other threads), the manager and the API (test_owner,
# test_api_limits), and the program end to end (its API threads, signals,
# reloads). Every report is written to a file; any report fails the run,
# even one from a daemon whose test passed.
tsan_suites='^(test_monitor|test_owner|test_api_limits|test_systemd|cli_test_api|cli_test_cli|cli_test_reload)$'
if build_ok clang-tsan; then
  stage "test clang-tsan"
  tsan_dir=$(mktemp -d /tmp/tsvc-tsan.XXXXXX)
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$tsan_dir/report" \
    run_ctest clang-tsan 2 -R "$tsan_suites"
  if compgen -G "$tsan_dir/report*" >/dev/null; then
    echo "ThreadSanitizer reports:"; cat "$tsan_dir"/report*
    failed=$((failed + 1))
  else
    echo "ThreadSanitizer: no report"
  fi
  rm -rf "$tsan_dir"
fi

if [ "$asan_ok" = 1 ]; then
  stage "go test clang-asan: its results"
  go_tests_end clang-asan
fi

if [ -n "$fuzz_pid" ]; then
  stage "wait for fuzz"
  wait "$fuzz_pid"
  out=$(cat "$logs/fuzz.log")
  echo "$out"
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
