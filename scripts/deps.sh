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
      libmicrohttpd-dev libcmocka-dev libssl-dev
      postgresql redis-server curl util-linux tmux procps iproute2
      file)  # file: cpack -G DEB (scripts/package.sh) needs it for shlibdeps
if [ "${1:-}" = "--test" ]; then
  # docker-registry and apache2-utils (htpasswd): the registry the pull
  # tests push to and pull from (tests/test_registry.c). systemd:
  # systemd-analyze verifies the units (tests/package/). chromium: the
  # status page's test; docker-compose: export compose's. socat, openssl,
  # openssh-*: the remote engine's test (tests/test_remote.c: a TLS
  # endpoint and an sshd of its own in front of the local engine).
  pkgs+=(prometheus python3 golang-go docker-registry apache2-utils systemd chromium docker-compose
         socat openssl openssh-client openssh-server)
  # node and npm for tests/node (npm ci): Debian's, unless the machine has its own.
  command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
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
      openssh-server)
        # The tests run an sshd of their own on a loopback port.
        systemctl disable --now ssh >/dev/null 2>&1 || true
        echo "deps: openssh-server's own service left off (the tests run their own)" ;;
    esac
  done
fi
