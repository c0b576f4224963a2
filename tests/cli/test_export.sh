#!/usr/bin/env bash
# tanuki-svc export compose|kubernetes (docs/export.md).
#  - compose: the file of --compose-v1 runs under Debian's docker-compose
#    (1.29) on the local engine until Docker reports every service healthy
#    (postgres and redis by their native probes' command equivalents, a tcp
#    probe, an exec probe), with the same images, ports, environment (a
#    password with '$' intact), volumes and network, redis started only once
#    postgres was healthy; the default file (the Compose Specification) is
#    the same plus start_interval and depends_on's restart.
#  - kubernetes: every document valid against the Kubernetes OpenAPI schema
#    (kubernetes-models, plus no field the schema does not define), the
#    probes as docs/export.md's table says.
# Docker objects are named tsvcexp<pid>... and removed afterwards.
# Under a sanitizer build (TSVC_SANITIZED=1, tests/CMakeLists.txt) the
# program's side runs in full (both exports, their notes, the files read
# back and compared, every field asserted) but not the other tools' side:
# docker-compose reading and running the file and the schema validation
# run in the unsanitized build only (scripts/test.sh runs both builds).
. "$(dirname "$0")/lib.sh"
. "$TSVC_SOURCE_DIR/tests/node/node_setup.sh"

OTHERS=1 # docker-compose and the Kubernetes schema: once, unsanitized
[ "${TSVC_SANITIZED:-0}" = 1 ] && OTHERS=0
if [ "$OTHERS" = 1 ]; then
  need docker docker-compose node npm
  wait_for "the docker daemon" docker info || { bad "the docker daemon answers"; finish; exit 1; }
  for img in tanuki/postgres:15 tanuki/redis:7; do
    docker image inspect "$img" >/dev/null 2>&1 || { bad "image $img (scripts/images.sh)"; finish; exit 1; }
  done
  node_setup || { bad "npm ci of tests/node"; finish; exit 1; }
else
  echo "# sanitizer build: docker-compose and the schema validation run in the unsanitized build"
fi

TAG="tsvcexp$$"
P1=$(free_port); P2=$(free_port); P3=$(free_port)
EXTRA_CLEANUP='docker-compose -p "$TAG" -f "$T/dc.yml" down -v --remove-orphans >/dev/null 2>&1; docker network rm "$TAG-net" >/dev/null 2>&1; docker volume rm "$TAG-pg" >/dev/null 2>&1'
cat >tanuki.yaml <<YAML
docker: {network: $TAG-net, container_prefix: $TAG-}
hooks: {webhook: "https://hooks.example/tanuki"}
services:
  postgres:
    image: tanuki/postgres:15
    port: $P1
    environment: {PGPORT: "$P1", POSTGRES_USER: tanuki, POSTGRES_PASSWORD: "pa\$s'word", POSTGRES_DB: tanuki_dev}
    volumes: ["$TAG-pg:/var/lib/postgresql/data"]
    healthcheck: {interval: 2s, timeout: 3s, retries: 4, start_period: 40s, start_interval: 500ms}
    restart: {stop_timeout: 5s}
  redis:
    image: tanuki/redis:7
    port: $P2
    command: [redis-server, --port, "$P2", --requirepass, "s3c\$ret", --save, ""]
    healthcheck: {command: [redis-cli, -p, "$P2", -a, "s3c\$ret", ping], interval: 1s}
    depends_on:
      postgres: {condition: service_healthy, restart: true}
  cache:
    image: tanuki/redis:7
    port: $P3
    command: [redis-server, --port, "$P3", --save, ""]
    healthcheck: {probe: tcp, interval: 1s, start_interval: 1s}
    depends_on: [redis]
  job:
    image: tanuki/redis:7
    command: [redis-server, --port, "6390", --save, ""]
    healthcheck: {command: "test -d /proc/1 && redis-cli -p 6390 ping", interval: 1s}
    restart: {policy: never}
    hooks: {on_change: "logger changed", webhook: "http://127.0.0.1:9/x"}
  gone: {image: nothing/at-all, enabled: false}
YAML

# ---- compose -------------------------------------------------------------------
run export compose --compose-v1 -o "$T/dc.yml"
eq "export compose --compose-v1: exit 0" "$RC" 0
has "notes on stderr: start_interval left out" "$ERR" "start_interval left out"
has "notes on stderr: restart left out" "$ERR" "redis: depends_on postgres: restart: true left out"
has "notes on stderr: the top level's hooks" "$ERR" "note: hooks (webhook) left out: docker-compose runs no command and posts nothing"
has "notes on stderr: a service's hooks" "$ERR" "note: job: hooks (on_change, webhook) left out: docker-compose"
has "notes on stderr: depends_timeout" "$ERR" "note: redis: depends_timeout 2m left out: docker-compose waits for depends_on's conditions with no time limit"
has "notes on stderr: depends_timeout (short form)" "$ERR" "note: cache: depends_timeout 2m left out"
eq "no depends_timeout note without depends_on" "$(grep -c 'postgres: depends_timeout' <<<"$ERR")" 0
has "the file says what it left out" "$(head -16 dc.yml)" "#   gone: left out (enabled: false)"
has "the file says the hooks were left out" "$(head -16 dc.yml)" "#   job: hooks (on_change, webhook) left out"
run export compose -o "$T/spec.yml"
eq "export compose: exit 0" "$RC" 0

