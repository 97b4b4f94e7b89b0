#!/usr/bin/env bash
# Writes a synthetic Mixtral-8x7B-shaped Q4_K_M GGUF (random valid weights,
# llama.cpp's Q4_K_M type mix; 28,448,630,528 bytes, ~83 s on a 2-core VM)
# into models/ (git-ignored). Loads in llama.cpp too.
#
#   scripts/synth-mixtral.sh [OUT] [extra `moe synth` flags, e.g. --layers 4 --seed 7]
#
# Env: VOCAB_FROM=GGUF copies that file's tokenizer (e.g. a 32000-token llama
# SPM vocab) instead of the default 32000-token byte-level one.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-models/mixtral-8x7b-q4_k_m.gguf}"
shift || true
cargo build --release --locked --bin moe
mkdir -p "$(dirname "$out")"
vocab=()
[[ -n "${VOCAB_FROM:-}" ]] && vocab=(--vocab-from "$VOCAB_FROM")
exec target/release/moe synth --preset mixtral-8x7b --type q4_k_m -o "$out" --force "${vocab[@]}" "$@"
