#!/usr/bin/env bash
# bench/up.sh: measure the program people run, `tanuki-svc up` itself (API
# and logging on, as shipped), watching N external redis services at 1 s.
# One run; bench/run.sh --up runs it beside bench_monitor's minimal loop
# and forked redis-cli and writes the table.
#
#   bench/up.sh BUILD_DIR VARIANT [N] [SECONDS]
#     VARIANT: up          monitor.listen on (the TCP API), connect per check
#              up-session  the same with healthcheck.session: true
#              up-nolisten no TCP listener
#              up-tcp      probe tcp (connect, then close with a reset)
#                          against the same redis server; checks counted
#                          from /metrics (tanuki_svc_checks_total; redis
#                          does not count a connection reset before its
#                          accept), the CPU taken after the first scrape
#                          and before the second
#
# What it does: starts a redis-server on 127.0.0.1 (a free port, CPU 1),
# writes a tanuki.yaml of N external services (probe redis, interval 1s,
# timeout 900ms, start_period 0s) in a temp dir, starts `tanuki-svc up`
# pinned to CPU 0, waits WARMUP seconds (default 5), then over SECONDS
# (default 10) counts the checks as the redis server counts them (INFO
# commandstats, cmdstat_ping: one PING per check) and the CPU time of `up`
# (/proc/PID/stat utime+stime); CPU per check = CPU / PINGs. Then, with the
# listener, GET /metrics 3 times, and reads VmRSS, VmHWM and Threads. Prints
# one line: RESULT up_variant=... services=N checks_s=... up_us=... rss_kib=...
# hwm_kib=... threads=... metrics_bytes=... failed=... (failed: services not
# healthy at the end) wakes_per_check=... (the times the threads of `up`
# went to sleep, voluntary context switches summed over /proc/PID/task, per
# check: each is a wake-up), held=... (services holding a session at the
# end, tanuki_svc_session_held; up-session). UP_GRID=DURATION writes monitor.timer_grid
# (default: the config's default). UP_STALL_MS=MS stops the redis server
# (SIGSTOP) for MS ms 1 s after start, within the warm-up. Everything it started is stopped by PID
# on exit.
set -euo pipefail
build=${1:?usage: bench/up.sh BUILD_DIR VARIANT [N] [SECONDS]}
variant=${2:?usage: bench/up.sh BUILD_DIR VARIANT [N] [SECONDS]}
n=${3:-1000}
secs=${4:-10}
warm=${WARMUP:-5}
bin=$(cd "$build" && pwd)/tanuki-svc
[[ -x $bin ]] || { echo "up.sh: fatal: $bin not found" >&2; exit 1; }
case $variant in up|up-session|up-nolisten|up-tcp) ;; *) echo "up.sh: fatal: unknown variant $variant" >&2; exit 2 ;; esac

