#!/usr/bin/env bash
# Runs every test: fetches the real test assets if needed (SmolLM2 and the
# Gemma 3 SentencePiece vocab, into models/), then the whole workspace's
# tests (optimised test profile, see Cargo.toml).
#
# The llama.cpp-made tiny MoE models and their references live in
# ../shared, beside our own checkouts only. Without it the tests that need
# them skip, and one line at the end counts them; with CI or
# MOE_REQUIRE_SHARED=1 set, a missing ../shared fails them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh all >/dev/null
# playwright-core for the chat page's headless Chromium test (skipped
# without npm or Chromium, unless MOE_REQUIRE_BROWSER=1).
if command -v npm >/dev/null; then
  npm ci --prefix tests/chat_page --no-audit --no-fund --loglevel=error >/dev/null ||
    echo "scripts/test.sh: npm ci in tests/chat_page failed; the browser test will skip (or fail where required)" >&2
fi
skips=target/shared-skips
rm -rf "$skips"
cargo test --workspace --locked "$@"
if [ -d "$skips" ]; then
  echo "skipped: ../shared/models absent ($(find "$skips" -type f | wc -l) tests)"
fi
