#!/usr/bin/env bash
# The HTTP API end to end: curl over the unix socket and TCP, every endpoint,
# the malformed cases, promtool on /metrics, the socket's mode and owner.
. "$(dirname "$0")/lib.sh"

RP=$(free_port); TP=$(free_port); DEAD=$(free_port)
REDIS_AUTH=api-pw-7 start_redis "$RP" --requirepass api-pw-7
cat >tanuki.yaml <<YAML
monitor:
  listen: 127.0.0.1:$TP
services:
  cache:
    image: redis:7
    port: $RP
    external: true
    environment: {REDIS_PASSWORD: "api-pw-7"}
    healthcheck: {probe: redis, interval: 300ms, timeout: 200ms, retries: 2, start_period: 1s, history: 5}
  we.ird:
    port: $DEAD
    external: true
    healthcheck: {probe: tcp, interval: 300ms, timeout: 200ms, retries: 1, start_period: 0s}
  off:
    enabled: false
    port: $DEAD
    external: true
YAML
ulimit -Sn 512 # below the hard limit: up raises its own (cmd_up.c)
up_fg
wait_for "cache healthy" sh -c "curl -s --unix-socket $SOCK http://localhost/v1/services/cache | grep -q '\"healthy\":true'"
wait_for "we.ird unhealthy" sh -c "curl -s --unix-socket $SOCK http://localhost/v1/services/w%65.ird | grep -q '\"state\":\"unhealthy\"'"

# Open files: a socket per check in flight and per held session; up takes
# the hard limit, whatever soft limit it was started with.
eq "up raised its open-files soft limit to the hard one" \
  "$(awk '/^Max open files/ { print ($4 == $5) ? "raised" : $4 " of " $5 }' "/proc/$UP_PID/limits")" raised

