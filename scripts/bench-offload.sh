#!/usr/bin/env bash
# The offload benchmark (run by hand, as root; not in CI): a full-size
# synthetic Mixtral-8x7B Q4_K_M (~28.4 GB) in a cgroup v1 memory cgroup of
# 16 GiB (page cache counts), 2 threads. Before each run the model file's
# pages are evicted; the prompt (>= 128 tokens of varied text) is fed one
# token at a time (both engines get -b 1, llama.cpp also -ub 1), then
# tokens are generated.
#
# Reports per engine: prompt and decode tok/s, hit rate, bytes read per
# token, stall fraction, time to first token processed, the cgroup's
# memory.max_usage_in_bytes, failcnt and OOM kills; the disk's O_DIRECT
# throughput for expert reads (`moe disk-bench`, same cgroup, same run);
# and the bound: per token max(missed bytes / disk throughput, compute
# time), with our share of it.
#
#   scripts/bench-offload.sh                       # moe only
#   LLAMA_BIN_DIR=/path/to/llama.cpp/build/bin scripts/bench-offload.sh   # + llama.cpp
#
# Env (defaults in brackets):
#   MODEL [models/mixtral-8x7b-q4_k_m.gguf; written by scripts/synth-mixtral.sh if missing]
#   CG_MEM [16G] cgroup limit     MOE_MEM [$CG_MEM] moe's --mem
#   THREADS [2]   N_PREDICT [16]   PROMPT_FILE [scripts/bench-prompt.txt]
#   MOE_ARGS [] extra `moe run` flags, e.g. "--no-prefetch --loader-threads 2 --prefetch-depth 1"
#   LLAMA_BIN_DIR [] a llama.cpp build's bin dir (llama-completion or llama-cli)
#   LLAMA_ARGS [] extra llama.cpp flags (e.g. drop --no-repack: see LLAMA_REPACK)
#   LLAMA_REPACK [0] 1: leave llama.cpp's default repacking on (expect an OOM kill)
#   SKIP_MOE [0] 1: only llama.cpp     OUT [target/bench-offload] results dir
#   CG_NAME [moe-bench] cgroup name    DROP_CACHES [1] also echo 1 > drop_caches
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${MODEL:-models/mixtral-8x7b-q4_k_m.gguf}"
CG_MEM="${CG_MEM:-16G}"
MOE_MEM="${MOE_MEM:-$CG_MEM}"
THREADS="${THREADS:-2}"
N_PREDICT="${N_PREDICT:-16}"
PROMPT_FILE="${PROMPT_FILE:-scripts/bench-prompt.txt}"
OUT="${OUT:-target/bench-offload}"
MOE=target/release/moe

die() { echo "bench-offload: $*" >&2; exit 1; }
[[ -f "$PROMPT_FILE" ]] || die "no prompt file $PROMPT_FILE"
cargo build --release --locked --bin moe
[[ -f "$MODEL" ]] || scripts/synth-mixtral.sh "$MODEL"
mkdir -p "$OUT"

# --- cgroup and eviction ----------------------------------------------------
# shellcheck source=scripts/cgroup.sh
source scripts/cgroup.sh
cg_init "${CG_NAME:-moe-bench}" "$CG_MEM"
oom_kills() { cg_oom_kills; }
evict() {
    evict_pages "$MODEL"
    if command -v fincore > /dev/null; then fincore --bytes --noheadings "$MODEL" | awk '{print "bench-offload: still cached after eviction: " $1 " bytes"}'; fi
}
# Bytes read from block devices (whole machine; other load adds to it).
disk_read_bytes() {
    local s=0 d
    for d in /sys/block/*; do
        case "${d##*/}" in loop* | ram* | zram*) continue ;; esac
        s=$((s + $(awk '{print $3}' "$d/stat") * 512))
    done
    echo "$s"
}

