#!/usr/bin/env bash
# Build the images the tests and the example use, only those that are
# missing, as root on Debian 12 with a Docker engine answering (on
# /var/run/docker.sock or $DOCKER_HOST; scripts/docker-up.sh starts one).
# No image registry is needed: the base image comes from debootstrap and
# Debian's apt mirror, the others from docker/<name>/Dockerfile on top of it.
#   local/debian:bookworm  debootstrap --variant=minbase, docker import
#   tanuki/postgres:15     docker/postgres (Debian's postgresql)
#   tanuki/redis:7         docker/redis    (Debian's redis-server)
# Installs what it uses when missing: the docker command (docker.io; its
# daemon is not started) and, only to build the base image, debootstrap.
# (debootstrap inside a container needs docker run --privileged.)
# Options: --force rebuilds all three. --stand-ins also makes the local
# stand-ins of the upstream images examples/tanuki.yaml names, for machines
# where no registry answers (scripts/quickstart.sh uses it when a pull fails):
#   postgres:16      FROM tanuki/postgres:15 (Debian's PostgreSQL 15!)
#   redis:7-alpine   FROM tanuki/redis:7     (Debian's redis 7.0, not Alpine)
# Each carries the label org.tanuki-svc.stand-in saying what it is. They
# honour what tanuki-svc's configs use of the upstream images
# (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, data in
# /var/lib/postgresql/data; redis on 6379, data in /data), but the postgres
# stand-in is version 15: a data directory it made cannot be opened by the
# real postgres:16 (docker rmi the stand-in and remove the volume, or
# pg_dump first, before switching). An upstream image already present is
# never replaced.
# Environment: TSVC_IMAGE_BASE, TSVC_IMAGE_POSTGRES, TSVC_IMAGE_REDIS name
# the three images instead (to try a build beside the images in use).
# Exit codes: 0 all images present; 1 a build failed (the reason is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pkg.sh

say() { echo "images: $*"; }
die() { echo "images: fatal: $*" >&2; exit 1; }

base_tag=${TSVC_IMAGE_BASE:-local/debian:bookworm}
pg_tag=${TSVC_IMAGE_POSTGRES:-tanuki/postgres:15}
redis_tag=${TSVC_IMAGE_REDIS:-tanuki/redis:7}
force=0 standins=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --stand-ins) standins=1 ;;
    *) die "unknown option '$arg' (--force, --stand-ins)" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, debootstrap)"
command -v docker >/dev/null || pkg_install images docker.io || die "cannot install docker.io"
command -v docker >/dev/null || die "no docker command after installing docker.io"
docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/docker-up.sh starts one)"

t0=$SECONDS
have() { [ "$force" -eq 0 ] && docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror the host itself uses (deb822 or one-line format), so
# that the images build wherever the host's apt works.
apt_uris() {
  {
    grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -E '^https?://' || true
}
mirror=${TSVC_DEBIAN_MIRROR:-$(apt_uris | grep -E '/debian/?$' | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
security=$(apt_uris | grep -E '/debian-security/?$' | head -n1 || true)
security=${security%/}

rootfs=""
cleanup() {
  if [ -n "$rootfs" ] && [ -d "$rootfs" ]; then
    # debootstrap mounts proc and sys in the target; a failed run can leave
    # them mounted, and rm must never follow them into the host.
    awk -v d="$rootfs" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r \
      | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$rootfs"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The base image.
if have "$base_tag"; then
  say "$base_tag present"
else
  t=$SECONDS
  pkg_install images debootstrap || die "cannot install debootstrap"
  rootfs=$(mktemp -d /var/tmp/tanuki-rootfs.XXXXXX)
  say "debootstrap bookworm from $mirror into $rootfs (takes a few minutes)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
  rm -f "$rootfs.log"
  {
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ -n "$security" ] && echo "deb $security bookworm-security main"
  } >"$rootfs/etc/apt/sources.list"
  # Containers must not start services while packages are installed.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/var/log/*.log "$rootfs"/dev/* 2>/dev/null || true
  tar --numeric-owner -C "$rootfs" -c . \
    | docker import -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' - "$base_tag" >/dev/null \
    || die "docker import failed"
  cleanup; rootfs=""
  say "$base_tag built in $((SECONDS - t))s"
fi

# 2. The service images.
build() {
  local tag=$1 dir=$2 t=$SECONDS
  if have "$tag"; then
    say "$tag present"
    return 0
  fi
  say "building $tag from $dir"
  local logf
  logf=$(mktemp /var/tmp/tanuki-build.XXXXXX)
  if ! DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE=$base_tag" \
      -t "$tag" "$dir" >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2; rm -f "$logf"; die "docker build $tag failed"
  fi
  rm -f "$logf"
  say "$tag built in $((SECONDS - t))s"
}
build "$pg_tag" docker/postgres
build "$redis_tag" docker/redis

# 3. Stand-ins of the upstream images (--stand-ins): a label on top of ours.
standin() {
  local tag=$1 from=$2 what=$3
  local label
  label=$(docker image inspect -f '{{index .Config.Labels "org.tanuki-svc.stand-in"}}' "$tag" 2>/dev/null) || label=missing
  if [ "$label" = missing ] || { [ "$force" -eq 1 ] && [ -n "$label" ]; }; then
    printf 'FROM %s\nLABEL org.tanuki-svc.stand-in="%s"\n' "$from" "$what" \
      | DOCKER_BUILDKIT=0 docker build -q -t "$tag" - >/dev/null || die "docker build $tag failed"
    say "$tag: a local stand-in built from $from: $what"
  elif [ -n "$label" ]; then
    say "$tag present (a local stand-in: $label)"
  else
    say "$tag present (not a stand-in: left as it is)"
  fi
}
if [ "$standins" -eq 1 ]; then
  standin postgres:16 "$pg_tag" "Debian's PostgreSQL 15 standing in for postgres:16 (no registry answered)"
  standin redis:7-alpine "$redis_tag" "Debian's redis 7.0 standing in for redis:7-alpine (no registry answered)"
fi

say "all images present ($((SECONDS - t0))s)"