# The two files differ exactly by what docker-compose 1.x does not read.
diffs=$(python3 - "$T/spec.yml" "$T/dc.yml" <<'PY'
import sys, yaml
spec, v1 = (yaml.safe_load(open(f)) for f in sys.argv[1:3])
out = []
for name, s in spec["services"].items():
    h = s.get("healthcheck")
    if h is not None:
        out.append("%s start_interval %s" % (name, h.pop("start_interval", None)))
    for dep, d in (s.get("depends_on") or {}).items():
        if d.pop("restart", None): out.append("%s restart %s" % (name, dep))
print("same" if spec == v1 else "different", *sorted(out), sep="\n")
PY
)
eq "spec = v1 + start_interval + restart" "$diffs" "same
cache start_interval 1s
job start_interval 1s
postgres start_interval 500ms
redis restart postgres
redis start_interval 1s"

if [ "$OTHERS" = 1 ]; then
  check "docker-compose reads it (config -q)" docker-compose -p "$TAG" -f dc.yml config -q
  # The engine's own events, from before the start (its memory of past events
  # is short: the health checks' execs push them out).
  docker events --filter "label=com.docker.compose.project=$TAG" --filter event=start \
    --filter event=health_status \
    --format '{{index .Actor.Attributes "com.docker.compose.service"}} {{.Status}}' >"$T/events.log" 2>&1 &
  EV_PID=$!
  PIDS+=("$EV_PID")
  sleep 0.5
  docker-compose -p "$TAG" -f dc.yml up -d >"$T/compose-up.log" 2>&1
  eq "docker-compose up -d: exit 0" "$?" 0 || cat "$T/compose-up.log"
  # The containers by compose's labels: docker-compose ps took 2 s a call on a
  # loaded machine, and the wait below asks for four ids a round.
  ctr() {
    docker ps -aq --filter "label=com.docker.compose.project=$TAG" \
      --filter "label=com.docker.compose.service=$1" 2>/dev/null
  }
  health() { docker inspect -f '{{.State.Health.Status}}' "$(ctr "$1")" 2>/dev/null; }
  all_healthy() {
    local s
    for s in postgres redis cache job; do [ "$(health "$s")" = healthy ] || return 1; done
  }
  # postgres's first start runs initdb; the loaded 2-core machine may take a while.
  for _ in $(seq 240); do all_healthy && break; sleep 0.5; done
  if all_healthy; then ok "Docker reports every service healthy"; else
    bad "Docker reports every service healthy"
    for s in postgres redis cache job; do echo "$s: $(health "$s")"; docker inspect -f '{{json .State.Health}}' "$(ctr "$s")" | head -c 600; echo; done
  fi

  pg=$(ctr postgres); rd=$(ctr redis)
  eq "same image" "$(docker inspect -f '{{.Config.Image}}' "$pg")" tanuki/postgres:15
  eq "port published on 127.0.0.1" "$(docker port "$pg" "$P1/tcp")" "127.0.0.1:$P1"
  has "environment: the password as written" "$(docker inspect -f '{{json .Config.Env}}' "$pg")" "POSTGRES_PASSWORD=pa\$s'word"
  eq "the named volume keeps its name" "$(docker inspect -f '{{range .Mounts}}{{.Name}}{{end}}' "$pg")" "$TAG-pg"
  has "on the network" "$(docker inspect -f '{{json .NetworkSettings.Networks}}' "$pg")" "\"$TAG-net\""
  eq "HEALTHCHECK: interval, timeout, retries, start_period" \
    "$(docker inspect -f '{{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.Timeout}} {{.Config.Healthcheck.Retries}} {{.Config.Healthcheck.StartPeriod}}' "$pg")" \
    "2s 3s 4 40s"
  eq "postgres: pg_isready, as the native probe" \
    "$(docker inspect -f '{{json .Config.Healthcheck.Test}}' "$pg")" \
    "[\"CMD\",\"pg_isready\",\"-h\",\"127.0.0.1\",\"-p\",\"$P1\",\"-U\",\"tanuki\",\"-d\",\"tanuki_dev\"]"
  has "redis: healthy only on PONG, the password intact" \
    "$(docker inspect -f '{{json .Config.Healthcheck.Test}}' "$rd")" "-a 's3c\$ret' --no-auth-warning ping | grep -qx PONG"
  has "cache: tcp through bash" "$(docker inspect -f '{{json .Config.Healthcheck.Test}}' "$(ctr cache)")" "/dev/tcp/127.0.0.1/$P3"
  eq "restart.policy never: restart no" "$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$(ctr job)")" no
  eq "on-unhealthy: unless-stopped" "$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$pg")" unless-stopped
  # service_healthy: redis started only once postgres was healthy.
  stop_pid "$EV_PID"
  first=$(grep -E '^(postgres health_status: healthy|redis start)$' "$T/events.log" | head -1)
  eq "redis started after postgres turned healthy" "$first" "postgres health_status: healthy"

  docker-compose -p "$TAG" -f dc.yml down -v >"$T/compose-down.log" 2>&1
  eq "docker-compose down -v: exit 0" "$?" 0
  eq "no container left" "$(docker ps -aq --filter label=com.docker.compose.project="$TAG" | wc -l)" 0
  eq "no volume left" "$(docker volume ls -q --filter name="$TAG" | wc -l)" 0

