#!/usr/bin/env bash
# deb_inside.sh: run by test_deb.sh as root inside a fresh Debian 12
# container, with the .deb in /pkg. Installs it with apt, uses it as a user
# would, removes it, and checks what is left. Prints "ok"/"FAIL" lines and
# exits with the number of failures.
# Environment: PG_PORT, REDIS_PORT, API_PORT (free ports on the host, whose
# network the container shares).
set -u
FAILS=0
CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok   - $*"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL - $*"; }
has() { if grep -qF -- "$3" <<<"$2"; then ok "$1"; else bad "$1: '$3' not in: $(head -c 800 <<<"$2")"; fi; }
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi; }
die() { bad "$*"; echo "# $CHECKS checks, $FAILS failed"; exit "$FAILS"; }
# Every file and link on the container's own filesystem.
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /pkg -o -path /test \
    -o -path /var/cache/apt -o -path /var/lib/apt/lists \) -prune -o \
    \( -type f -o -type l \) -print | sort
}

export DEBIAN_FRONTEND=noninteractive
# This container has no init: no package may start its daemon (postgres,
# redis) here, on the host's network.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
# postgresql-common would create and start a cluster of its own; tanuki-svc
# makes its own. man-db's index update only costs time (man -w finds pages
# without it).
mkdir -p /etc/postgresql-common/createcluster.d
echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/tsvc-test.conf
echo 'man-db man-db/auto-update boolean false' | debconf-set-selections
APT=(apt-get -y -qq -o Dpkg::Options::=--force-unsafe-io -o APT::Sandbox::User=root)
echo "# ${SECONDS}s: apt-get update"
"${APT[@]}" update >/tmp/apt.log 2>&1 || die "apt-get update: $(tail -5 /tmp/apt.log)"

DEB=$(ls /pkg/tanuki-svc_*.deb)
# What `apt-get install ./x.deb` would pull in, Recommends included.
sim=$(apt-get install -s "$DEB" 2>&1)
for p in libuv1 libjansson4 libyaml-0-2 libmicrohttpd12 libcurl4 docker.io postgresql redis-server; do
  has "apt-get install pulls $p (Depends or Recommends)" "$sim" "Inst $p "
done

echo "# ${SECONDS}s: installing"
# The recommended servers the process runtime needs, and man; not Docker
# (a Docker engine inside this container would only cost time).
"${APT[@]}" install --no-install-recommends postgresql redis-server man-db >/tmp/apt.log 2>&1 ||
  die "installing postgresql redis-server man-db: $(tail -5 /tmp/apt.log)"
before_deps=$(dpkg-query -W -f='${Package}\n' | sort)
"${APT[@]}" install --no-install-recommends "$DEB" >/tmp/apt.log 2>&1 ||
  die "apt-get install $DEB: $(tail -20 /tmp/apt.log)"
ok "apt-get install ./$(basename "$DEB")"
after_deps=$(dpkg-query -W -f='${Package}\n' | sort)
pulled=$(comm -13 <(echo "$before_deps") <(echo "$after_deps") | tr '\n' ' ')
for p in libuv1 libjansson4 libyaml-0-2 libmicrohttpd12 libcurl4; do
  has "it pulled $p" "$pulled" "$p "
done
FILES=$(dpkg -L tanuki-svc | while read -r f; do [ -d "$f" ] || echo "$f"; done | sort)
installed=$(snapshot)

echo "# ${SECONDS}s: installed"
# ---- as a user would --------------------------------------------------------
out=$(tanuki-svc version 2>&1)
has "tanuki-svc version" "$out" "tanuki-svc 0."
for lib in libuv libcurl jansson libyaml libmicrohttpd; do has "version names $lib" "$out" "$lib "; done
eq "man -w tanuki-svc" "$(man -w tanuki-svc 2>&1)" "/usr/share/man/man1/tanuki-svc.1.gz"
eq "the library is known to the loader" "$(ldconfig -p | grep -c 'libtsvc.so.0 ')" 1
comp=$(bash -c 'source /usr/share/bash-completion/completions/tanuki-svc
  COMP_WORDS=(tanuki-svc st); COMP_CWORD=1; _tanuki_svc; printf "%s\n" "${COMPREPLY[@]}"' | sort | tr '\n' ' ')
eq "bash completion of verbs" "$comp" "start status stop "

# `up` on a copy of the example config, under the process runtime.
mkdir -p /srv/demo
cp /usr/share/doc/tanuki-svc/examples/tanuki.yaml /srv/demo/tanuki.yaml
sed -i -e "s/port: 5432/port: $PG_PORT/" -e "s/port: 6379/port: $REDIS_PORT/" \
  -e "s/127.0.0.1:7070/127.0.0.1:$API_PORT/" /srv/demo/tanuki.yaml
tanuki-svc up --runtime process -c /srv/demo/tanuki.yaml >/srv/up.log 2>&1 &
up=$!
healthy=no
# Up to 2 minutes: initdb on a loaded machine.
for _ in $(seq 240); do
  if tanuki-svc status -c /srv/demo/tanuki.yaml >/srv/status.txt 2>&1; then healthy=yes; break; fi
  kill -0 "$up" 2>/dev/null || break
  sleep 0.5
done
eq "up (process runtime) on the example config: every service healthy" "$healthy" yes
[ "$healthy" = yes ] || { cat /srv/status.txt; tail -30 /srv/up.log; }
kill -TERM "$up"
wait "$up"
eq "up stops cleanly on SIGTERM" "$?" 0

echo "# ${SECONDS}s: removing"
# ---- apt-get remove: no file left behind but data ---------------------------
"${APT[@]}" remove tanuki-svc >/tmp/apt.log 2>&1 || die "apt-get remove: $(tail -5 /tmp/apt.log)"
ok "apt-get remove tanuki-svc"
removed=$(snapshot)
left=$(comm -12 <(echo "$FILES") <(echo "$removed"))
eq "every file of the package is gone" "$left" ""
gone=$(comm -23 <(echo "$installed") <(echo "$removed") | grep -vE '^(/var/lib/dpkg/|/var/cache/|/var/log/)')
eq "nothing else went away (dpkg's own records aside)" "$gone" "$FILES"
# New since the install: the services' data, the logs we wrote, and the
# bookkeeping of dpkg/apt/ldconfig.
new=$(comm -13 <(echo "$installed") <(echo "$removed") |
      grep -vE '^(/srv/|/var/lib/tanuki-svc/|/run/|/tmp/|/var/lib/dpkg/|/var/log/|/var/cache/)')
eq "nothing new outside the data" "$new" ""
data=$(find /srv/demo /var/lib/tanuki-svc -name PG_VERSION 2>/dev/null | head -n1)
if [ -n "$data" ]; then ok "postgres's data is kept ($(dirname "$data"))"; else bad "postgres's data is kept"; fi

echo "# ${SECONDS}s: done"
echo "# $CHECKS checks, $FAILS failed"
exit "$FAILS"
