#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock, as root on
# Debian 12. Idempotent: installs docker.io (and curl) only when missing,
# starts dockerd only when nothing answers on the socket.
#   scripts/docker-up.sh        -> exit 0 when the engine answers
# Exit codes: 0 the engine answers; 1 it could not be installed or started
# (the reason is printed, with the tail of the daemon's log).
set -euo pipefail

sock=/var/run/docker.sock
pidfile=/var/run/docker.pid
log=/var/log/tanuki-dockerd.log
wait_s=${TSVC_DOCKERD_WAIT:-60}

say() { echo "docker-up: $*"; }
die() { echo "docker-up: fatal: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, starts dockerd)"

ping_ok() {
  [ -S "$sock" ] || return 1
  [ "$(curl -fsS --max-time 3 --unix-socket "$sock" http://x/_ping 2>/dev/null)" = OK ]
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# 1. Packages. curl is needed for the ping itself; iptables and
#    ca-certificates come with docker.io's dependencies.
missing=()
for p in docker.io curl; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || die "dockerd not found after installing docker.io"
dockerd_bin=$(command -v dockerd || echo /usr/sbin/dockerd)

# 2. Already answering? Nothing to do.
if ping_ok; then
  say "engine answers on $sock"
  exit 0
fi

# 3. Start it. A dockerd that is still running (maybe still starting) is
#    waited for, never killed or started twice.
running_pid=$(pgrep -x dockerd | head -n1 || true)
if [ -n "$running_pid" ]; then
  say "dockerd (pid $running_pid) runs but does not answer yet; waiting"
else
  if [ -e "$pidfile" ]; then
    say "removing stale $pidfile (no dockerd process runs)"
    rm -f "$pidfile"
  fi
  say "starting $dockerd_bin (log: $log)"
  # setsid: the daemon outlives this script and its session; its output
  # goes to the log only. It keeps no other descriptor of ours: one it
  # inherited would stay open for its whole life, and a lock on it held
  # (`flock /tmp/tsvc-docker.lock` around a test that restarts dockerd
  # would then lock every other docker user out until dockerd stops).
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid "$dockerd_bin" >>"$log" 2>&1 </dev/null
  ) &
  running_pid=$!
fi

# 4. Wait for the socket to answer.
deadline=$((SECONDS + wait_s))
while ! ping_ok; do
  if ! kill -0 "$running_pid" 2>/dev/null; then
    echo "docker-up: dockerd exited; last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    die "dockerd could not be started"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "docker-up: last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    die "no answer on $sock within ${wait_s}s (dockerd pid $running_pid still runs)"
  fi
  sleep 0.5
done
say "engine answers on $sock (dockerd pid $running_pid)"
