# lib.sh: helpers for the tests/cli/*.sh end-to-end tests (bash).
#
# Each test runs in its own temp directory with its own redis-servers on free
# loopback ports and its own monitor; everything it starts is stopped by pid
# in the EXIT trap, even when an assertion fails.
set -u

BIN=$(realpath "${TSVC_BINARY:?TSVC_BINARY must name the tanuki-svc program}")
T=$(mktemp -d /tmp/tsvc-cli.XXXXXX)
PIDS=()
FAILS=0
CHECKS=0
cd "$T"
# python3 is Debian's (scripts/deps.sh installs it), not a version manager's
# shim that comes first in PATH: pyenv's bash shim took 11 s a call on a
# loaded 2-core machine (0.4 s for /usr/bin/python3), and these tests call
# python3 hundreds of times.
if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
  mkdir -p "$T/bin" && ln -s /usr/bin/python3 "$T/bin/python3" && PATH="$T/bin:$PATH"
fi

cleanup() {
  local p
  if [ -f "$T/.tanuki/tanuki-svc.pid" ]; then
    p=$(cat "$T/.tanuki/tanuki-svc.pid" 2>/dev/null)
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null
  fi
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  [ -n "${EXTRA_CLEANUP:-}" ] && eval "$EXTRA_CLEANUP"
  if [ "$FAILS" -eq 0 ]; then rm -rf "$T"; else echo "kept $T for a look"; fi
}
trap cleanup EXIT

ok() { CHECKS=$((CHECKS + 1)); echo "ok   - $*"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: the command succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# eq DESCRIPTION GOT WANT
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi; }
# has DESCRIPTION HAYSTACK NEEDLE
has() {
  if grep -qF -- "$3" <<<"$2"; then ok "$1"; else bad "$1: '$3' not in: $(head -c 600 <<<"$2")"; fi
}
hasnt() {
  if grep -qF -- "$3" <<<"$2"; then bad "$1: '$3' unexpectedly in: $(head -c 600 <<<"$2")"; else ok "$1"; fi
}

# Run the program; sets OUT (stdout), ERR (stderr), RC.
run() {
  OUT=$("$BIN" "$@" 2>"$T/stderr"); RC=$?
  ERR=$(cat "$T/stderr")
}

# A copy of the program that another user (runuser -u nobody) can run: the
# build tree may sit under a directory only its owner may enter (a clone in
# /root, mode 0700). Tests that run it as nobody also open $T (chmod 755).
NOBODY_BIN="$T/nobody/tanuki-svc"
mkdir -m 0755 "$T/nobody" && cp "$BIN" "$NOBODY_BIN" && chmod 0755 "$NOBODY_BIN"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_redis PORT [extra args]: a redis-server on 127.0.0.1:PORT; sets REDIS_PID.
start_redis() {
  local port=$1; shift
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$T" "$@" >"$T/redis-$port.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_for "redis on $port" redis-cli -p "$port" ${REDIS_AUTH:+-a "$REDIS_AUTH" --no-auth-warning} ping
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null
}

# term_after DESCRIPTION SECONDS OUT COMMAND...: run the command (output to
# OUT) for SECONDS, then SIGTERM it; it must end within 20 s of that. One
# that does not is a failure of its own, with its threads' stacks (gdb) on
# stderr, and is killed: `timeout` alone would wait for it until ctest's
# limit and say nothing of where it was (seen once: cli_test_docker's
# `logs -f` under ASan on a loaded machine, not reproduced in 5 runs).
term_after() {
  local d=$1 secs=$2 out=$3; shift 3
  "$@" >"$out" 2>&1 &
  local pid=$!
  sleep "$secs"
  kill -TERM "$pid" 2>/dev/null
  local end=$((SECONDS + 20))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    bad "$d: still running 20 s after SIGTERM"
    if command -v gdb >/dev/null; then
      gdb -p "$pid" -batch -ex "thread apply all bt" >&2 2>&1 </dev/null || true
    fi
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 1
  fi
  wait "$pid" 2>/dev/null
  ok "$d"
}

# wait_for DESCRIPTION COMMAND...: up to 60 s for the command to succeed.
# A deadline that only ends a test that would hang: the wait ends as soon
# as the command succeeds (a monitor under ThreadSanitizer on a loaded
# 2-core machine took more than 15 s to answer).
wait_for() {
  local d=$1 end=$((SECONDS + 60)); shift
  while [ "$SECONDS" -lt "$end" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $d" >&2
  return 1
}

SOCK="$T/.tanuki/tanuki-svc.sock"
api() { curl -s --max-time 20 --unix-socket "$SOCK" "$@"; }
# code METHOD PATH: the HTTP status over the socket.
code() { curl -s --max-time 20 -o /dev/null -w '%{http_code}' --path-as-is -X "$1" --unix-socket "$SOCK" "http://localhost$2"; }
# jq-less JSON reads: jget JSON PYTHON-EXPR (on v)
jget() { python3 -c "import json,sys; v=json.loads(sys.argv[1]); print($2)" "$1" 2>/dev/null || echo "(not JSON: $(head -c 200 <<<"$1"))"; }

# up_fg: the monitor in the foreground, in the background of this shell.
up_fg() {
  "$BIN" up "$@" >"$T/up.log" 2>&1 &
  UP_PID=$!
  PIDS+=("$UP_PID")
  # Monitoring has begun once /v1/services answers 200.
  if ! wait_for "the monitor" curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/v1/services; then
    if ! kill -0 "$UP_PID" 2>/dev/null; then
      wait "$UP_PID"
      if [ $? -eq 3 ]; then
        # runtime auto found no runtime: the shared docker daemon is away
        # and no process runtime is built in. Not this test's business,
        # except under CI (scripts/test.sh), which provides one.
        if [ "${TSVC_REQUIRE_DOCKER:-}" = 1 ] || [ "${TSVC_REQUIRE_SERVERS:-}" = 1 ]; then
          bad "the monitor cannot reach a runtime (TSVC_REQUIRE_DOCKER/SERVERS=1)"; cat "$T/up.log"; exit 1
        fi
        echo "SKIP: the monitor cannot reach a runtime"; cat "$T/up.log"; exit 77
      fi
    fi
    bad "the monitor answers"; cat "$T/up.log"; exit 1
  fi
}

# Sanitizer reports in a log fail the test.
no_sanitizer_reports() {
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$@" 2>/dev/null; then
    bad "sanitizer reports in $*"; grep -E -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$@" | head -60
  else ok "no sanitizer reports in $(basename "$1")"; fi
}

finish() {
  echo "# $CHECKS checks, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}
