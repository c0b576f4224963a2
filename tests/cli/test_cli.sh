#!/usr/bin/env bash
# The CLI end to end against a running monitor (text, --json, exit codes),
# without one (acting directly), and `status --watch` driven in tmux.
. "$(dirname "$0")/lib.sh"

RP=$(free_port); DEAD=$(free_port)
REDIS_AUTH=s3cretpass start_redis "$RP" --requirepass s3cretpass
cat >tanuki.yaml <<YAML
services:
  redis:
    image: redis:7
    port: $RP
    external: true
    environment: {REDIS_PASSWORD: s3cretpass}
    healthcheck: {probe: redis, interval: 300ms, timeout: 200ms, retries: 2, start_period: 1s}
  postgres:
    image: postgres:16
    port: $DEAD
    external: true
    environment: {POSTGRES_USER: tanuki, POSTGRES_PASSWORD: "p@ss word", POSTGRES_DB: tanuki_dev}
    healthcheck: {probe: tcp, interval: 300ms, timeout: 200ms, retries: 1, start_period: 0s}
  api-server:
    port: 8088
    enabled: false
    external: true
YAML

# ---- help, version, usage: no monitor needed ----
for verb in up down start stop restart status check logs config env version; do
  run $verb --help
  eq "$verb --help: exit 0" "$RC" 0
  has "$verb --help: usage on stdout" "$OUT" "usage: tanuki-svc $verb"
done
for verb in up down start stop restart status check logs env; do
  run $verb --help
  has "$verb --help: documents the exit codes" "$OUT" "Exit:"
done
run --help
has "--help lists every verb" "$OUT" "restart"
has "--help documents exit code 3" "$OUT" "3 cannot reach"
run version
has "version" "$OUT" "tanuki-svc 0."
run frobnicate; eq "unknown verb: exit 2" "$RC" 2
run status --bogus; eq "unknown option: exit 2" "$RC" 2
run start; eq "start without NAME: exit 2" "$RC" 2
run logs; eq "logs without NAME: exit 2" "$RC" 2
run env --format xml; eq "env --format xml: exit 2" "$RC" 2
run status -c "$T/missing.yaml"; eq "status with a missing config: exit 1" "$RC" 1
run status --jsn; has "unknown option: named" "$ERR" "unknown option '--jsn'"
run logs redis -n lots; has "bad value: the option named" "$ERR" "option -n/--tail: 'lots'"
run status a b; has "surplus operand: named" "$ERR" "unexpected operand 'b'"

