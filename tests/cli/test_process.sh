#!/usr/bin/env bash
# The process runtime end to end, as the README's quick start runs it: `up
# --runtime process` as root from a checkout only root may enter (the test's
# dir is 0700, as /root is) runs postgres and redis with their data in
# /var/lib/tanuki-svc/<project-id> and postgres's socket in
# /run/tanuki-svc/<project-id>; `status NAME` and `env` say where; no other
# local user reaches either without the password; the data outlive the
# monitor. Then an unprivileged user's monitor keeps everything in .tanuki.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: root's layout needs root"; exit 77; }
PG=$(free_port); RP=$(free_port)
cat >tanuki.yaml <<YAML
runtime: process
services:
  postgres:
    port: $PG
    environment: {POSTGRES_USER: tanuki, POSTGRES_PASSWORD: s3cret-pw, POSTGRES_DB: tanuki_dev}
    healthcheck: {interval: 300ms, timeout: 2s, retries: 2, start_period: 30s, start_interval: 100ms}
    restart: {stop_timeout: 5s}
  redis:
    port: $RP
    environment: {REDIS_PASSWORD: r3dis-pw}
    healthcheck: {interval: 300ms, timeout: 2s, retries: 2, start_period: 10s, start_interval: 100ms}
    restart: {stop_timeout: 5s}
YAML
eq "the checkout is 0700, as /root" "$(stat -c %a "$T")" 700
healthy() { curl -s --unix-socket "$SOCK" "http://localhost/v1/services/$1" | grep -q '"healthy":true'; }

# ---- as root ----
up_fg
wait_for "postgres healthy" healthy postgres || { bad "postgres healthy"; cat "$T/up.log" "$T/.tanuki/logs/postgres.log"; }
wait_for "redis healthy" healthy redis || bad "redis healthy"
# A monitor of local processes, with no held postgres session, has loaded
# neither libcurl nor libcrypto (issue 13, RSS: src/common/lazylib.h); the
# first GET /v1/env (`env` below: URL escaping) loads libcurl.
check "up has not loaded libcurl" sh -c '! grep -q libcurl "/proc/$1/maps"' _ "$UP_PID"
check "up has not loaded libcrypto" sh -c '! grep -q libcrypto "/proc/$1/maps"' _ "$UP_PID"

run status postgres
eq "status postgres: exit 0" "$RC" 0
D=$(sed -n 's/^data: //p' <<<"$OUT")
has "status postgres: the data line" "$OUT" "data: /var/lib/tanuki-svc/"
ID=$(basename "$(dirname "$D")")
case "$ID" in
  tsvc-cli-*-????????) ok "the project id: the checkout's name and a hash ($ID)"
    # Everything this test made outside its dir goes with it.
    EXTRA_CLEANUP='rm -rf "/var/lib/tanuki-svc/$ID" "/run/tanuki-svc/$ID"' ;;
  *) bad "the project id: got '$ID' from '$D'" ;;
esac
check "postgres's data there" test -f "$D/PG_VERSION"
check "redis's data there" test -d "/var/lib/tanuki-svc/$ID/redis/appendonlydir"
check "no data beside the config" test ! -e "$T/.tanuki/data"
check "the logs beside the config" test -s "$T/.tanuki/logs/postgres.log"
run env
has "env: where postgres's data is" "$OUT" "# postgres data (process runtime): $D"
has "env: where redis's data is" "$OUT" "# redis data (process runtime): /var/lib/tanuki-svc/$ID/redis"
(eval "$OUT"; test "$POSTGRES_PORT" = "$PG") && ok "env: still evaluates" || bad "env: still evaluates"

R="/run/tanuki-svc/$ID"
eq "socket directory: 0700, the postgres user's" "$(stat -c '%a %U' "$R")" "700 postgres"
check "the socket in it" test -S "$R/.s.PGSQL.$PG"
out=$(runuser -u nobody -- psql -X -w -h "$R" -p "$PG" -U tanuki -d tanuki_dev -c 'select 1' 2>&1)
has "nobody cannot reach the socket" "$out" "Permission denied"
out=$(runuser -u nobody -- env -u PGPASSWORD psql -X -w -h 127.0.0.1 -p "$PG" -U tanuki -d tanuki_dev -c 'select 1' 2>&1)
has "nobody cannot log in over TCP without the password" "$out" "no password supplied"
out=$(runuser -u nobody -- redis-cli -h 127.0.0.1 -p "$RP" ping 2>&1)
has "nobody gets NOAUTH from redis" "$out" "NOAUTH"
sql() { PGPASSWORD=s3cret-pw psql -X -w -q -tA -h 127.0.0.1 -p "$PG" -U tanuki -d tanuki_dev -c "$1"; }
check "a row written" sql "create table t (v text); insert into t values ('kept')"

# The monitor stops: under the process runtime its services stop with it;
# the data stay.
kill -TERM "$UP_PID"; wait "$UP_PID"; rc=$?
eq "up: exit 0 on SIGTERM" "$rc" 0
has "up said Ctrl-C stops the services too" "$(cat "$T/up.log")" "Ctrl-C stops monitoring and the services"
check "postgres stopped with the monitor" wait_for "postgres's port closed" sh -c "! (exec 3<>/dev/tcp/127.0.0.1/$PG) 2>/dev/null"
check "redis stopped with the monitor" wait_for "redis's port closed" sh -c "! (exec 3<>/dev/tcp/127.0.0.1/$RP) 2>/dev/null"
check "the data stay" test -f "$D/PG_VERSION"

up_fg
wait_for "postgres healthy again" healthy postgres || bad "postgres healthy again"
eq "the row is still there" "$(sql 'select v from t')" kept
eq "initialised once" "$(grep -c '\] initdb ' "$T/.tanuki/logs/postgres.log")" 1
kill -TERM "$UP_PID"; wait "$UP_PID"
no_sanitizer_reports "$T/up.log"

# ---- as an unprivileged user: everything in .tanuki ----
chmod 755 "$T"
NB="$T/nb"
mkdir "$NB" && chown nobody:nogroup "$NB"
NRP=$(free_port)
cat >"$NB/tanuki.yaml" <<YAML
runtime: process
services:
  redis:
    port: $NRP
    healthcheck: {interval: 300ms, timeout: 2s, retries: 2, start_period: 10s, start_interval: 100ms}
YAML
setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$NOBODY_BIN" up -c "$NB/tanuki.yaml" >"$T/up-nobody.log" 2>&1 &
PIDS+=("$!")
NSOCK="$NB/.tanuki/tanuki-svc.sock"
wait_for "nobody's redis healthy" sh -c "curl -s --unix-socket $NSOCK http://localhost/v1/services/redis | grep -q '\"healthy\":true'" \
  || { bad "nobody's redis healthy"; cat "$T/up-nobody.log"; }
check "nobody's data in .tanuki" test -d "$NB/.tanuki/data/redis/appendonlydir"
eq "... owned by nobody" "$(stat -c %U "$NB/.tanuki/data/redis")" nobody
out=$(runuser -u nobody -- "$NOBODY_BIN" status redis -c "$NB/tanuki.yaml" 2>&1)
has "status as nobody: data in .tanuki" "$out" "data: $NB/.tanuki/data/redis"
hasnt "... not in /var/lib" "$out" "/var/lib/tanuki-svc"
no_sanitizer_reports "$T/up-nobody.log"
finish
