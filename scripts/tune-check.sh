#!/usr/bin/env bash
# Checks `moe tune`'s prediction against `moe run`: ROUNDS times, tune the
# model for MEM, then run it three times with the profile on tune's own
# calibration prompt and the same token count; prints the prediction and
# the three measured decode rates.
#
#   scripts/tune-check.sh [MODEL] [MEM] [ROUNDS]
#   CG_MEM=16G scripts/tune-check.sh models/mixtral-8x7b-q4_k_m.gguf 16G 1
#
# Env: N [32] tokens per run. CG_MEM [unset]: run tune and every run in a
# cgroup v1 memory cgroup of that size (as root; page cache counted), with
# the model's pages dropped before each, as scripts/bench-offload.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/smollm2-8x2-fit.gguf}
MEM=${2:-450M}
ROUNDS=${3:-3}
N=${N:-32}
MOE=target/release/moe
PROFILE=$(mktemp --suffix=.moe-profile)
PROMPT="The harbour was quiet at dawn. A fisherman counted his nets, a clerk opened the customs house, and somewhere a radio played an old song. In 1931 the bridge was finished; it cost 4.2 million pounds. fn area(r: f64) -> f64 { 3.14159 * r * r } Le marché ouvre à huit heures. Tell me why the sky is blue."
run() { "$@"; }
if [[ -n "${CG_MEM:-}" ]]; then
  # shellcheck source=scripts/cgroup.sh
  source scripts/cgroup.sh
  cg_init moe-tune-check "$CG_MEM"
  run() { evict_pages "$MODEL"; in_cg "$@"; }
fi
for round in $(seq "$ROUNDS"); do
  run "$MOE" tune -m "$MODEL" --mem "$MEM" -n "$N" -p "$PROMPT" -o "$PROFILE" 2>/dev/null | grep "recommended:\|again with"
  for i in 1 2 3; do
    run "$MOE" run -m "$MODEL" --profile "$PROFILE" -p "$PROMPT" -n "$N" --temp 0 --ignore-eos 2>&1 >/dev/null | grep "generation:"
  done
  uptime
done
rm -f "$PROFILE"
