#!/usr/bin/env bash
# Writes a synthetic Mistral-7B-shaped dense Q4_K_M GGUF (random valid
# weights, llama.cpp's Q4_K_M type mix; about 4.37 GB) into
# models/ (git-ignored). Loads in llama.cpp too.
#
#   scripts/synth-mistral7b.sh [OUT] [extra `moe synth` flags, e.g. --layers 8 --seed 7]
#
# Env: VOCAB_FROM=GGUF copies that file's tokenizer instead of the default
# 32000-token byte-level one.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-models/mistral-7b-q4_k_m.gguf}"
shift || true
cargo build --release --locked --bin moe
mkdir -p "$(dirname "$out")"
vocab=()
[[ -n "${VOCAB_FROM:-}" ]] && vocab=(--vocab-from "$VOCAB_FROM")
exec target/release/moe synth --preset mistral-7b --type q4_k_m -o "$out" --force "${vocab[@]}" "$@"
