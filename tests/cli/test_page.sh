#!/usr/bin/env bash
# The status page (GET / on the API, docs/api.md) in Debian's headless
# Chromium, driven by playwright-core (tests/node/page_test.js): a monitor of
# postgres and redis containers (docker runtime, tanuki/postgres:15 and
# tanuki/redis:7), the page loaded over monitor.listen, screenshots kept in
# the build directory (artifacts/), and after `docker kill` each service
# shown unhealthy within 2 seconds without a reload; a restart held by
# depends_on shown with what it waits for (tests/node/page_wait.js). With
# TSVC_PAGE_SHOT_TO=DIR the second screenshot is also copied there (how
# docs/status-page.png is made). Containers and the network are named
# tsvc-page-<pid>-... and removed afterwards.
# Under a sanitizer build (TSVC_SANITIZED=1, tests/CMakeLists.txt) the
# browser's side (page_test.js, page_wait.js: Chromium rendering the page
# and its script) runs in the unsanitized build only; here the instrumented
# monitor serves the page (asked with curl), the event streams, the stop and
# the held restart, which the browser would read (scripts/test.sh runs both).
. "$(dirname "$0")/lib.sh"
. "$TSVC_SOURCE_DIR/tests/node/node_setup.sh"

BROWSER=1 # Chromium: once, unsanitized
[ "${TSVC_SANITIZED:-0}" = 1 ] && BROWSER=0
if [ "$BROWSER" = 1 ]; then need docker node npm chromium; else need docker; fi
wait_for "the docker daemon" docker info || { bad "the docker daemon answers"; finish; exit 1; }
for img in tanuki/postgres:15 tanuki/redis:7; do
  docker image inspect "$img" >/dev/null 2>&1 || { bad "image $img (scripts/images.sh)"; finish; exit 1; }
done
if [ "$BROWSER" = 1 ]; then
  node_setup || { bad "npm ci of tests/node"; finish; exit 1; }
fi

TAG="tsvc-page-$$"
P1=$(free_port); P2=$(free_port); PL=$(free_port)
PGPW="pg-secret-$$-x"; KVPW="kv-secret-$$-y"
EXTRA_CLEANUP='docker rm -f -v "$TAG-pg" "$TAG-kv" "$TAG-app" >/dev/null 2>&1; docker network rm "$TAG" >/dev/null 2>&1'
cat >tanuki.yaml <<YAML
runtime: docker
docker: {network: $TAG, container_prefix: $TAG-}
monitor: {listen: "127.0.0.1:$PL"}
services:
  pg:
    image: tanuki/postgres:15
    port: $P1
    environment: {PGPORT: "$P1", POSTGRES_USER: tanuki, POSTGRES_PASSWORD: "$PGPW"}
    healthcheck: {interval: 1s, timeout: 2s, start_period: 60s, start_interval: 200ms}
    restart: {stop_timeout: 2s}
  kv:
    image: tanuki/redis:7
    port: $P2
    command: [redis-server, --port, "$P2", --requirepass, "$KVPW", --save, ""]
    healthcheck: {command: [redis-cli, -p, "$P2", -a, "$KVPW", ping], interval: 1s}
    restart: {policy: never, stop_timeout: 2s}
  app:
    image: tanuki/redis:7
    command: [redis-server, --port, "6399", --save, ""]
    healthcheck: {command: [redis-cli, -p, "6399", ping], interval: 1s}
    depends_on: {pg: {condition: service_healthy}}
    depends_timeout: 1m
    restart: {stop_timeout: 2s}
