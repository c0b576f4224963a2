#!/usr/bin/env bash
# `cmake --install` of this build tree, with --prefix and staged with
# DESTDIR: the files and nothing else, the library (SONAME, the exported
# symbols are exactly the functions of tsvc.h), tsvc.pc (shared and static
# linking), the systemd units (systemd-analyze verify), the man page, and
# examples/wait_healthy.c built outside the tree against each installed copy
# and run on a one-redis config (process runtime).
. "$(dirname "$0")/../cli/lib.sh"

B=${TSVC_BUILD_DIR:?TSVC_BUILD_DIR must name the build tree}
SRC=${TSVC_SOURCE_DIR:?}
CC=${TSVC_CC:-cc}
read -r -a SAN <<<"${TSVC_SANITIZE_FLAGS:-}"
for tool in systemd-analyze pkg-config objdump nm redis-server; do
  command -v "$tool" >/dev/null || { bad "$tool is missing (scripts/deps.sh --test installs it)"; finish; exit 1; }
done
VERSION=$("$BIN" version | sed -nE '1s/^tanuki-svc ([0-9.]+).*/\1/p')

# expect_files ROOT LIBDIR: the installed files are exactly these.
expect_files() {
  local root=$1 lib=$2 got want
  got=$(cd "$root" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort)
  want=$(sort <<EOF
bin/tanuki-svc
include/tsvc.h
$lib/libtsvc.a
$lib/libtsvc.so
$lib/libtsvc.so.0
$lib/libtsvc.so.$VERSION
$lib/pkgconfig/tsvc.pc
lib/systemd/system/tanuki-svc@.service
lib/systemd/user/tanuki-svc@.service
share/bash-completion/completions/tanuki-svc
share/doc/tanuki-svc/README.md
share/doc/tanuki-svc/examples/tanuki.yaml
share/doc/tanuki-svc/examples/wait_healthy.c
share/man/man1/tanuki-svc.1.gz
EOF
)
  eq "the installed files under $root" "$got" "$want"
}

# A one-redis config for the example, on a free port.
RPORT=$(free_port)
mkdir -p "$T/outside"
cat >"$T/outside/tanuki.yaml" <<YAML
runtime: process
services:
  redis:
    port: $RPORT
    healthcheck: {interval: 300ms, timeout: 1s, retries: 2, start_period: 30s, start_interval: 200ms}
YAML

# build_example NAME PKG-CONFIG-ARGS...: compile the installed
# wait_healthy.c in $T/outside with the flags pkg-config gives.
build_example() {
  local name=$1; shift
  local cflags libs
  cflags=$(pkg-config "$@" --cflags tsvc) && libs=$(pkg-config "$@" --libs tsvc) ||
    { bad "$name: pkg-config $* tsvc"; return 1; }
  if [ "$name" = static ]; then
    # libtsvc.a, and the modules of Requires.private as shared libraries:
    # `pkg-config --static` would also want every private library of
    # Debian's libcurl (nghttp2, ssh2, ldap, ...) as -dev packages.
    libs="-Wl,-Bstatic -ltsvc -Wl,-Bdynamic $(pkg-config --libs-only-L tsvc) $(pkg-config --libs $(pkg-config --print-requires-private tsvc)) -pthread -lm"
  fi
  # shellcheck disable=SC2086
  if (cd "$T/outside" && "$CC" "${SAN[@]}" -Wall -Wextra -Werror $cflags wait_healthy.c \
        $libs -o "wait_healthy_$name") >"$T/cc_$name.log" 2>&1; then
    ok "$name: wait_healthy.c compiles against the installed library"
  else
    bad "$name: compile: $(cat "$T/cc_$name.log")"; return 1
  fi
}

