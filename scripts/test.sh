#!/usr/bin/env bash
# Runs every test: fetches the real test model if needed, then the whole
# workspace's tests (optimised test profile, see Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh >/dev/null
if [ ! -d ../shared/models ]; then
  echo "test.sh: WARNING: ../shared/models is missing; tests that need the shared reference models will fail" >&2
fi
cargo test --workspace --locked "$@"