prompt="$(cat "$PROMPT_FILE")"
n_prompt=$("$MOE" tokenize -m "$MODEL" -p "$prompt" --ids | tail -1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[[ $n_prompt -ge 128 ]] || echo "bench-offload: warning: the prompt is only $n_prompt tokens (want >= 128)" >&2
ctx=$((n_prompt + N_PREDICT + 8))
echo "bench-offload: $MODEL ($(stat -c %s "$MODEL") bytes), cgroup $CG at $CG_MEM, $THREADS threads, prompt $n_prompt tokens, $N_PREDICT generated, ctx $ctx"

# --- disk throughput (O_DIRECT, expert-sized random reads) ------------------
# Measured before and after the runs (a shared disk varies); the bound uses the mean.
loaders=$(grep -o -- '--loader-threads [0-9]*' <<<"${MOE_ARGS:-}" | awk '{print $2}' || true)
disk_bench() {
    evict
    # Other experts each time (--seed): a reread may come from a host cache.
    in_cg "$MOE" disk-bench -m "$MODEL" --reads 96 --seed "$1" --loader-threads "${loaders:-4}" | tee -a "$OUT/disk.txt"
}
rm -f "$OUT/disk.txt"
disk_bench 1

# --- moe --------------------------------------------------------------------
if [[ "${SKIP_MOE:-0}" != 1 ]]; then
    evict; cg_reset; oom0=$(oom_kills); rd0=$(disk_read_bytes)
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    in_cg "$MOE" run -m "$MODEL" -p "$prompt" -n "$N_PREDICT" -c "$ctx" --temp 0 --ignore-eos -t "$THREADS" -b 1 \
        --mem "$MOE_MEM" ${MOE_ARGS:-} --stats --stats-json "$OUT/moe.json" > "$OUT/moe.out" 2> "$OUT/moe.err" \
        || echo "bench-offload: moe exited with $?" >&2
    t1=$(date +%s.%N)
    rd1=$(disk_read_bytes)
    cat > "$OUT/moe.cg" <<EOF
{"max_usage_bytes": $(cat "$CG/memory.max_usage_in_bytes"), "failcnt": $(cat "$CG/memory.failcnt"),
 "oom_kills": $(( $(oom_kills) - oom0 )), "wall_s": $(echo "$t1 - $t0" | bc), "device_read_bytes": $((rd1 - rd0))}
EOF
    grep -E '^moe: (loaded|memory|prompt|generation|ready|decode|cache|I/O)' "$OUT/moe.err" || tail -5 "$OUT/moe.err"
fi

# --- llama.cpp --------------------------------------------------------------
if [[ -n "${LLAMA_BIN_DIR:-}" ]]; then
    bin="$LLAMA_BIN_DIR/llama-completion"
    [[ -x "$bin" ]] || bin="$LLAMA_BIN_DIR/llama-cli"
    [[ -x "$bin" ]] || die "no llama-completion or llama-cli in $LLAMA_BIN_DIR"
    repack=(--no-repack)
    [[ "${LLAMA_REPACK:-0}" == 1 ]] && repack=()
    evict; cg_reset; oom0=$(oom_kills); rd0=$(disk_read_bytes)
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    in_cg "$bin" -m "$MODEL" -f "$PROMPT_FILE" -n "$N_PREDICT" -c "$ctx" --temp 0 --ignore-eos -t "$THREADS" \
        "${repack[@]}" -ub 1 -b 1 -no-cnv ${LLAMA_ARGS:-} > "$OUT/llama.out" 2> "$OUT/llama.err" < /dev/null \
        || echo "bench-offload: llama.cpp exited with $? (137 = killed, e.g. by the OOM killer)" >&2
    t1=$(date +%s.%N)
    rd1=$(disk_read_bytes)
    cat > "$OUT/llama.cg" <<EOF
{"max_usage_bytes": $(cat "$CG/memory.max_usage_in_bytes"), "failcnt": $(cat "$CG/memory.failcnt"),
 "oom_kills": $(( $(oom_kills) - oom0 )), "wall_s": $(echo "$t1 - $t0" | bc), "device_read_bytes": $((rd1 - rd0))}
EOF
    grep -E 'load time|prompt eval time|eval time' "$OUT/llama.err" || tail -5 "$OUT/llama.err"
fi

disk_bench 2
disk_gbs=$(grep -o '= [0-9.]* GB/s' "$OUT/disk.txt" | awk '{s += $2; n++} END {printf "%.3f", s / n}')
echo "bench-offload: disk O_DIRECT expert reads: $(grep -o '= [0-9.]* GB/s' "$OUT/disk.txt" | awk '{print $2}' | paste -sd ' ') GB/s (before, after); mean $disk_gbs"
python3 scripts/bench_summary.py "$OUT" "$disk_gbs" "$n_prompt"