# run_example NAME [ENV...]: it starts redis, sees it healthy, prints it.
run_example() {
  local name=$1; shift
  local out rc
  out=$(cd "$T/outside" && env "$@" "./wait_healthy_$name" tanuki.yaml redis 60 2>"$T/ex_$name.err"); rc=$?
  eq "$name: wait_healthy exits 0" "$rc" 0
  has "$name: it saw redis healthy through tsvc_manager_subscribe" "$out" "redis: starting -> healthy"
  has "$name: tsvc_manager_get_status" "$out" "healthy  yes"
  has "$name: ... on the process runtime" "$out" "runtime  process"
  no_sanitizer_reports "$T/ex_$name.err"
  [ "$rc" -eq 0 ] || cat "$T/ex_$name.err"
  if redis-cli -p "$RPORT" ping >/dev/null 2>&1; then bad "$name: redis still runs after stop"; else ok "$name: redis stopped"; fi
}

# ---- cmake --install --prefix ----------------------------------------------
P=$T/prefix
cmake --install "$B" --prefix "$P" >"$T/install.log" 2>&1
check "cmake --install --prefix" test $? -eq 0
PC=$(find "$P" -name tsvc.pc)
LIB=$(PKG_CONFIG_PATH=$(dirname "$PC") pkg-config --variable=libdir tsvc)
LIBREL=${LIB#"$P"/}
expect_files "$P" "$LIBREL"
eq "tsvc.pc: prefix" "$(PKG_CONFIG_PATH=$(dirname "$PC") pkg-config --variable=prefix tsvc)" "$P"
eq "tsvc.pc: version" "$(PKG_CONFIG_PATH=$(dirname "$PC") pkg-config --modversion tsvc)" "$VERSION"

# The library.
has "libtsvc.so has its SONAME" "$(objdump -p "$LIB/libtsvc.so.$VERSION")" "SONAME               libtsvc.so.0"
eq "libtsvc.so.0 -> libtsvc.so.$VERSION" "$(readlink "$LIB/libtsvc.so.0")" "libtsvc.so.$VERSION"
eq "libtsvc.so -> libtsvc.so.0" "$(readlink "$LIB/libtsvc.so")" "libtsvc.so.0"
api=$(cc -E -P "$P/include/tsvc.h" | grep -oE '\btsvc_[a-z0-9_]+ *\(' | tr -d '( ' | sort -u)
exported=$(nm -D --defined-only "$LIB/libtsvc.so.$VERSION" | awk '$2 ~ /^[TWDBR]$/ {print $3}' |
           grep -vE '^(_init|_fini|__bss_start|_edata|_end)$' | sort -u)
eq "libtsvc.so exports the functions of tsvc.h, nothing else" "$exported" "$api"
check "libtsvc.a holds the internals too" sh -c "nm '$LIB/libtsvc.a' | grep -q ' T tsvc_config_load$'"

# The program: no path into the build tree, runs from the prefix.
hasnt "tanuki-svc has no RPATH/RUNPATH" "$(objdump -p "$P/bin/tanuki-svc")" "PATH"
out=$("$P/bin/tanuki-svc" version)
has "installed tanuki-svc version" "$out" "tanuki-svc $VERSION"
# The commit, when built from a git checkout (CI: a clone).
if commit=$(git -C "$SRC" rev-parse --short=12 HEAD 2>/dev/null) &&
   [ "$(git -C "$SRC" rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$SRC" && pwd -P)" ]; then
  has "... the git commit it was built from" "$(head -n1 <<<"$out")" "(git $commit"
else
  hasnt "... no commit outside git" "$(head -n1 <<<"$out")" "(git"
fi
# The libraries it runs with, as they say themselves.
has "... libuv" "$out" "libuv $(pkg-config --modversion libuv)"
has "... libcurl" "$out" "libcurl $(pkg-config --modversion libcurl)"
has "... jansson" "$out" "jansson $(pkg-config --modversion jansson)"
has "... libyaml" "$out" "libyaml $(pkg-config --modversion yaml-0.1)"
has "... libmicrohttpd" "$out" "libmicrohttpd $(pkg-config --modversion libmicrohttpd)"

# The man page and the completion.
has "the man page" "$(zcat "$P/share/man/man1/tanuki-svc.1.gz" | head -n1)" ".TH TANUKI-SVC 1"
check "the bash completion parses" bash -n "$P/share/bash-completion/completions/tanuki-svc"

# The units run the installed program and pass systemd's own checks.
for kind in system user; do
  unit=$P/lib/systemd/$kind/tanuki-svc@.service
  has "$kind unit: ExecStart runs the installed program" "$(grep '^ExecStart=' "$unit")" \
    "ExecStart=$P/bin/tanuki-svc up --config %f"
  inst=$(systemd-escape --path "$T/outside/tanuki.yaml")
  mkdir -p "$T/xdg" && chmod 700 "$T/xdg"
  flag=(); [ "$kind" = user ] && flag=(--user)
  out=$(XDG_RUNTIME_DIR=$T/xdg systemd-analyze "${flag[@]}" verify --man=no \
        "$P/lib/systemd/$kind/tanuki-svc@$inst.service" 2>&1); rc=$?
  eq "$kind unit: systemd-analyze verify passes, silently (instance $inst)" "$rc:$out" "0:"
done
has "the instance unescapes to the config path" "$(systemd-escape --unescape --path "$inst")" "$T/outside/tanuki.yaml"

# The example, against the prefix: shared, then with libtsvc.a (the
# modules tsvc.pc names in Requires.private are all it needs).
cp "$P/share/doc/tanuki-svc/examples/wait_healthy.c" "$T/outside/"
export PKG_CONFIG_PATH=$(dirname "$PC")
if build_example shared; then
  has "shared: linked against libtsvc.so.0" "$(objdump -p "$T/outside/wait_healthy_shared")" "NEEDED               libtsvc.so.0"
  has "shared: the loader finds the installed one" \
    "$(LD_LIBRARY_PATH=$LIB ldd "$T/outside/wait_healthy_shared")" "libtsvc.so.0 => $LIB/libtsvc.so.0"
  run_example shared LD_LIBRARY_PATH="$LIB"
fi
if build_example static; then
  hasnt "static: no libtsvc.so needed" "$(objdump -p "$T/outside/wait_healthy_static")" "libtsvc"
  run_example static
fi
unset PKG_CONFIG_PATH

# ---- DESTDIR=... cmake --install (a packager's staged install) --------------
S=$T/stage
DESTDIR=$S cmake --install "$B" >"$T/install-destdir.log" 2>&1
check "DESTDIR=... cmake --install" test $? -eq 0
CONFIGURED=$(sed -nE 's/^CMAKE_INSTALL_PREFIX:PATH=(.*)/\1/p' "$B/CMakeCache.txt")
expect_files "$S$CONFIGURED" "$LIBREL"
check "nothing outside DESTDIR/prefix" test "$(ls "$S")" = "$(echo "$CONFIGURED" | cut -d/ -f2)"
hits=$(grep -rlF "$S" "$S" 2>/dev/null)
eq "no installed file names the staging directory" "$hits" ""
SPC=$S$CONFIGURED/$LIBREL/pkgconfig
eq "staged tsvc.pc: the real prefix" "$(PKG_CONFIG_PATH=$SPC pkg-config --variable=prefix tsvc)" "$CONFIGURED"
has "staged unit: ExecStart under the real prefix" "$(grep '^ExecStart=' "$S$CONFIGURED/lib/systemd/system/tanuki-svc@.service")" \
  "ExecStart=$CONFIGURED/bin/tanuki-svc up"
export PKG_CONFIG_PATH=$SPC
if build_example staged --define-variable=prefix="$S$CONFIGURED"; then
  run_example staged LD_LIBRARY_PATH="$S$CONFIGURED/$LIBREL"
fi
unset PKG_CONFIG_PATH

finish
