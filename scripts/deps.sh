#!/usr/bin/env bash
# Install what tanuki-svc needs to build and test on Debian 12, as root.
# Idempotent: packages already present are not fetched again.
#   scripts/deps.sh          build and run (scripts/quickstart.sh)
#   scripts/deps.sh --test   and test (scripts/test.sh)
# postgresql and redis-server are installed for their programs (the process
# runtime runs its own servers): when this script installs them, their
# system services are neither started nor enabled, so that they never hold
# the ports of tanuki.yaml (5432, 6379) on a machine that runs systemd.
set -euo pipefail
. "$(dirname "$0")/pkg.sh"

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libuv1-dev libcurl4-openssl-dev libjansson-dev libyaml-dev
      libmicrohttpd-dev libcmocka-dev
      postgresql redis-server curl util-linux tmux procps iproute2)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(prometheus python3)
fi

pkg_install deps "${pkgs[@]}"

# Installed just now: keep their services off at boot too (systemd only;
# elsewhere nothing starts them).
if [ ${#PKG_NEW[@]} -gt 0 ] && [ -d /run/systemd/system ]; then
  for p in "${PKG_NEW[@]}"; do
    case "$p" in
      postgresql|redis-server|prometheus)
        systemctl disable --now "$p" >/dev/null 2>&1 || true
        echo "deps: $p's own service left off (tanuki-svc runs its own)" ;;
    esac
  done
fi