# ---- the socket ----
eq "socket mode 0600" "$(stat -c %a "$SOCK")" 600
eq "socket owner" "$(stat -c %U "$SOCK")" root
chmod 755 "$T" "$T/.tanuki" # let nobody reach the socket itself
out=$(runuser -u nobody -- curl -sS --max-time 5 --unix-socket "$SOCK" http://localhost/v1/services 2>&1); rc=$?
check "another user cannot use the socket (curl fails)" test "$rc" -ne 0
out=$(runuser -u nobody -- python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$SOCK" 2>&1)
has "... connect(2) as nobody: permission denied" "$out" "Permission denied"
out=$(runuser -u nobody -- "$NOBODY_BIN" status -c "$T/tanuki.yaml" 2>&1); rc=$?
eq "status as another user: exit 3" "$rc" 3
has "... says why" "$out" "Permission denied"

# ---- GET /v1/services ----
body=$(api http://localhost/v1/services)
eq "list: runtime" "$(jget "$body" 'v["runtime"] in ("docker","process")')" True
eq "list: names" "$(jget "$body" '",".join(s["name"] for s in v["services"])')" "cache,we.ird,off"
eq "list: no history in the list" "$(jget "$body" '"history" in v["services"][0]')" False
eq "list: cache healthy" "$(jget "$body" 'v["services"][0]["healthy"]')" True
eq "list: off disabled and stopped" "$(jget "$body" '(v["services"][2]["enabled"], v["services"][2]["state"])')" "(False, 'stopped')"
eq "list: never is null" "$(jget "$body" 'v["services"][2]["last_check"]')" None
has "list: RFC 3339 UTC" "$(jget "$body" 'v["services"][0]["since"]')" "Z"
check "list: since parses as RFC 3339" python3 -c "import json,sys,datetime; datetime.datetime.strptime(json.loads(sys.argv[1])['services'][0]['last_check'], '%Y-%m-%dT%H:%M:%S.%fZ')" "$body"
eq "list: every documented field" "$(jget "$body" 'sorted(v["services"][0].keys()) == sorted(["name","state","healthy","running","enabled","external","probe","container","pid","since","last_check","last_healthy","next_check","consecutive_failures","consecutive_successes","retries","success_threshold","checks_total","failures_total","restarts_total","restarts_in_window","max_restarts","last_error","last_latency_ms","waiting_for","wait_until","checks_by_result","probe_via","probe_address"])')" True
eq "list: an external service is probed on this machine" "$(jget "$body" '(v["services"][0]["probe_via"], v["services"][0]["probe_address"])')" "('host', '127.0.0.1:$RP')"

# ---- GET /v1/services/{name} ----
body=$(api http://localhost/v1/services/cache)
eq "one: name" "$(jget "$body" 'v["name"]')" cache
eq "one: history capped at 5" "$(jget "$body" '0 < len(v["history"]) <= 5')" True
eq "one: history record" "$(jget "$body" 'sorted(v["history"][-1].keys())')" "['end', 'exit_code', 'latency_ms', 'message', 'output', 'probe_address', 'result', 'start']"
eq "one: a record's address" "$(jget "$body" 'v["history"][-1]["probe_address"]')" "127.0.0.1:$RP"
eq "one: last result ok, PONG" "$(jget "$body" '(v["history"][-1]["result"], v["history"][-1]["message"])')" "('ok', 'PONG')"
body=$(api "http://localhost/v1/services/w%65.ird")
eq "percent-encoded name" "$(jget "$body" '(v["name"], v["state"], v["history"][-1]["result"])')" "('we.ird', 'unhealthy', 'refused')"
has "last_error says refused" "$(jget "$body" 'v["last_error"]')" "refused"

# ---- POST actions ----
body=$(api -X POST http://localhost/v1/services/cache/check)
eq "check: 200 with the status" "$(jget "$body" '(v["service"], v["action"], v["ok"], v["status"]["healthy"])')" "('cache', 'check', True, True)"
before=$(jget "$(api http://localhost/v1/services/cache)" 'v["checks_total"]')
api -X POST http://localhost/v1/services/cache/check >/dev/null
after=$(jget "$(api http://localhost/v1/services/cache)" 'v["checks_total"]')
check "check: ran a check now" test "$after" -gt "$before"
eq "restart of an external service: 409" "$(code POST /v1/services/cache/restart)" 409
has "... with the reason" "$(api -X POST http://localhost/v1/services/cache/stop)" "external"
eq "start of an unknown service: 404" "$(code POST /v1/services/nope/start)" 404
eq "check of a disabled service: 409" "$(code POST /v1/services/off/check)" 409
has "... naming the state it is in" "$(api -X POST http://localhost/v1/services/off/check)" '{"error":"off is not checked now: it is stopped"}'

# ---- errors ----
eq "unknown path: 404" "$(code GET /v2/things)" 404
has "unknown path: JSON error" "$(api http://localhost/v2/things)" '{"error":"no such endpoint: /v2/things"}'
eq "unknown service: 404" "$(code GET /v1/services/nope)" 404
has "unknown service: JSON error" "$(api http://localhost/v1/services/nope)" "no service named 'nope'"
eq "unknown action: 404" "$(code POST /v1/services/cache/explode)" 404
eq "too deep: 404" "$(code GET /v1/services/cache/check/x)" 404
eq "bad percent-encoding: 400" "$(code GET '/v1/services/%zz')" 400
has "bad percent-encoding: JSON error" "$(curl -s --path-as-is --unix-socket "$SOCK" 'http://localhost/v1/services/%4')" "percent-encoding"
eq "encoded NUL: 400" "$(code GET '/v1/services/a%00b')" 400
eq "GET on an action: 405" "$(code GET /v1/services/cache/restart)" 405
hdr=$(curl -s -D - -o /dev/null -X GET --unix-socket "$SOCK" http://localhost/v1/services/cache/restart)
has "405 says Allow: POST" "$hdr" "Allow: POST"
hdr=$(curl -s -D - -o /dev/null -X DELETE --unix-socket "$SOCK" http://localhost/v1/services)
has "DELETE: 405 with Allow: GET, HEAD" "$hdr" "Allow: GET, HEAD"
eq "PUT on metrics: 405" "$(code PUT /metrics)" 405
eq "HEAD works" "$(curl -s -I -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" http://localhost/v1/services)" 200
head -c 200000 /dev/zero >big
eq "huge body with Content-Length: 413" "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @big --unix-socket "$SOCK" http://localhost/v1/services/cache/check)" 413
eq "huge chunked body: 413" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' --data-binary @big --unix-socket "$SOCK" http://localhost/v1/services/cache/check)" 413
has "413: JSON error" "$(curl -s -X POST --data-binary @big --unix-socket "$SOCK" http://localhost/v1/services/cache/check)" "too large"
long=$(head -c 40000 /dev/zero | tr '\0' a)
c=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" "http://localhost/v1/services/$long")
check "huge URL: a 4xx ($c)" test "$c" -ge 400 -a "$c" -lt 500
c=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $long" --unix-socket "$SOCK" http://localhost/livez)
check "huge header: a 4xx ($c)" test "$c" -ge 400 -a "$c" -lt 500
# Garbage instead of HTTP, and a client that sends half a request and stays.
printf 'NOT HTTP AT ALL\r\n\r\n' | timeout 5 python3 -c '
import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read()); s.settimeout(4); print(s.recv(100).split(b"\r\n")[0].decode())' "$SOCK" >garbage.out 2>&1
has "garbage: a 400" "$(cat garbage.out)" "400"
python3 -c '
import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n"); time.sleep(30)' "$SOCK" &
HALF=$!; PIDS+=("$HALF")
eq "a half-sent request holds nothing up" "$(code GET /livez)" 200
stop_pid "$HALF"

# ---- livez / readyz ----
body=$(api http://localhost/livez)
eq "livez: 200" "$(code GET /livez)" 200
eq "livez: ok, a recent heartbeat" "$(jget "$body" '(v["status"], v["age_ms"] < 3000)')" "('ok', True)"
body=$(api http://localhost/readyz)
eq "readyz: 503 while 'we.ird' is down" "$(code GET /readyz)" 503
eq "readyz: names the one not ready, not the disabled one" "$(jget "$body" '(v["ready"], [s["name"] for s in v["not_ready"]], v["not_ready"][0]["state"])')" "(False, ['we.ird'], 'unhealthy')"
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(50); time.sleep(60)' "$DEAD" &
LISTENER=$!; PIDS+=("$LISTENER")
wait_for "readyz 200" sh -c "test \$(curl -s -o /dev/null -w '%{http_code}' --unix-socket $SOCK http://localhost/readyz) = 200"
eq "readyz: 200 once every enabled service is healthy" "$(jget "$(api http://localhost/readyz)" '(v["ready"], v["enabled"], v["not_ready"])')" "(True, 2, [])"

# ---- events ----
# The stream is open once its headers are in (a fixed sleep is not enough
# on a loaded machine: the change would come before the stream).
curl -sN --max-time 30 -D events.hdr --unix-socket "$SOCK" http://localhost/v1/events >events.out &
EV=$!; PIDS+=("$EV")
wait_for "the event stream" grep -q '^HTTP/1.1 200' events.hdr
stop_pid "$LISTENER"
wait_for "an event line" grep -q '"to":"unhealthy"' events.out
line=$(grep '"to":"unhealthy"' events.out | head -1)
eq "event: one JSON object per line" "$(jget "$line" '(v["service"], v["from"], v["to"], v["failures"], v["retries"])')" "('we.ird', 'healthy', 'unhealthy', 1, 1)"
has "event: reason" "$(jget "$line" 'v["reason"]')" "refused"
eq "event: time is RFC 3339 UTC" "$(jget "$line" 'v["time"][-1] + v["time"][10]')" "ZT"
stop_pid "$EV"
# A client that goes away is noticed, and a second stream works.
curl -sN --max-time 2 --unix-socket "$SOCK" http://localhost/v1/events >/dev/null
eq "events: content type" "$(curl -s -I --max-time 3 --unix-socket "$SOCK" http://localhost/v1/events | tr -d '\r' | grep -i '^content-type' )" "Content-Type: application/x-ndjson"

# ---- metrics ----
api http://localhost/metrics >metrics.txt
out=$(promtool check metrics <metrics.txt 2>&1); rc=$?
eq "promtool check metrics passes ($out)" "$rc" 0
m=$(cat metrics.txt)
for fam in tanuki_svc_up tanuki_svc_state tanuki_svc_checks_total tanuki_svc_check_duration_seconds tanuki_svc_restarts_total tanuki_svc_consecutive_failures tanuki_svc_last_change_timestamp_seconds; do
  has "metrics: HELP and TYPE of $fam" "$m" "# TYPE $fam "
done
has "metrics: up of cache" "$m" 'tanuki_svc_up{service="cache"} 1'
has "metrics: one series per state" "$m" 'tanuki_svc_state{service="cache",state="healthy"} 1'
has "metrics: ... 0 for the others" "$m" 'tanuki_svc_state{service="cache",state="failed"} 0'
has "metrics: label of a dotted name" "$m" 'tanuki_svc_up{service="we.ird"} 0'
has "metrics: +Inf bucket" "$m" 'tanuki_svc_check_duration_seconds_bucket{service="cache",le="+Inf"}'
inf=$(grep 'tanuki_svc_check_duration_seconds_bucket{service="cache",le="+Inf"}' metrics.txt | awk '{print $2}')
cnt=$(grep 'tanuki_svc_check_duration_seconds_count{service="cache"}' metrics.txt | awk '{print $2}')
eq "metrics: _count equals the +Inf bucket" "$cnt" "$inf"
ok_checks=$(grep 'tanuki_svc_checks_total{service="cache",result="ok"}' metrics.txt | awk '{print $2}')
check "metrics: checks_total{result=ok} counts" test "$ok_checks" -gt 0
has "metrics: content type" "$(curl -s -D - -o /dev/null --unix-socket "$SOCK" http://localhost/metrics)" "text/plain; version=0.0.4"

# ---- GET /v1/env ----
body=$(api "http://localhost/v1/env")
eq "env: the host view by default" "$(jget "$body" '(v["view"], v["secrets"], v["shared_host"])')" "('host', True, False)"
eq "env: enabled services with a port" "$(jget "$body" '[s["name"] for s in v["services"]]')" "['cache', 'we.ird']"
eq "env: every documented field" "$(jget "$body" 'sorted(v["services"][0].keys())')" "['database', 'dsn', 'host', 'kind', 'name', 'password', 'port', 'prefix', 'state', 'url', 'username']"
eq "env: cache" "$(jget "$body" '[v["services"][0][k] for k in ("prefix","kind","host","port","url","password","state")]')" "['REDIS', 'redis', '127.0.0.1', $RP, 'redis://default:api-pw-7@127.0.0.1:$RP', 'api-pw-7', 'healthy']"
eq "env: we.ird" "$(jget "$body" '[v["services"][1][k] for k in ("prefix","url","state")]')" "['WE_IRD', '127.0.0.1:$DEAD', 'unhealthy']"
eq "env: variables" "$(jget "$body" 'list(v["variables"].items())')" "[('REDIS_HOST', '127.0.0.1'), ('REDIS_PORT', '$RP'), ('REDIS_URL', 'redis://default:api-pw-7@127.0.0.1:$RP'), ('REDIS_PASSWORD', 'api-pw-7'), ('WE_IRD_HOST', '127.0.0.1'), ('WE_IRD_PORT', '$DEAD'), ('WE_IRD_URL', '127.0.0.1:$DEAD')]"
body=$(api "http://localhost/v1/env?view=network")
eq "env?view=network" "$(jget "$body" '(v["view"], v["services"][0]["host"])')" "('network', '127.0.0.1')"
eq "env?view=bogus: 400" "$(code GET '/v1/env?view=bogus')" 400
has "... naming the view" "$(api 'http://localhost/v1/env?view=bogus')" "unknown view 'bogus' (use view=host or view=network)"
eq "env: POST: 405" "$(code POST /v1/env)" 405

# ---- TCP: read-only ----
eq "tcp: GET /v1/services" "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$TP/v1/services)" 200
eq "tcp: metrics pass promtool" "$(curl -s http://127.0.0.1:$TP/metrics | promtool check metrics >/dev/null 2>&1; echo $?)" 0
eq "tcp: livez" "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$TP/livez)" 200
eq "tcp: POST refused with 403" "$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:$TP/v1/services/cache/check)" 403
body=$(curl -s "http://127.0.0.1:$TP/v1/env")
eq "tcp: env leaves the secrets out" "$(jget "$body" '(v["secrets"], v["services"][0]["password"], v["services"][0]["url"], "REDIS_PASSWORD" in v["variables"])')" "(False, '', 'redis://127.0.0.1:$RP', False)"
hasnt "tcp: the password is nowhere" "$body" "api-pw-7"
eq "tcp: bound to loopback only" "$(ss -ltnH "sport = :$TP" | awk '{print $4}')" "127.0.0.1:$TP"

# ---- a second monitor, a stale socket ----
out=$("$BIN" up 2>&1); rc=$?
eq "a second up is refused" "$rc" 1
has "... saying a monitor runs" "$out" "already running"
check "... and the first still answers" test "$(code GET /livez)" = 200
# Shut down with an event stream open: the stream ends, the monitor exits.
curl -sN --max-time 60 -D open.hdr --unix-socket "$SOCK" http://localhost/v1/events >/dev/null &
OPEN=$!; PIDS+=("$OPEN")
wait_for "the open stream" grep -q '^HTTP/1.1 200' open.hdr
t0=$(date +%s%N)
kill -TERM "$UP_PID"; wait "$UP_PID"; rc=$?
eq "SIGTERM: clean exit 0" "$rc" 0
# The stream would hold the exit until curl gives up (60 s); a clean exit
# takes well under a second, and 10 s leaves room for a loaded machine.
check "SIGTERM with a stream open: out within 10 s" test $(( ($(date +%s%N) - t0) / 1000000 )) -lt 10000
wait "$OPEN"; eq "the open stream ended cleanly" "$?" 0
check "the socket file is removed" test ! -e "$SOCK"
check "the pid file is removed" test ! -e "$T/.tanuki/tanuki-svc.pid"
no_sanitizer_reports "$T/up.log"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$SOCK" # stale
check "a stale socket file is there" test -S "$SOCK"
up_fg
eq "a stale socket is replaced" "$(code GET /livez)" 200
has "... and said so" "$(cat up.log)" "removing the stale socket"
kill -TERM "$UP_PID"; wait "$UP_PID"
no_sanitizer_reports "$T/up.log"

# A hard open-files limit below what the services may hold (two sockets a
# service + 1,024: 1,030 for these 3): with CAP_SYS_RESOURCE (root, unless
# a container took it away) up raises the hard limit itself; without, it
# takes the hard one and says what to raise. It runs either way.
( ulimit -Hn 1027 && exec "$BIN" up ) >"$T/up2.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_for "the monitor under a hard limit of 1027" curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/v1/services
lim=$(awk '/^Max open files/ { print $4 " " $5 }' "/proc/$UP_PID/limits")
eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
if (( (16#$eff >> 24) & 1 )); then
  eq "open files: up raised its hard limit to what 3 services need" "$lim" "1030 1030"
else
  eq "open files: up took the hard limit (no CAP_SYS_RESOURCE to raise it)" "$lim" "1027 1027"
  has "... and said what to raise" "$(cat "$T/up2.log")" "open files are limited to 1027 (RLIMIT_NOFILE), under the 1030 that 3 services may hold"
fi
kill -TERM "$UP_PID"; wait "$UP_PID"
no_sanitizer_reports "$T/up2.log"
finish
