#!/usr/bin/env bash
# Soak test (by hand, as root; not in CI): RUNS back-to-back runs of
# N_PREDICT generated tokens each on the full-size synthetic Mixtral-8x7B
# (~28.4 GB) in a cgroup v1 memory cgroup (page cache counted), sampling
# the process's RSS and the cgroup's usage every SAMPLE_S seconds. Reports
# per run: tok/s (prompt, decode; first vs last quarter of the decode
# steps, to show decay), RSS min/max over the run, the cgroup's peak,
# failcnt and OOM kills.
#
#   scripts/soak-offload.sh                       # 16 GiB cgroup, --mem 16G
#   CG_MEM=16G MOE_MEM=12G scripts/soak-offload.sh
#
# Env (defaults in brackets): MODEL [models/mixtral-8x7b-q4_k_m.gguf]
#   CG_MEM [16G]  MOE_MEM [$CG_MEM]  RUNS [3]  N_PREDICT [512]  THREADS [2]
#   SAMPLE_S [10]  MOE_ARGS []  OUT [target/soak-$MOE_MEM]  CG_NAME [moe-soak]
#   MOE [target/release/moe] and MOE_PREBUILT=1: run a copied binary (so a
#   rebuild during the hour-long soak does not replace it) without building
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${MODEL:-models/mixtral-8x7b-q4_k_m.gguf}"
CG_MEM="${CG_MEM:-16G}"
MOE_MEM="${MOE_MEM:-$CG_MEM}"
RUNS="${RUNS:-3}"
N_PREDICT="${N_PREDICT:-512}"
THREADS="${THREADS:-2}"
SAMPLE_S="${SAMPLE_S:-10}"
OUT="${OUT:-target/soak-$MOE_MEM}"
MOE="${MOE:-target/release/moe}"

# shellcheck source=scripts/cgroup.sh
source scripts/cgroup.sh
cg_init "${CG_NAME:-moe-soak}" "$CG_MEM"
[[ -n "${MOE_PREBUILT:-}" ]] || cargo build --release --locked --bin moe
[[ -f "$MODEL" ]] || scripts/synth-mixtral.sh "$MODEL"
mkdir -p "$OUT"

# A short prompt the model continues for N_PREDICT tokens (greedy).
prompt="The history of the expert cache: it began with a question about memory, and"
echo "soak-offload: $MODEL, cgroup $CG at $CG_MEM, --mem $MOE_MEM, $RUNS runs x $N_PREDICT tokens, $THREADS threads"
for run in $(seq 1 "$RUNS"); do
    evict_pages "$MODEL"
    cg_reset
    oom0=$(cg_oom_kills)
    # shellcheck disable=SC2086
    spawn_in_cg "$MOE" run -m "$MODEL" -p "$prompt" -n "$N_PREDICT" -c $((N_PREDICT + 256)) --temp 0 --ignore-eos \
        -t "$THREADS" --mem "$MOE_MEM" ${MOE_ARGS:-} --stats --stats-json "$OUT/run$run.json" \
        > "$OUT/run$run.out" 2> "$OUT/run$run.err"
    pid=$SPAWNED
    : > "$OUT/run$run.samples"
    while kill -0 "$pid" 2> /dev/null; do
        rss=$(awk '/^VmRSS:/{printf "%.0f", $2 * 1024}' "/proc/$pid/status" 2> /dev/null || echo 0)
        echo "$(date +%s) ${rss:-0} $(cat "$CG/memory.usage_in_bytes")" >> "$OUT/run$run.samples"
        sleep "$SAMPLE_S"
    done
    rc=0; wait "$pid" || rc=$?
    cat > "$OUT/run$run.cg" <<JSON
{"exit_code": $rc, "max_usage_bytes": $(cat "$CG/memory.max_usage_in_bytes"), "failcnt": $(cat "$CG/memory.failcnt"), "oom_kills": $(( $(cg_oom_kills) - oom0 ))}
JSON
    python3 - "$OUT" "$run" "$CG_MEM" <<'PY'
import json, sys
out, run, limit = sys.argv[1], sys.argv[2], sys.argv[3]
cg = json.load(open(f"{out}/run{run}.cg"))
try:
    j = json.load(open(f"{out}/run{run}.json"))
except Exception as e:
    print(f"run {run}: no stats ({e}); exit {cg['exit_code']}, OOM kills {cg['oom_kills']}")
    sys.exit(0)
dec = [t for t in j["tokens"] if t["phase"] == "decode"]
q = max(1, len(dec) // 4)
rate = lambda ts: len(ts) / sum(t["time_s"] for t in ts)
rss = [int(l.split()[1]) for l in open(f"{out}/run{run}.samples") if int(l.split()[1]) > 0]
steady = rss[len(rss) // 4:] or rss
gib = lambda b: b / 2**30
print(f"run {run}: exit {cg['exit_code']}, prompt {j['prompt_tokens'] / j['prompt_s']:.3f} tok/s, "
      f"decode {rate(dec):.3f} tok/s (first quarter {rate(dec[:q]):.3f}, last quarter {rate(dec[-q:]):.3f}), "
      f"RSS {gib(min(steady)):.2f}..{gib(max(steady)):.2f} GiB after the first quarter (peak {gib(max(rss)):.2f}), "
      f"cgroup peak {gib(cg['max_usage_bytes']):.2f} GiB of {limit}, failcnt {cg['failcnt']}, OOM kills {cg['oom_kills']}")
PY
done
