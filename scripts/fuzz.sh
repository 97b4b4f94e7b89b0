#!/usr/bin/env bash
# Runs every fuzz target in fuzz/fuzz_targets/ for SECONDS each (default 30)
# over the committed corpus (fuzz/corpus/TARGET), one after the other, and
# fails on the first crash: a panic, an error that does not name the file,
# a failed consistency check (fuzz/src/), or a hang (> 10 s per input). Installs cargo-fuzz if it is missing; needs a
# nightly toolchain (`rustup toolchain install nightly` if there is none).
# New inputs go to a scratch directory, so the checkout stays clean; a
# crashing input is written to fuzz/artifacts/TARGET/ and the log says how
# to reproduce it.
#
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || { echo "fuzz.sh: a nightly Rust toolchain is needed (cargo fuzz uses -Zsanitizer)" >&2; exit 1; }
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi
# The tokenizer target reads SmolLM2's vocab.
scripts/fetch-model.sh >/dev/null

cd fuzz
# -a: debug assertions and overflow checks, so arithmetic overflow is a crash.
cargo +nightly fuzz build -a
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for src in fuzz_targets/*.rs; do
  target="$(basename "$src" .rs)"
  mkdir -p "$scratch/$target"
  echo "fuzz.sh: $target for ${secs}s over corpus/$target" >&2
  # Leak detection is off: the engine keeps caches between calls by design,
  # which LeakSanitizer would flag on every run (and slow it 20x).
  cargo +nightly fuzz run -a "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$secs" -timeout=10 -detect_leaks=0 -print_final_stats=1 2>&1 \
    | { grep -av -e '^#[0-9]' -e '^moe: ' -e '^"' -e 'ecommended dictionary' || true; }
done
echo "fuzz.sh: all targets ran ${secs}s without a crash" >&2