YAML
up_fg
healthy() { "$BIN" status >/dev/null 2>&1; }
for _ in $(seq 120); do healthy && break; sleep 0.5; done
healthy && ok "both healthy" || { bad "both healthy"; cat up.log; finish; exit 1; }
if [ "$BROWSER" = 1 ]; then
  # A few checks for the sparklines.
  sleep 3
  SHOTS="$(dirname "$BIN")/artifacts"
  mkdir -p "$SHOTS"
  PAGE_CTR_PREFIX="$TAG-" PAGE_ALSO=app timeout 240 node "$TSVC_SOURCE_DIR/tests/node/page_test.js" \
    "http://127.0.0.1:$PL/" "$SHOTS" kv pg "$PGPW" "$KVPW" | tee "$T/page.log"
  rcs=("${PIPESTATUS[@]}")
  n=$(grep -c '^ok ' "$T/page.log"); CHECKS=$((CHECKS + n))
  f=$(grep -c '^FAIL' "$T/page.log"); FAILS=$((FAILS + f))
  [ "${rcs[0]}" -ne 0 ] && [ "$f" -eq 0 ] && bad "page_test.js exited ${rcs[0]}"
  check "screenshot kept: $SHOTS/status-page.png" test -s "$SHOTS/status-page.png"
  if [ -n "${TSVC_PAGE_SHOT_TO:-}" ] && [ -s "$SHOTS/status-page-after.png" ]; then
    cp "$SHOTS/status-page-after.png" "$TSVC_PAGE_SHOT_TO/status-page.png"
  fi
else
  # The page as the browser gets it, from the instrumented monitor.
  hdr=$(curl -s -m 10 -D "$T/page.hdr" -o "$T/page.html" -w '%{http_code}' "http://127.0.0.1:$PL/")
  eq "GET /: 200" "$hdr" 200
  has "GET /: text/html" "$(cat "$T/page.hdr")" "Content-Type: text/html"
  hasnt "GET /: no postgres password" "$(cat "$T/page.html")" "$PGPW"
  hasnt "GET /: no redis password" "$(cat "$T/page.html")" "$KVPW"
fi

# The same events as SSE, for any EventSource; JSON lines otherwise.
hdr=$(curl -s -m 2 -D- -o /dev/null -H 'Accept: text/event-stream' "http://127.0.0.1:$PL/v1/events")
has "text/event-stream when asked" "$hdr" "Content-Type: text/event-stream"
hdr=$(curl -s -m 2 -D- -o /dev/null "http://127.0.0.1:$PL/v1/events")
has "JSON lines otherwise" "$hdr" "Content-Type: application/x-ndjson"
# pg healthy first: page_test.js killed it, and the monitor's restart may
# still be under way on a loaded machine (a CI run stopped it "starting").
pg_state() { jget "$(api "http://localhost/v1/services/pg")" 'v["state"]'; }
for _ in $(seq 240); do [ "$(pg_state)" = healthy ] && break; sleep 0.5; done
eq "pg healthy before the stop" "$(pg_state)" healthy
(curl -s -N -m 12 -H 'Accept: text/event-stream' "http://127.0.0.1:$PL/v1/events" >"$T/sse.txt" &)
sleep 1
"$BIN" stop pg >/dev/null 2>&1
for _ in $(seq 100); do grep -qF '"to":"stopped"' "$T/sse.txt" 2>/dev/null && break; sleep 0.1; done
has "an SSE event per change" "$(cat "$T/sse.txt")" 'data: {"time":'
has "SSE: the change" "$(cat "$T/sse.txt")" '"service":"pg","from":"healthy","to":"stopped"'
page=$(curl -s "http://127.0.0.1:$PL/")
hasnt "the page holds no password" "$page" "$PGPW"
has "the page holds the changes of the last hour" "$page" '"to":"stopped"'
# A held restart: app waits for pg (stopped above); the page says so.
("$BIN" restart app >"$T/restart-app.log" 2>&1 &)
if [ "$BROWSER" = 1 ]; then
  timeout 120 node "$TSVC_SOURCE_DIR/tests/node/page_wait.js" "http://127.0.0.1:$PL/" app pg \
    | tee "$T/wait.log"
  n=$(grep -c '^ok ' "$T/wait.log"); CHECKS=$((CHECKS + n))
  f=$(grep -c '^FAIL' "$T/wait.log"); FAILS=$((FAILS + f))
  [ "$n" -eq 2 ] || bad "page_wait.js: 2 checks passed (saw $n)"
else
  # What the page's row is drawn from: app's waiting_for names pg.
  waits() { jget "$(api "http://localhost/v1/services/app")" \
    '",".join(w["service"] + ":" + w["condition"] for w in v["waiting_for"])'; }
  for _ in $(seq 100); do [ "$(waits)" = pg:service_healthy ] && break; sleep 0.1; done
  eq "app's held restart waits for pg (waiting_for)" "$(waits)" pg:service_healthy
fi
no_sanitizer_reports up.log
finish
