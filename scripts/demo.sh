#!/usr/bin/env bash
# The main job on a small real model: fetches SmolLM2-135M-Instruct (Q4_1),
# builds moe in release mode, and generates 32 tokens greedily.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$(scripts/fetch-model.sh)"
cargo build --release --locked --bin moe
exec target/release/moe run -m "$model" -p "${1:-The capital of France is}" -n 32 --temp 0
