#!/usr/bin/env bash
# Do the timing-sensitive suites hold on a loaded machine? Runs them ROUNDS
# times (two at a time, as scripts/test.sh does) while one busy loop per
# core keeps every CPU at 100%, and counts the flakes: any run that did not
# pass. Target: 0.
#
#   scripts/stress-test.sh [FLAVOUR [ROUNDS]]   (defaults: gcc, 5)
#
# Build first (scripts/build.sh FLAVOUR). It needs what scripts/test.sh
# provides (postgres, redis, the Docker engine and images: a missing one is a
# failure here too). On a machine shared with other Docker tests, take the
# shared docker lock: flock -o -s /tmp/tsvc-docker.lock scripts/stress-test.sh
# The output of every failed run is kept under /tmp/tsvc-stress.*/; the
# last line is "N runs, N flakes".
set -uo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-gcc}
rounds=${2:-5}
# Suites with a bound on time: restart gaps and check schedules
# (test_monitor), lateness beside a stuck peer (test_isolation), probe
# timeouts (test_probe_fake, test_probe_exec), /livez and loop lag
# (test_owner), API deadlines (test_api_limits), exec timeouts in
# containers (test_docker_engine), and the program end to end
# (cli_test_api, cli_test_cli, cli_test_reload).
suites='^(test_monitor|test_isolation|test_probe_fake|test_probe_exec|test_owner|test_api_limits|test_docker_engine|cli_test_api|cli_test_cli|cli_test_reload)$'
if [ ! -x "build/$flavour/tanuki-svc" ]; then
  echo "stress-test: no build/$flavour (scripts/build.sh $flavour first)" >&2
  exit 2
fi
export TSVC_REQUIRE_DOCKER=1 TSVC_REQUIRE_SERVERS=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
keep=$(mktemp -d /tmp/tsvc-stress.XXXXXX)

busy=()
stop_busy() { [ ${#busy[@]} -gt 0 ] && kill "${busy[@]}" 2>/dev/null; busy=(); }
trap stop_busy EXIT
trap 'stop_busy; exit 130' INT TERM
for _ in $(seq "$(nproc)"); do
  ( while :; do :; done ) &
  busy+=($!)
done
echo "stress-test: $(nproc) busy loops (pids ${busy[*]}), $rounds rounds of $flavour: $suites"

runs=0 flakes=0
declare -A fails=()
for r in $(seq "$rounds"); do
  t0=$(date +%s)
  out=$(cd "build/$flavour" && ctest -j2 -R "$suites" --output-on-failure --timeout 300 2>&1)
  # " 3/10 Test  #5: test_monitor .....   Passed   21.19 sec"
  while read -r name result; do
    runs=$((runs + 1))
    if [ "$result" != Passed ]; then
      flakes=$((flakes + 1))
      fails[$name]=$(( ${fails[$name]:-0} + 1 ))
      echo "round $r: $name $result"
    fi
  done < <(sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: ([^ ]+) \.+[ *]*([A-Za-z]+).*/\1 \2/p' <<<"$out")
  echo "$out" >"$keep/round-$r.log"
  echo "round $r: $(grep -E 'tests passed' <<<"$out") ($(($(date +%s) - t0)) s)"
done
stop_busy
for n in "${!fails[@]}"; do echo "flaky: $n failed ${fails[$n]} of $rounds"; done
if [ "$flakes" -eq 0 ]; then rm -rf "$keep"; else echo "logs: $keep"; fi
echo "$runs runs, $flakes flakes"
[ "$flakes" -eq 0 ] && [ "$runs" -gt 0 ]