fi

# ---- kubernetes ------------------------------------------------------------------
run export kubernetes -o "$T/k8s.yml" --storage 2Gi
has "kubernetes: hooks noted" "$ERR" "note: job: hooks (on_change, webhook) left out: Kubernetes runs no command"
has "kubernetes: the top level's hooks noted" "$ERR" "note: hooks (webhook) left out: Kubernetes"
has "kubernetes: depends_timeout noted" "$ERR" "note: redis: depends_timeout 2m left out: Kubernetes does not wait for dependencies"
eq "export kubernetes: exit 0" "$RC" 0
if [ "$OTHERS" = 1 ]; then
  K=$(node "$TSVC_SOURCE_DIR/tests/node/kube_validate.js" "$T/k8s.yml" 2>"$T/kube.err")
  eq "every document valid against the Kubernetes OpenAPI schema" "$?" 0 || cat "$T/kube.err"
else
  # The documents as kube_validate.js prints them ({kind/name: document}),
  # not validated: the fields below are still asserted.
  K=$(python3 - "$T/k8s.yml" <<'PY'
import json, sys, yaml
print(json.dumps({"%s/%s" % (d["kind"], d["metadata"]["name"]): d
                  for d in yaml.safe_load_all(open(sys.argv[1])) if d}))
PY
  )
  eq "the documents read as YAML" "$?" 0
fi
kget() { python3 -c "import json,sys; v=json.loads(sys.argv[1]); print($1)" "$K" 2>/dev/null; }
eq "documents: PVC, Service and Deployment per service" \
  "$(kget '" ".join(sorted(v))')" \
  "Deployment/cache Deployment/job Deployment/postgres Deployment/redis PersistentVolumeClaim/postgres-data Service/cache Service/postgres Service/redis"
eq "the claim's size" "$(kget 'v["PersistentVolumeClaim/postgres-data"]["spec"]["resources"]["requests"]["storage"]')" 2Gi
C='v["Deployment/postgres"]["spec"]["template"]["spec"]["containers"][0]'
eq "startupProbe: every start_interval (1s: whole seconds), start_period/start_interval + retries" \
  "$(kget "[$C[\"startupProbe\"][k] for k in (\"periodSeconds\", \"failureThreshold\", \"timeoutSeconds\")]")" "[1, 84, 3]"
eq "readinessProbe: interval, retries, timeout" \
  "$(kget "[$C[\"readinessProbe\"][k] for k in (\"periodSeconds\", \"failureThreshold\", \"timeoutSeconds\", \"successThreshold\")]")" "[2, 4, 3, 1]"
eq "livenessProbe: the same" \
  "$(kget "[$C[\"livenessProbe\"][k] for k in (\"periodSeconds\", \"failureThreshold\", \"timeoutSeconds\")]")" "[2, 4, 3]"
eq "postgres: exec pg_isready" "$(kget "$C[\"readinessProbe\"][\"exec\"][\"command\"][0]")" pg_isready
eq "the volume: a subPath of the claim" "$(kget "$C[\"volumeMounts\"][0][\"subPath\"] + ' ' + $C[\"volumeMounts\"][0][\"mountPath\"]")" "$TAG-pg /var/lib/postgresql/data"
eq "cache: a tcpSocket probe" "$(kget 'v["Deployment/cache"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["tcpSocket"]["port"]')" "$P3"
eq "job (policy never): no livenessProbe" "$(kget '"livenessProbe" in v["Deployment/job"]["spec"]["template"]["spec"]["containers"][0]')" False
eq "command: args" "$(kget 'v["Deployment/job"]["spec"]["template"]["spec"]["containers"][0]["args"][0]')" redis-server
has "depends_on kept as an annotation" "$(kget 'v["Deployment/redis"]["metadata"]["annotations"]')" "postgres: service_healthy, restart"

# Errors name what is wrong.
cat >bad.yaml <<'YAML'
services:
  postgres: {port: 5432}
YAML
run export compose -c bad.yaml
eq "no image: exit 1" "$RC" 1
has "no image: says which service" "$ERR" "services.postgres has no image: compose runs containers"
run export kubernetes --storage lots
eq "a bad size: exit 2" "$RC" 2
has "a bad size: says so" "$ERR" "--storage: \"lots\" is not a size like 1Gi"
run export swarm
eq "an unknown target: exit 2" "$RC" 2
finish
