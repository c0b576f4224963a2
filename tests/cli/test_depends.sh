#!/usr/bin/env bash
# depends_on through the CLI and the API, on the process runtime: app (a
# redis) waits for cache (a redis) to be healthy. With cache stopped, a
# restart of app is held: `status` says what app waits for, the API's JSON
# has waiting_for and wait_until; at depends_timeout the restart fails
# naming cache, and once cache is started again app's retry goes through.
. "$(dirname "$0")/lib.sh"

CP=$(free_port); AP=$(free_port)
cat >tanuki.yaml <<YAML
runtime: process
services:
  cache:
    image: redis:7
    port: $CP
    healthcheck: {interval: 200ms, timeout: 1s, retries: 2, start_period: 10s, start_interval: 100ms}
    restart: {backoff: 300ms, max_backoff: 1s, stop_timeout: 5s}
  app:
    image: redis:7
    port: $AP
    depends_on:
      cache: {condition: service_healthy}
    depends_timeout: 10s
    healthcheck: {interval: 200ms, timeout: 1s, retries: 2, start_period: 10s, start_interval: 100ms}
    restart: {backoff: 300ms, max_backoff: 1s, stop_timeout: 5s}
YAML
healthy() { curl -s --unix-socket "$SOCK" "http://localhost/v1/services/$1" | grep -q '"healthy":true'; }

up_fg --log-level info
wait_for "cache healthy" healthy cache || bad "cache healthy"
wait_for "app healthy" healthy app || { bad "app healthy"; cat "$T/up.log"; }
# app's start went once cache was healthy, not before.
log=$(cat "$T/up.log")
c_line=$(grep -n 'service=cache state=healthy' "$T/up.log" | head -1 | cut -d: -f1)
a_line=$(grep -n 'service=app action=wait_over' "$T/up.log" | head -1 | cut -d: -f1)
check "app's start waited for cache (logged)" test -n "$a_line"
check "... and went after cache was healthy" test "${a_line:-0}" -gt "${c_line:-999999}"
body=$(api http://localhost/v1/services/app)
eq "not waiting: waiting_for is []" "$(jget "$body" 'v["waiting_for"]')" "[]"
eq "not waiting: wait_until is null" "$(jget "$body" 'v["wait_until"]')" None

run stop cache
eq "stop cache: exit 0" "$RC" 0
# The restart blocks until it ends: in the background.
"$BIN" restart app >"$T/restart.out" 2>&1 &
RPID=$!
PIDS+=("$RPID")
waiting() { curl -s --unix-socket "$SOCK" http://localhost/v1/services/app | grep -q '"waiting_for":\[{'; }
wait_for "app's restart held" waiting || bad "app's restart held"
# 10 s to look (a loaded machine runs each command slowly).
run status
has "status: the waiting line" "$OUT" "app waits for cache to be healthy (stopped now); gives up in "
run status app
has "status app: the waiting line" "$OUT" "app waits for cache to be healthy (stopped now); gives up in "
run status --json app
eq "status --json app: waiting_for" "$(jget "$OUT" 'v["waiting_for"][0]["service"]')" cache
body=$(api http://localhost/v1/services/app)
eq "held: state" "$(jget "$body" 'v["state"]')" restarting
eq "held: waiting_for" "$(jget "$body" 'v["waiting_for"]')" "[{'service': 'cache', 'condition': 'service_healthy', 'state': 'stopped'}]"
check "held: wait_until is a time" python3 -c "import json,sys,datetime; datetime.datetime.strptime(json.loads(sys.argv[1])['wait_until'], '%Y-%m-%dT%H:%M:%S.%fZ')" "$body"
wait "$RPID"; rrc=$?
eq "the held restart fails at depends_timeout: exit 1" "$rrc" 1
has "... naming what it waited for" "$(cat "$T/restart.out")" "gave up waiting for depends_on after 10s: cache is stopped (waits for it to be healthy)"

run start cache
eq "start cache: exit 0" "$RC" 0
wait_for "app healthy again" healthy app || { bad "app healthy again"; tail -30 "$T/up.log"; }
body=$(api http://localhost/v1/services/app)
eq "after: waiting_for is []" "$(jget "$body" 'v["waiting_for"]')" "[]"
run status
hasnt "status: no waiting line" "$OUT" "app waits for"
no_sanitizer_reports "$T/up.log"

echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
