# pkg.sh: sourced by the other scripts (not run on its own).
#
#   pkg_install WHO PKG...   install the Debian packages of the list that are
#                            missing, as root; WHO names the script in messages
#   PKG_NEW                  after it: the packages it installed
#
# apt-get update runs first, only when something is missing. The packages'
# own daemons are not started while they are installed (policy-rc.d, as in
# Debian's container images): postgresql and redis-server are installed for
# their programs, tanuki-svc runs its own servers on the ports of its
# config. Someone else's /usr/sbin/policy-rc.d is left as it is; ours is
# removed afterwards (or by the next run, when this one was interrupted).

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

pkg_install() {
  local who=$1 p policy=/usr/sbin/policy-rc.d ours=0 rc=0
  shift
  PKG_NEW=()
  for p in "$@"; do
    pkg_installed "$p" || PKG_NEW+=("$p")
  done
  [ ${#PKG_NEW[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$who: fatal: must run as root to install ${PKG_NEW[*]}" >&2
    return 1
  fi
  echo "$who: installing ${PKG_NEW[*]}"
  # Ours when missing, or left by an interrupted run of ours (the marker).
  if [ ! -e "$policy" ] || grep -q '^# tanuki-svc: pkg.sh' "$policy" 2>/dev/null; then
    printf '#!/bin/sh\n# tanuki-svc: pkg.sh: no daemon starts while packages are installed\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -qq; then
    echo "$who: fatal: apt-get update failed" >&2
    rc=1
  elif ! apt-get install -y -qq --no-install-recommends "${PKG_NEW[@]}" >/dev/null; then
    echo "$who: fatal: apt-get install ${PKG_NEW[*]} failed" >&2
    rc=1
  fi
  [ "$ours" -eq 1 ] && rm -f "$policy"
  return "$rc"
}
