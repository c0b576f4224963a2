#!/bin/bash
# Entrypoint of tanuki/redis: redis-server in the foreground as PID 1 (exec),
# as the redis user, on 0.0.0.0:6379 with protected-mode off and data in
# /data; REDIS_PASSWORD, when set, becomes requirepass. Arguments given to
# the container come after ours, so they override them.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi

if [ "$1" != redis-server ]; then
  exec "$@"
fi
shift

conf=()
if [ $# -gt 0 ] && [ "${1%.conf}" != "$1" ]; then
  conf=("$1")
  shift
fi

opts=(--bind 0.0.0.0 --port 6379 --protected-mode no --dir /data --daemonize no)
if [ -n "${REDIS_PASSWORD:-}" ]; then
  opts+=(--requirepass "$REDIS_PASSWORD")
fi

if [ "$(id -u)" = 0 ]; then
  chown redis:redis /data 2>/dev/null || true
  exec setpriv --reuid=redis --regid=redis --init-groups \
    redis-server "${conf[@]}" "${opts[@]}" "$@"
fi
exec redis-server "${conf[@]}" "${opts[@]}" "$@"
