#!/usr/bin/env bash
# The README's main job: install what is needed, build, and run tanuki-svc on
# the example config.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh gcc
exec build/gcc/tanuki-svc config show -c examples/tanuki.yaml
