#!/usr/bin/env bash
# SIGHUP reloads tanuki.yaml: a changed, an added and a removed service, an
# unchanged one left alone, a broken file rejected with the old config kept.
. "$(dirname "$0")/lib.sh"

P1=$(free_port); P2=$(free_port); P3=$(free_port)
start_redis "$P1"; start_redis "$P2"; start_redis "$P3"
write_config() { # $1: cache retries, $2: extra services
  cat >tanuki.yaml <<YAML
services:
  cache:
    image: redis:7
    port: $P1
    external: true
    healthcheck: {probe: redis, interval: 300ms, timeout: 200ms, retries: $1, start_period: 0s}
  steady:
    port: $P2
    external: true
    healthcheck: {probe: tcp, interval: 300ms, timeout: 200ms, retries: 2, start_period: 0s}
$2
YAML
}
write_config 2 "  gone:
    port: $P3
    external: true
    healthcheck: {probe: redis, interval: 300ms, timeout: 200ms, retries: 2, start_period: 0s}"
up_fg
svc() { api "http://localhost/v1/services/$1"; }
wait_for "cache healthy" sh -c "curl -s --unix-socket $SOCK http://localhost/v1/services/cache | grep -q '\"healthy\":true'"
wait_for "steady healthy" sh -c "curl -s --unix-socket $SOCK http://localhost/v1/services/steady | grep -q '\"healthy\":true'"
sleep 1
steady_since=$(jget "$(svc steady)" 'v["since"]')
cache_checks=$(jget "$(svc cache)" 'v["checks_total"]')
eq "before: three services" "$(jget "$(api http://localhost/v1/services)" '[s["name"] for s in v["services"]]')" "['cache', 'steady', 'gone']"

# cache: retries 2 -> 5; gone: removed; fresh: added.
write_config 5 "  fresh:
    port: $P3
    external: true
    healthcheck: {probe: redis, interval: 300ms, timeout: 200ms, retries: 3, start_period: 0s}"
kill -HUP "$UP_PID"
wait_for "the reload's summary" grep -q "reloaded .*: 1 added, 1 removed, 1 changed (0 recreated), 1 unchanged" up.log
has "reload: summary in the log" "$(cat up.log)" "1 added, 1 removed, 1 changed (0 recreated), 1 unchanged"
has "reload: the change is logged" "$(cat up.log)" 'service=cache msg="reload: changed (healthcheck/restart)"'
eq "after: the services" "$(jget "$(api http://localhost/v1/services)" '[s["name"] for s in v["services"]]')" "['cache', 'steady', 'fresh']"
eq "changed: the new retries apply" "$(jget "$(svc cache)" 'v["retries"]')" 5
check "changed: state and counts kept (not reset)" test "$(jget "$(svc cache)" 'v["checks_total"]')" -ge "$cache_checks"
eq "changed: still healthy" "$(jget "$(svc cache)" 'v["state"]')" healthy
# (since is kept on the monitor's clock and shown in wall time: +-1 ms)
eq "unchanged: not touched (same since)" "$(jget "$(svc steady)" "abs(__import__('datetime').datetime.fromisoformat(v['since'][:-1]).timestamp() - __import__('datetime').datetime.fromisoformat('$steady_since'[:-1]).timestamp()) < 0.005")" True
eq "removed: 404" "$(code GET /v1/services/gone)" 404
wait_for "added: checked and healthy" sh -c "curl -s --unix-socket $SOCK http://localhost/v1/services/fresh | grep -q '\"healthy\":true'"
eq "added: its config" "$(jget "$(svc fresh)" '(v["retries"], v["external"])')" "(3, True)"
has "metrics follow the reload" "$(api http://localhost/metrics)" 'tanuki_svc_up{service="fresh"} 1'
hasnt "metrics drop the removed service" "$(api http://localhost/metrics)" 'service="gone"'
# A change of state after the reload still reaches the stream (observers kept).
# (once its headers are in: a fixed sleep may be too short on a loaded machine)
curl -sN --max-time 30 -D events.hdr --unix-socket "$SOCK" http://localhost/v1/events >events.out &
PIDS+=("$!")
wait_for "the event stream" grep -q '^HTTP/1.1 200' events.hdr
stop_pid "$REDIS_PID" # the one on P3: fresh
wait_for "an event for the added service" grep -q '"service":"fresh"' events.out
has "events: the added service goes unhealthy" "$(cat events.out)" '"to":"unhealthy"'

# A broken file: rejected, logged, the old config keeps running.
cp tanuki.yaml good.yaml
printf 'services:\n  cache:\n    port: [oops\n' >tanuki.yaml
kill -HUP "$UP_PID"
wait_for "the rejection" grep -q "reload rejected" up.log
has "broken: the error is logged with file:line" "$(grep 'reload rejected' up.log)" "tanuki.yaml:"
has "broken: says the old config keeps running" "$(cat up.log)" "the old one keeps running"
eq "broken: the services are as before" "$(jget "$(api http://localhost/v1/services)" '[s["name"] for s in v["services"]]')" "['cache', 'steady', 'fresh']"
eq "broken: still checking" "$(code GET /readyz)" 503 # fresh is down, cache and steady fine
eq "broken: cache still healthy" "$(jget "$(svc cache)" '(v["healthy"], v["retries"])')" "(True, 5)"

# Settings a reload cannot apply: rejected the same way.
cp good.yaml tanuki.yaml
printf 'docker:\n  network: another-net\n' >>tanuki.yaml
kill -HUP "$UP_PID"
wait_for "the docker section rejection" grep -q "docker.network changed" up.log
eq "docker.network: services unchanged" "$(jget "$(api http://localhost/v1/services)" '[s["name"] for s in v["services"]]')" "['cache', 'steady', 'fresh']"

# POST /v1/reload does the same as SIGHUP and answers with the summary.
cp good.yaml tanuki.yaml
sed -i 's/retries: 5/retries: 4/' tanuki.yaml
body=$(api -X POST http://localhost/v1/reload)
eq "POST /v1/reload: ok" "$(jget "$body" 'v["ok"]')" True
has "POST /v1/reload: the summary" "$(jget "$body" 'v["changes"]')" "1 changed"
eq "POST /v1/reload: applied" "$(jget "$(svc cache)" 'v["retries"]')" 4
printf 'services: [\n' >tanuki.yaml
eq "POST /v1/reload of a bad file: 400" "$(code POST /v1/reload)" 400
kill -TERM "$UP_PID"; wait "$UP_PID"; rc=$?
eq "clean exit after reloads" "$rc" 0
no_sanitizer_reports up.log
finish