# ---- one parser for every verb: -c FILE before, after and between the
# operands, in each spelling; the FILE is read (a missing one: exit 1, named).
reads_file() { # reads_file ARGS...: the program read the missing FILE $M
  run "$@"
  if [ "$RC" = 1 ] && grep -qF "$M" <<<"$ERR"; then ok "$*: reads FILE"
  else bad "$*: reads FILE: exit $RC: $ERR"; fi
}
M="$T/missing dir/m.yaml"
for spec in up down "start redis postgres" "stop redis" "restart redis" status "status redis" \
            "check redis" "logs redis" "config validate" "config show" env; do
  read -r -a w <<<"$spec"
  reads_file "${w[@]}" -c "$M"
  reads_file "${w[0]}" -c "$M" "${w[@]:1}"
  reads_file "${w[@]}" --config="$M"
  reads_file "${w[0]}" --config "$M" "${w[@]:1}"
  reads_file "${w[0]}" "-c$M" "${w[@]:1}"
  [ ${#w[@]} -gt 2 ] && reads_file "${w[0]}" "${w[1]}" -c "$M" "${w[@]:2}"
done

# ---- env ----
# TANK-045's names; the host view: 127.0.0.1 and the published port.
run env
eq "env: exit 0" "$RC" 0
has "env: REDIS_URL with the password" "$OUT" "export REDIS_URL='redis://default:s3cretpass@127.0.0.1:$RP'"
has "env: REDIS_PASSWORD" "$OUT" "export REDIS_PASSWORD='s3cretpass'"
has "env: POSTGRES_HOST" "$OUT" "export POSTGRES_HOST='127.0.0.1'"
has "env: POSTGRES_URL is host:port (TANK-045)" "$OUT" "export POSTGRES_URL='127.0.0.1:$DEAD'"
has "env: POSTGRES_DSN escapes the password" "$OUT" "export POSTGRES_DSN='postgres://tanuki:p%40ss%20word@127.0.0.1:$DEAD/tanuki_dev'"
has "env: POSTGRES_DATABASE" "$OUT" "export POSTGRES_DATABASE='tanuki_dev'"
has "env: POSTGRES_DB kept" "$OUT" "export POSTGRES_DB='tanuki_dev'"
hasnt "env: a disabled service has no variables" "$OUT" "API_SERVER_"
hasnt "env: no warning without a monitor" "$ERR" "warning"
(eval "$OUT"; test "$POSTGRES_PASSWORD" = "p@ss word" && test "$REDIS_PORT" = "$RP") && ok "env: eval gives the values" || bad "env: eval gives the values"
out=$(eval "$OUT"; redis-cli -u "$REDIS_URL" ping 2>/dev/null)
eq "env: redis-cli -u \$REDIS_URL answers" "$out" "PONG"
run env --format json
eq "env --format json" "$(jget "$OUT" '(v["POSTGRES_DB"], v["POSTGRES_USER"], v["REDIS_HOST"], v["POSTGRES_DSN"])')" "('tanuki_dev', 'tanuki', '127.0.0.1', 'postgres://tanuki:p%40ss%20word@127.0.0.1:$DEAD/tanuki_dev')"
run env --only redis --prefix TANUKI_
eq "env --only --prefix: exactly redis's, prefixed" "$(grep -c '^export ' <<<"$OUT") $(grep -c '^export TANUKI_REDIS_' <<<"$OUT")" "4 4"
run env postgres
eq "env NAME: only postgres" "$(grep -c '^export POSTGRES_' <<<"$OUT") $(grep -c '^export ' <<<"$OUT")" "8 8"
run env --only=redis,postgres
eq "env --only a,b" "$(grep -c '^export ' <<<"$OUT")" 12
run env --only nope
eq "env --only an unknown service: exit 2" "$RC" 2
has "... named" "$ERR" "no service named 'nope'"
run env api-server
has "env NAME of a disabled service: says so" "$ERR" "api-server is disabled"
run env --prefix 9x
eq "env --prefix not a name: exit 2" "$RC" 2
has "... says why" "$ERR" "letters, digits and '_'"
# External services are no containers of ours: the host's values in both views.
run env --network
eq "env --network: external services keep 127.0.0.1" "$(grep -E '^export (REDIS|POSTGRES)_HOST=' <<<"$OUT" | sort | tr '\n' ' ')" "export POSTGRES_HOST='127.0.0.1' export REDIS_HOST='127.0.0.1' "

# env --network: the view from a container on the project's network.
mkdir -p "$T/net"
cat >"$T/net/tanuki.yaml" <<YAML
runtime: docker
docker: {container_prefix: pfx-}
services:
  db:
    image: postgres:16
    port: "15432:5432"
    environment: {POSTGRES_USER: u, POSTGRES_PASSWORD: "a/b:c", POSTGRES_DB: "my db"}
  cache: {image: redis:7-alpine, port: "16379:6379"}
  web: {image: nginx, port: 8080}
YAML
run env --network -c "$T/net/tanuki.yaml" --format json
eq "env --network: container name and container port" "$(jget "$OUT" '(v["POSTGRES_HOST"], v["POSTGRES_PORT"], v["POSTGRES_URL"], v["REDIS_URL"], v["WEB_URL"])')" "('pfx-db', '5432', 'pfx-db:5432', 'redis://pfx-cache:6379', 'pfx-web:8080')"
eq "env --network: the DSN, escaped" "$(jget "$OUT" 'v["POSTGRES_DSN"]')" "postgres://u:a%2Fb%3Ac@pfx-db:5432/my%20db"
run env -c "$T/net/tanuki.yaml" --format json
eq "env (host view): 127.0.0.1 and the published port" "$(jget "$OUT" '(v["POSTGRES_HOST"], v["POSTGRES_PORT"], v["REDIS_URL"])')" "('127.0.0.1', '15432', 'redis://127.0.0.1:16379')"
sed -i -e 's/^runtime: docker/runtime: process/' -e '/^  web:/d' "$T/net/tanuki.yaml"
run env --network -c "$T/net/tanuki.yaml" --format json
eq "env --network under the process runtime: the host's values" "$(jget "$OUT" '(v["POSTGRES_HOST"], v["POSTGRES_PORT"])')" "('127.0.0.1', '15432')"
has "... and says so" "$ERR" "no container network"

# env: a name that is no shell identifier gets a safe form; dash takes it.
mkdir -p "$T/names"
cat >"$T/names/tanuki.yaml" <<YAML
services:
  9lives: {image: x, port: 1234}
  a.b: {image: x, port: 1235}
YAML
run env -c "$T/names/tanuki.yaml"
has "env: 9lives as _9LIVES_PORT" "$OUT" "export _9LIVES_PORT='1234'"
has "env: a.b as A_B_PORT" "$OUT" "export A_B_PORT='1235'"
eq "env: dash evaluates it" "$(dash -c 'eval "$1"; echo "$_9LIVES_PORT $A_B_PORT $A_B_URL"' sh "$OUT" 2>&1)" "1234 1235 127.0.0.1:1235"
cat >>"$T/names/tanuki.yaml" <<YAML
  a_b: {image: x, port: 1236}
YAML
run config validate -c "$T/names/tanuki.yaml"
eq "config validate: two services with one env prefix: exit 1" "$RC" 1
has "... at file:line:col" "$ERR" "$T/names/tanuki.yaml:4:3: error: services.a_b: \`tanuki-svc env\` would name its variables A_B_HOST"
run env -c "$T/names/tanuki.yaml"
eq "env refuses that config too" "$RC" 1

# ---- no monitor: act directly ----
run status
eq "status without a monitor: exit 1 (postgres is down)" "$RC" 1
has "... says it acts directly" "$ERR" "no monitor running (no socket at $SOCK); acting directly"
has "... redis healthy" "$(grep '^redis ' <<<"$OUT")" "healthy"
has "... postgres unhealthy, refused" "$(grep '^postgres ' <<<"$OUT")" "refused"
run status redis
eq "status redis without a monitor: exit 0" "$RC" 0
run status redis --json
eq "status --json without a monitor: the API's shape" "$(jget "$OUT" '(v["name"], v["healthy"], v["history"][0]["result"])')" "('redis', True, 'ok')"
run check redis
eq "check without a monitor: exit 0" "$RC" 0
out=$(cd / && "$BIN" check redis -c "$T/tanuki.yaml" 2>&1); rc=$?
eq "check NAME -c FILE (options after the operand): exit 0" "$rc" 0
run check postgres
eq "check of a down service: exit 1" "$RC" 1
run stop redis
eq "stop of an external service: exit 1" "$RC" 1
has "... says it is external" "$ERR" "external"

# ---- with a monitor ----
up_fg
wait_for "redis healthy" sh -c "$BIN status redis >/dev/null 2>&1"
wait_for "postgres unhealthy" sh -c "$BIN status postgres --json 2>/dev/null | grep -q '\"state\":\"unhealthy\"'"
run status
eq "status: exit 1 while postgres is unhealthy" "$RC" 1
hasnt "status: no 'acting directly' with a monitor" "$ERR" "acting directly"
has "status: a header" "$(head -1 <<<"$OUT")" "NAME"
for col in STATE HEALTHY FOR FAILS RESTARTS CHECKED LATENCY "LAST ERROR"; do has "status: column $col" "$(head -1 <<<"$OUT")" "$col"; done
line=$(grep '^postgres ' <<<"$OUT")
has "status: postgres unhealthy" "$line" "unhealthy"
has "status: failures n/retries" "$line" "/1 "
has "status: the last error" "$line" "refused"
has "status: redis healthy with a latency" "$(grep '^redis ' <<<"$OUT")" "ms"
hasnt "status: no colour when not a terminal" "$OUT" $'\033['
hasnt "status: the password never shows" "$OUT$ERR" "s3cretpass"
run status redis
eq "status NAME healthy: exit 0" "$RC" 0
run env
eq "env with a monitor: exit 0" "$RC" 0
has "env with a monitor: a warning for postgres" "$ERR" "env: warning: postgres is unhealthy, not healthy (variables printed all the same)"
hasnt "... none for redis" "$ERR" "redis is"
has "... the variables all the same" "$OUT" "export POSTGRES_DSN='postgres://tanuki:p%40ss%20word@127.0.0.1:$DEAD/tanuki_dev'"
has "... redis's too" "$OUT" "export REDIS_URL='redis://default:s3cretpass@127.0.0.1:$RP'"
run env redis
eq "env redis with a monitor: no warning" "$ERR" ""
run status nope
eq "status of an unknown service: exit 1" "$RC" 1
has "... says so" "$ERR" "no service named 'nope'"
run status --json
eq "status --json: exit 1" "$RC" 1
api_body=$(api http://localhost/v1/services)
eq "status --json: the API's JSON" "$(jget "$OUT" '(sorted(v.keys()), [s["name"] for s in v["services"]])')" "$(jget "$api_body" '(sorted(v.keys()), [s["name"] for s in v["services"]])')"
run check redis
eq "check through the monitor: exit 0" "$RC" 0
has "... says the monitor checked" "$OUT" "by the monitor"
has "... with its probe and where it went (the verdict of the check it asked for)" "$OUT" "redis: ok (redis probe, 127.0.0.1:$RP, by the monitor"
has "... PONG" "$OUT" "PONG"
run check postgres
eq "check of a down service through the monitor: exit 1" "$RC" 1
run restart redis
eq "restart of an external service: exit 1" "$RC" 1
has "... the API's reason" "$ERR" "external"
run restart nope
eq "restart of an unknown service: exit 1" "$RC" 1
run logs redis
eq "logs of an external service: exit 1" "$RC" 1

# ---- exit 3: a monitor we may not reach ----
chmod 755 "$T" "$T/.tanuki"
out=$(runuser -u nobody -- "$NOBODY_BIN" status -c "$T/tanuki.yaml" 2>&1); rc=$?
eq "status as another user: exit 3" "$rc" 3
out=$(runuser -u nobody -- "$NOBODY_BIN" restart redis -c "$T/tanuki.yaml" 2>&1); rc=$?
eq "restart as another user: exit 3" "$rc" 3

# ---- --watch in tmux ----
TMUX_SOCK="$T/tmux.sock"
EXTRA_CLEANUP='tmux -S "$TMUX_SOCK" kill-server 2>/dev/null'
tmux -S "$TMUX_SOCK" new-session -d -x 160 -y 20 -s w "cd $T && $BIN status --watch; echo EXITED=\$?; sleep 30"
wait_for "the watch screen" sh -c "tmux -S $TMUX_SOCK capture-pane -p -t w | grep -q '^postgres'"
screen1=$(tmux -S "$TMUX_SOCK" capture-pane -p -t w)
has "watch: the table" "$screen1" "NAME"
has "watch: says it refreshes" "$screen1" "Ctrl-C"
eq "watch: redrawn in place (one header on screen)" "$(grep -c '^NAME' <<<"$screen1")" 1
raw=$(tmux -S "$TMUX_SOCK" capture-pane -p -e -t w)
has "watch: colour on a terminal" "$raw" $'\033[31m'
# postgres comes up: the screen follows within a few seconds.
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(50); time.sleep(60)' "$DEAD" &
PIDS+=("$!")
wait_for "postgres healthy on the watch screen" sh -c "tmux -S $TMUX_SOCK capture-pane -p -t w | grep '^postgres' | grep -q ' healthy'"
screen2=$(tmux -S "$TMUX_SOCK" capture-pane -p -t w)
has "watch: redraws with the new state" "$(grep '^postgres' <<<"$screen2")" "healthy"
eq "watch: still one header" "$(grep -c '^NAME' <<<"$screen2")" 1
tmux -S "$TMUX_SOCK" send-keys -t w C-c
wait_for "watch exits on Ctrl-C" sh -c "tmux -S $TMUX_SOCK capture-pane -p -t w | grep -q EXITED="
has "watch: Ctrl-C exits 0" "$(tmux -S "$TMUX_SOCK" capture-pane -p -t w)" "EXITED=0"
tmux -S "$TMUX_SOCK" new-session -d -x 160 -y 20 -s nc "cd $T && NO_COLOR=1 $BIN status; sleep 30"
wait_for "the NO_COLOR screen" sh -c "tmux -S $TMUX_SOCK capture-pane -p -t nc | grep -q '^redis'"
hasnt "NO_COLOR: no colour even on a terminal" "$(tmux -S "$TMUX_SOCK" capture-pane -p -e -t nc)" $'\033[3'
run status
eq "status: exit 0 once every enabled service is healthy" "$RC" 0
has "status: a healthy service's last error is from before" "$(grep '^postgres ' <<<"$OUT")" "earlier: cannot connect"

# ---- down ----
run down
eq "down: exit 0" "$RC" 0
has "down: says so" "$OUT" "monitor stopped"
wait "$UP_PID"; rc=$?
eq "the monitor exited 0 after down" "$rc" 0
check "no socket after down" test ! -e "$SOCK"
no_sanitizer_reports "$T/up.log"
hasnt "the log never shows the password" "$(cat "$T/up.log")" "s3cretpass"

# ---- up -d ----
run up -d
eq "up -d: exit 0 once running" "$RC" 0
has "up -d: tells the pid" "$OUT" "pid"
pid=$(cat "$T/.tanuki/tanuki-svc.pid" 2>/dev/null)
check "up -d: a pid file with a live pid" kill -0 "$pid"
check "up -d: not a session leader" test "$(ps -o sid= -p "$pid" | tr -d ' ')" != "$pid"
check "up -d: no terminal" test "$(ps -o tty= -p "$pid" | tr -d ' ')" = "?"
check "up -d: a log file" test -s "$T/.tanuki/tanuki-svc.log"
wait_for "a state change in the log" grep -q "state=healthy" "$T/.tanuki/tanuki-svc.log"
run up -d
eq "a second up -d is refused: exit 1" "$RC" 1
has "... with a clear message" "$ERR" "already running"
wait_for "redis healthy under the daemon" sh -c "$BIN status redis >/dev/null 2>&1"
run status redis
eq "status against the daemon" "$RC" 0
kill -TERM "$pid"
wait_for "the daemon exits on SIGTERM" sh -c "! kill -0 $pid 2>/dev/null"
check "the daemon removed its pid file" test ! -e "$T/.tanuki/tanuki-svc.pid"
check "... and its socket" test ! -e "$SOCK"
no_sanitizer_reports "$T/.tanuki/tanuki-svc.log"
echo "bad: [" >>tanuki.yaml
run up -d
eq "up -d with a bad config: exit 1, before detaching" "$RC" 1
has "... with the error" "$ERR" "tanuki.yaml:"
finish
