#!/usr/bin/env bash
# The README's main job: install what is needed, build, and run
# `tanuki-svc up` on the example config, in the foreground (Ctrl-C stops it).
# With a Docker daemon that answers, the services run in containers of the
# upstream images examples/tanuki.yaml names (postgres:16, redis:7-alpine),
# pulled when missing; where no registry answers, local stand-ins are built
# under those names (scripts/images.sh --stand-ins: Debian's PostgreSQL 15
# and redis 7.0, which honour the same environment and data paths) and the
# quickstart says so. Without a Docker daemon, as local processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh gcc
say() { echo "quickstart: $*"; }
sock=/var/run/docker.sock
if curl -sf --max-time 3 --unix-socket "$sock" http://docker/_ping >/dev/null 2>&1; then
  missing=()
  for svc in postgres:postgres:16 redis:redis:7-alpine; do
    image=${svc#*:}
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$sock" \
      "http://docker/images/$image/json") || code=000
    [ "$code" = 200 ] || missing+=("${svc%%:*}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "pulling the images of: ${missing[*]}"
    if ! build/gcc/tanuki-svc pull -c examples/tanuki.yaml "${missing[@]}"; then
      say "no registry answered: building local stand-ins under the upstream names"
      say "(postgres:16 is Debian's PostgreSQL 15, redis:7-alpine Debian's redis 7.0;"
      say " see scripts/images.sh before switching to the real images)"
      scripts/images.sh --stand-ins
    fi
  fi
fi
exec build/gcc/tanuki-svc up -c examples/tanuki.yaml
