#!/usr/bin/env bash
# Speculative decoding benchmark (by hand; not in CI): `moe bench --draft N`
# generates greedily with and without drafting on two prompts, one the
# model continues by copying (the default: a passage to copy) and one of
# plain prose, where drafts fail. It prints generated tok/s for both and,
# on an MoE with an expert cache, the expert bytes read per generated token.
#
#   scripts/bench-draft.sh MODEL [CACHE] [N_GEN] [REPS]
#   scripts/bench-draft.sh models/smollm2-8x2-fit.gguf 30% 128 3
#   CG_MEM=16G scripts/bench-draft.sh models/mixtral-8x7b-q4_k_m.gguf 16G 32 1
#
# CACHE: --expert-cache (a size or a percentage), or with CG_MEM set the
# --mem for a run inside a cgroup v1 memory cgroup of CG_MEM (as root; the
# model's pages are dropped first, as in scripts/bench-offload.sh).
# Env: DRAFT [8] max drafted tokens; THREADS [2]; EXTRA [] more bench flags.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: scripts/bench-draft.sh MODEL [CACHE] [N_GEN] [REPS]}
CACHE=${2:-30%}
N_GEN=${3:-128}
REPS=${4:-3}
MOE=target/release/moe
cargo build --release --locked --bin moe
PROSE="The history of the harbour town begins in the twelfth century, when a few families of fishermen settled on the sheltered side of the bay. Over the next"
run() { "$@"; }
mem_flag=(--expert-cache "$CACHE")
if [[ -n "${CG_MEM:-}" ]]; then
  # shellcheck source=scripts/cgroup.sh
  source scripts/cgroup.sh
  cg_init moe-bench-draft "$CG_MEM"
  mem_flag=(--mem "$CACHE")
  run() {
    evict_pages "$MODEL"
    cg_reset
    in_cg "$@"
    echo "cgroup peak: $(( $(cg_peak_bytes) >> 20 )) MiB of $CG_MEM; OOM kills so far: $(cg_oom_kills)"
  }
fi
# shellcheck disable=SC2086
for prompt in copy prose; do
  echo "== $prompt prompt"
  args=(bench -m "$MODEL" -p 0 -n "$N_GEN" -r "$REPS" -t "${THREADS:-2}" --draft "${DRAFT:-8}" "${mem_flag[@]}" ${EXTRA:-})
  [[ $prompt == prose ]] && args+=(--draft-prompt "$PROSE")
  run "$MOE" "${args[@]}"
done