dir=$(mktemp -d /tmp/tsvc-bench-up-XXXXXX)
redis_pid='' up_pid=''
cleanup() {
  [[ -n $up_pid ]] && kill "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
  [[ -n $redis_pid ]] && kill -CONT "$redis_pid" 2>/dev/null || true
  [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rport=$(free_port)
lport=$(free_port)
taskset -c 1 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
  --maxclients 60000 --dir "$dir" --logfile "$dir/redis.log" &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done

{
  echo "runtime: process"
  echo "monitor:"
  [[ $variant != up-nolisten ]] && echo "  listen: \"127.0.0.1:$lport\""
  [[ -n ${UP_GRID:-} ]] && echo "  timer_grid: $UP_GRID"
  echo "  socket: $dir/tanuki.sock"
  echo "services:"
  extra=''
  probe=redis
  [[ $variant == up-session ]] && extra=', session: true'
  [[ $variant == up-tcp ]] && probe=tcp
  for ((i = 0; i < n; i++)); do
    echo "  s$i: {external: true, healthcheck: {probe: $probe, address: \"127.0.0.1:$rport\", interval: 1s, timeout: 900ms, start_period: 0s$extra}}"
  done
} >"$dir/tanuki.yaml"

(cd "$dir" && exec taskset -c 0 "$bin" up >"$dir/up.log" 2>&1) &
up_pid=$!
if [[ -n ${UP_STALL_MS:-} ]]; then
  # The redis server stopped (SIGSTOP) for UP_STALL_MS ms 1 s after `up`
  # starts, while the sessions log in: a server a loaded machine does not
  # schedule for a while (issue 13: sessions not held 16 s after start).
  sleep 1
  kill -STOP "$redis_pid"
  sleep "$(awk -v m="$UP_STALL_MS" 'BEGIN { print m / 1000 }')"
  kill -CONT "$redis_pid"
  warm=$(awk -v w="$warm" -v m="$UP_STALL_MS" 'BEGIN { w -= 1 + m / 1000; print (w > 0 ? w : 0) }')
fi
sleep "$warm"
kill -0 "$up_pid" 2>/dev/null || { echo "up.sh: fatal: tanuki-svc up exited:" >&2; tail -5 "$dir/up.log" >&2; exit 1; }

pings() {
  if [[ $variant == up-tcp ]]; then
    curl -s -m 30 "http://127.0.0.1:$lport/metrics" | awk '/^tanuki_svc_checks_total\{/ { s += $NF } END { printf "%d\n", s }'
  else
    redis-cli -p "$rport" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_ping:calls=\([0-9]*\),.*/\1/p'
  fi
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$up_pid/stat"; }
sleeps() { cat /proc/"$up_pid"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }'; }
hz=$(getconf CLK_TCK)
t0=$(date +%s.%N); p0=$(pings); c0=$(cpu_ticks); w0=$(sleeps)
sleep "$secs"
c1=$(cpu_ticks); w1=$(sleeps); p1=$(pings); t1=$(date +%s.%N)

bytes=0
if [[ $variant != up-nolisten ]]; then
  for _ in 1 2 3; do
    bytes=$(curl -s -m 30 "http://127.0.0.1:$lport/metrics" | wc -c)
  done
  sleep 0.5
fi
rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$up_pid/status")
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$up_pid/status")
anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$up_pid/status")
threads=$(awk '/^Threads:/ { print $2 }' "/proc/$up_pid/status")
# UP_SMAPS=FILE: where the memory is, for a person (issue 13): /proc/PID/smaps
# summed per mapping (Rss, Anonymous), and glibc's malloc_info of the heap.
if [[ -n ${UP_SMAPS:-} ]]; then
  {
    echo "# $variant services=$n: Rss / Anonymous KiB per mapping (/proc/$up_pid/smaps)"
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]" }
         /^Rss:/ { rss[name] += $2 } /^Anonymous:/ { an[name] += $2 }
         END { for (k in rss) if (rss[k]) printf "%8d %8d %s\n", rss[k], an[k], k }' \
      "/proc/$up_pid/smaps" | sort -rn
    echo "# anonymous mappings by size (KiB): Size Rss"
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]"; a = $1 }
         /^Size:/ { sz = $2 } /^Rss:/ { if (name == "[anon]" || name == "[heap]") printf "%8d %8d %s %s\n", sz, $2, name, a }' \
      "/proc/$up_pid/smaps" | sort -k2 -rn | head -40
    if command -v gdb >/dev/null; then
      echo "# malloc_info (gdb)"
      gdb -q -batch -p "$up_pid" -ex 'call (int)malloc_info(0, (void*)fopen("'"$UP_SMAPS"'.malloc", "w"))' \
        -ex 'call (int)fflush(0)' >/dev/null 2>&1 || true
      cat "$UP_SMAPS.malloc" 2>/dev/null | grep -E '<heap nr|<total|<system|<aspace|<mprotect' || true
    fi
  } >"$UP_SMAPS" 2>&1
fi
failed=-1 held=-1
if [[ $variant != up-nolisten ]]; then
  metrics=$(curl -s -m 30 "http://127.0.0.1:$lport/metrics")
  failed=$(grep -c '^tanuki_svc_up{.*} 0$' <<<"$metrics" || true)
  # held: services holding a session at the end (up-session; issue 13).
  held=$(awk '/^tanuki_svc_session_held\{/ { s += $NF } END { print s + 0 }' <<<"$metrics")
fi
awk -v v="$variant" -v n="$n" -v p0="$p0" -v p1="$p1" -v c0="$c0" -v c1="$c1" -v hz="$hz" \
    -v t0="$t0" -v t1="$t1" -v rss="$rss" -v hwm="$hwm" -v anon="$anon" -v th="$threads" \
    -v b="$bytes" -v f="$failed" -v held="$held" -v w0="$w0" -v w1="$w1" -v grid="${UP_GRID:-default}" 'BEGIN {
  checks = p1 - p0; el = t1 - t0
  us = checks > 0 ? (c1 - c0) / hz * 1e6 / checks : -1
  printf "RESULT up_variant=%s services=%d checks_s=%.0f up_us=%.1f rss_kib=%d hwm_kib=%d anon_kib=%d threads=%d metrics_bytes=%d failed=%d wakes_per_check=%.2f grid=%s held=%d\n",
    v, n, checks / el, us, rss, hwm, anon, th, b, f, (checks > 0 ? (w1 - w0) / checks : -1), grid, held }'
