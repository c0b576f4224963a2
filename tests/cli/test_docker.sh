#!/usr/bin/env bash
# Services we run (docker runtime, image tanuki/redis:7 from scripts/images.sh):
# start/stop/restart/logs/down through the monitor and without one, and a
# reload that changes the environment (the container is recreated).
. "$(dirname "$0")/lib.sh"

# The daemon is shared: give it a moment if it is being restarted.
wait_for "the docker daemon" docker info
if ! docker image inspect tanuki/redis:7 >/dev/null 2>&1; then
  # Under CI (scripts/test.sh: TSVC_REQUIRE_DOCKER=1) a missing engine or
  # image fails; else the test is skipped, and counted so.
  if [ "${TSVC_REQUIRE_DOCKER:-}" = 1 ]; then
    echo "FAIL - TSVC_REQUIRE_DOCKER=1 but no docker daemon or no tanuki/redis:7 image"; exit 1
  fi
  echo "SKIP: no docker daemon or no tanuki/redis:7 image (scripts/images.sh)"; exit 77
fi
TAG="tsvc-apitest-$$"
P=$(free_port)
# The image's VOLUME /data is an anonymous volume: a recreation hands it to
# the new container (which then names it), so the cleanup removes it by name.
# The second monitor (up -d of the busy project) is stopped by its pid first.
EXTRA_CLEANUP='[ -f "$T/busy/.tanuki/tanuki-svc.pid" ] && stop_pid "$(cat "$T/busy/.tanuki/tanuki-svc.pid")"; docker rm -f -v "${TAG}-kv" "${TAG}-b-busy" "${TAG}-envprobe" >/dev/null 2>&1; docker network rm "$TAG" >/dev/null 2>&1; [ -n "${VOL_A:-}" ] && docker volume rm "$VOL_A" >/dev/null 2>&1'
write_config() { # $1: FOO, $2: retries
  cat >tanuki.yaml <<YAML
runtime: docker
docker: {network: $TAG, container_prefix: $TAG-}
services:
  kv:
    image: tanuki/redis:7
    port: $P
    command: [redis-server, --port, "$P", --save, ""]
    environment: {FOO: $1}
    healthcheck: {probe: redis, interval: 500ms, timeout: 1s, retries: $2, start_period: 30s, start_interval: 200ms}
    restart: {stop_timeout: 2s}
YAML
}
cid() { docker inspect -f '{{.Id}}' "$TAG-kv" 2>/dev/null; }
running() { docker inspect -f '{{.State.Running}}' "$TAG-kv" 2>/dev/null; }
healthy() { "$BIN" status kv >/dev/null 2>&1; }
write_config one 2
up_fg
wait_for "kv healthy" healthy || { bad "kv healthy"; cat up.log; exit 1; }
A=$(cid)
eq "the container is ours" "$(docker inspect -f '{{index .Config.Labels "tanuki.service"}}' "$TAG-kv")" kv
eq "status shows the container" "$(jget "$(api http://localhost/v1/services/kv)" 'v["container"]["id"]')" "$A"
# Over the unix socket the engine is not asked its name: none is shown
# (it once read "docker engine ? at unix://...").
has "the log names the engine's socket" "$(cat up.log)" "docker engine at unix://"
hasnt "... and no unknown name" "$(cat up.log)" "docker engine ?"

# env: the host's view answers on the host, --network's from a container on
# the project's network (the container's name, the container port).
run env
eq "env: REDIS_URL (host view) answers on the host" "$(eval "$OUT"; redis-cli -u "$REDIS_URL" ping 2>&1)" PONG
run env --network
has "env --network: REDIS_HOST is the container's name" "$OUT" "export REDIS_HOST='$TAG-kv'"
url=$(eval "$OUT"; echo "$REDIS_URL")
eq "env --network: REDIS_URL" "$url" "redis://$TAG-kv:$P"
eq "env --network: REDIS_URL answers from a container on the network" \
  "$(docker run --rm --name "$TAG-envprobe" --network "$TAG" tanuki/redis:7 redis-cli -u "$url" ping 2>&1)" PONG

run stop kv
eq "stop: exit 0" "$RC" 0
has "stop: says so" "$OUT" "kv: stopped"
eq "stop: the container is stopped" "$(running)" false
sleep 1.5
eq "stop: the monitor leaves it stopped" "$(jget "$(api http://localhost/v1/services/kv)" 'v["state"]')" stopped
eq "stop: still not running" "$(running)" false
run status kv
eq "status of a stopped service: exit 1" "$RC" 1
run start kv
eq "start: exit 0" "$RC" 0
wait_for "kv healthy after start" healthy && ok "start: healthy again" || bad "start: healthy again"
before=$(jget "$(api http://localhost/v1/services/kv)" 'v["restarts_total"]')
run restart kv
eq "restart: exit 0" "$RC" 0
eq "restart: counted" "$(jget "$(api http://localhost/v1/services/kv)" 'v["restarts_total"] > '"$before")" True
wait_for "kv healthy after restart" healthy && ok "restart: healthy again" || bad "restart: healthy again"
run logs kv --tail 50
eq "logs: exit 0" "$RC" 0
has "logs: the container's output" "$OUT" "Ready to accept connections"
eq "logs --tail 1: one line" "$("$BIN" logs kv --tail 1 | wc -l)" 1
term_after "logs -f ends on SIGTERM" 3 follow.out "$BIN" logs kv -f --tail 2
check "logs -f streams until stopped" grep -q "Ready to accept connections" follow.out

# Reload: the environment changed -> recreated; only retries changed -> kept.
# What the old container wrote in its anonymous volume (the image's VOLUME
# /data) is in the new one.
docker exec "$TAG-kv" sh -c 'echo kept-across-recreation > /data/marker'
VOL_A=$(docker inspect -f '{{range .Mounts}}{{.Name}}{{end}}' "$TAG-kv")
write_config two 2
kill -HUP "$UP_PID"
wait_for "the reload" grep -q "1 changed (1 recreated)" up.log
wait_for "kv healthy after the reload" healthy && ok "reload: healthy again" || bad "reload: healthy again"
B=$(cid)
check "reload with a new environment: a new container" test -n "$B" -a "$B" != "$A"
has "reload: the new environment is in it" "$(docker inspect -f '{{json .Config.Env}}' "$TAG-kv")" "FOO=two"
eq "reload: the anonymous volume is handed over" "$(docker inspect -f '{{range .Mounts}}{{.Name}}{{end}}' "$TAG-kv")" "$VOL_A"
eq "reload: its data is still there" "$(docker exec "$TAG-kv" cat /data/marker)" kept-across-recreation
write_config two 4
kill -HUP "$UP_PID"
wait_for "the second reload" grep -q "1 changed (0 recreated)" up.log
eq "reload of health knobs: the same container" "$(cid)" "$B"
eq "reload of health knobs: applied" "$(jget "$(api http://localhost/v1/services/kv)" 'v["retries"]')" 4

run down
eq "down: exit 0" "$RC" 0
wait "$UP_PID"
eq "down: the container is stopped" "$(running)" false
check "down: the container is kept (volumes too)" test -n "$(cid)"
no_sanitizer_reports up.log

# No monitor: act directly through the runtime.
run start kv
eq "start without a monitor: exit 0" "$RC" 0
has "... acting directly" "$ERR" "acting directly"
has "... not monitored" "$OUT" "not monitored"
eq "... the container runs" "$(running)" true
wait_for "kv answers" healthy && ok "status without a monitor probes it" || bad "status without a monitor probes it"
run down
eq "down without a monitor: exit 0" "$RC" 0
eq "... the container is stopped" "$(running)" false

# up -d when a service cannot start (its port is taken): exit 1 naming it
# with the daemon's words; the monitor stays, retries it on the backoff
# schedule, and it turns healthy once the port is free.
mkdir "$T/busy"
BUSY="$T/busy/tanuki.yaml"
HELD=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(600)' "$HELD" &
HOLD_PID=$!
PIDS+=("$HOLD_PID")
wait_for "the port held" python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$HELD"
cat >"$BUSY" <<YAML
runtime: docker
docker: {network: $TAG, container_prefix: $TAG-b-}
services:
  busy:
    image: tanuki/redis:7
    port: $HELD
    command: [redis-server, --port, "$HELD", --save, ""]
    healthcheck: {probe: redis, interval: 500ms, timeout: 1s, start_interval: 200ms}
    restart: {backoff: 200ms, max_backoff: 1s, max_restarts: 50, stop_timeout: 2s}
YAML
run up -d -c "$BUSY"
eq "up -d with a port taken: exit 1" "$RC" 1
has "... names the service" "$ERR" "could not start busy: "
has "... with the daemon's words" "$ERR" "127.0.0.1:$HELD"
has "... and says the monitor retries it" "$ERR" "retries them on the restart backoff schedule"
BUSY_PID=$(cat "$T/busy/.tanuki/tanuki-svc.pid" 2>/dev/null)
check "... the monitor runs on" kill -0 "$BUSY_PID"
has "... and the log says it as the foreground up does" "$(cat "$T/busy/.tanuki/tanuki-svc.log")" "monitoring 1 services on the docker runtime; could not start: busy (retried on the restart backoff schedule)"
eq "... busy is retried, not stopped" "$(jget "$("$BIN" status -c "$BUSY" --json busy)" 'v["state"] in ("unhealthy", "starting")')" True
stop_pid "$HOLD_PID"
wait_for "busy healthy once the port is free" "$BIN" status -c "$BUSY" busy && ok "busy: healthy once the port is free" || bad "busy: healthy once the port is free"
has "busy: the log has the failed start" "$(cat "$T/busy/.tanuki/tanuki-svc.log")" "action=start_failed"
has "busy: ... and its retry" "$(cat "$T/busy/.tanuki/tanuki-svc.log")" "action=start state=starting prev=unhealthy"
run down -c "$BUSY"
eq "busy: down: exit 0" "$RC" 0
no_sanitizer_reports "$T/busy/.tanuki/tanuki-svc.log"
finish
