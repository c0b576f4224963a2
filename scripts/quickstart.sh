#!/usr/bin/env bash
# The README's main job: install what is needed, build, and run
# `tanuki-svc up` on the example config, in the foreground (Ctrl-C stops it).
# With a Docker daemon that answers, the services run in containers (their
# images are built locally first, once); without one, as local processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh gcc
if curl -sf --max-time 3 --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null 2>&1; then
  scripts/images.sh
fi
exec build/gcc/tanuki-svc up -c examples/tanuki.yaml
