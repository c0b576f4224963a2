#!/usr/bin/env bash
# The whole test suite, as root on Debian 12: installs what is needed, builds
# with gcc and with clang + AddressSanitizer + UndefinedBehaviorSanitizer
# (both with -Wall -Wextra -Werror), and runs every test under both builds
# (and the suites that use threads under clang + ThreadSanitizer),
# with a Docker engine (scripts/docker-up.sh) and the test images
# (scripts/images.sh); then runs the fuzz targets (fuzz/run.sh) for 60 s each.
# Ends with a line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
passed=0 failed=0

# A Docker engine and the test images (no registry needed). The docker tests
# fail, not skip, when the engine does not answer.
echo "== docker"
if ! { scripts/docker-up.sh && scripts/images.sh; }; then
  echo "docker setup FAILED"; failed=$((failed + 1))
fi
export TSVC_REQUIRE_DOCKER=1

# The Go client package (go/, no module proxy: standard library only): its
# tests run against the program of a build; each test or example counts.
export GOFLAGS=-mod=mod GOPROXY=off
go_tests() {
  local out rc p f
  out=$(cd go && TSVC_BINARY="../build/$1/tanuki-svc" go test -count=1 -v ./... 2>&1); rc=$?
  grep -vE '^=== (RUN|PAUSE|CONT)' <<<"$out"
  p=$(grep -c '^--- PASS' <<<"$out"); f=$(grep -c '^--- FAIL' <<<"$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # no test ran: build error, fixture, panic
  passed=$((passed + p)); failed=$((failed + f))
}
echo "== go vet"
if (cd go && go vet ./...); then passed=$((passed + 1)); else echo "go vet FAILED"; failed=$((failed + 1)); fi
# Count ctest's summary line of $1 into passed/failed.
count_ctest() {
  local line f t
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' <<<"$1" | tail -n1)
  if [ -z "$line" ]; then echo "ctest printed no summary"; failed=$((failed + 1)); return; fi
  f=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  t=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
  passed=$((passed + t - f)); failed=$((failed + f))
}

for flavour in gcc clang-asan; do
  echo "== build $flavour"
  if ! scripts/build.sh "$flavour"; then
    echo "build $flavour FAILED"; failed=$((failed + 1)); continue
  fi
  echo "== test $flavour"
  out=$(cd "build/$flavour" && ctest --output-on-failure --timeout 300 2>&1)
  echo "$out"
  echo "== go test $flavour"
  go_tests "$flavour"
  count_ctest "$out"
done

# ThreadSanitizer over the suites whose code runs on several threads: the
# monitor (readers on other threads), the manager and the API (test_owner,
# test_api_limits), and the program end to end (its API threads, signals,
# reloads). Every report is written to a file; any report fails the run,
# even one from a daemon whose test passed.
tsan_suites='^(test_monitor|test_owner|test_api_limits|test_systemd|cli_test_api|cli_test_cli|cli_test_reload)$'
echo "== build clang-tsan"
if ! scripts/build.sh clang-tsan; then
  echo "build clang-tsan FAILED"; failed=$((failed + 1))
else
  echo "== test clang-tsan"
  tsan_dir=$(mktemp -d /tmp/tsvc-tsan.XXXXXX)
  out=$(cd build/clang-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$tsan_dir/report" \
        ctest --output-on-failure --timeout 300 -R "$tsan_suites" 2>&1)
  echo "$out"
  count_ctest "$out"
  if compgen -G "$tsan_dir/report*" >/dev/null; then
    echo "ThreadSanitizer reports:"; cat "$tsan_dir"/report*
    failed=$((failed + 1))
  else
    echo "ThreadSanitizer: no report"
  fi
  rm -rf "$tsan_dir"
fi

# Fuzzing (fuzz/README.md): each target 60 s from its seeds, two at a time;
# a crash, a leak or a broken property fails that target.
echo "== fuzz"
if scripts/build.sh clang-fuzz; then
  out=$(fuzz/run.sh build/clang-fuzz 60 2>&1)
  echo "$out"
  if [[ $(tail -n1 <<<"$out") =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
  else
    echo "fuzz printed no summary"; failed=$((failed + 1))
  fi
else
  echo "build clang-fuzz FAILED"; failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
