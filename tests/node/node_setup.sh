# node_setup.sh: sourced by the tests/cli tests that drive node (test_page,
# test_export). node_setup installs tests/node's packages, pinned by its
# package-lock.json, with `npm ci` into the build directory (once per lock:
# again only when the lock changes) and sets NODE_PATH for them. It needs
# node and npm (scripts/deps.sh --test installs Debian's when the machine
# has none). Returns 1 with the reason on stderr.
node_setup() {
  local src="$TSVC_SOURCE_DIR/tests/node" dir
  dir="$(dirname "$BIN")/node"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node_setup: node and npm are needed (scripts/deps.sh --test)" >&2; return 1
  fi
  mkdir -p "$dir" || return 1
  (
    flock 9 # two tests of one build may start together
    if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" || [ ! -d "$dir/node_modules" ]; then
      cp "$src/package.json" "$src/package-lock.json" "$dir/" &&
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
    fi
  ) 9>"$dir/.lock" || { echo "node_setup: npm ci failed in $dir" >&2; return 1; }
  export NODE_PATH="$dir/node_modules"
}

# need TOOL...: each must be installed; else the test fails under CI
# (TSVC_REQUIRE_DOCKER=1, set by scripts/test.sh) and is skipped elsewhere.
need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null && continue
    if [ "${TSVC_REQUIRE_DOCKER:-0}" = 1 ]; then
      bad "$t is installed (scripts/deps.sh --test)"; finish; exit 1
    fi
    echo "SKIP: no $t (scripts/deps.sh --test installs it)"; exit 77
  done
}
