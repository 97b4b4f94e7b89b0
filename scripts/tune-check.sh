#!/usr/bin/env bash
# Checks `moe tune`'s prediction against `moe run`: ROUNDS times, tune the
# model for MEM, then run it three times with the profile on tune's own
# calibration prompt (the built-in one) and the same token count; prints the prediction and the
# three measured decode rates. Usage: scripts/tune-check.sh [MODEL] [MEM] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/smollm2-8x2-fit.gguf}
MEM=${2:-450M}
ROUNDS=${3:-3}
MOE=target/release/moe
PROFILE=$(mktemp --suffix=.moe-profile)
PROMPT="The harbour was quiet at dawn. A fisherman counted his nets, a clerk opened the customs house, and somewhere a radio played an old song. In 1931 the bridge was finished; it cost 4.2 million pounds. fn area(r: f64) -> f64 { 3.14159 * r * r } Le marché ouvre à huit heures. Tell me why the sky is blue."
for round in $(seq "$ROUNDS"); do
  "$MOE" tune -m "$MODEL" --mem "$MEM" -n 32 -p "$PROMPT" -o "$PROFILE" 2>/dev/null | grep recommended:
  for i in 1 2 3; do
    "$MOE" run -m "$MODEL" --profile "$PROFILE" -p "$PROMPT" -n 32 --temp 0 --ignore-eos 2>&1 >/dev/null | grep "generation:"
  done
  uptime
done
rm -f "$PROFILE"
