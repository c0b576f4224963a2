#!/usr/bin/env bash
# Install what tanuki-svc needs to build and test on Debian 12, as root.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libuv1-dev libcurl4-openssl-dev libjansson-dev libyaml-dev
      libmicrohttpd-dev libcmocka-dev
      postgresql redis-server curl tmux procps iproute2
      file)  # file: cpack -G DEB (scripts/package.sh) needs it for shlibdeps
if [ "${1:-}" = "--test" ]; then
  # docker-registry and apache2-utils (htpasswd): the registry the pull
  # tests push to and pull from (tests/test_registry.c). systemd:
  # systemd-analyze verifies the units (tests/package/). chromium: the
  # status page's test; docker-compose: export compose's.
  pkgs+=(prometheus python3 golang-go docker-registry apache2-utils systemd chromium docker-compose)
  # node and npm for tests/node (npm ci): Debian's, unless the machine has its own.
  command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
