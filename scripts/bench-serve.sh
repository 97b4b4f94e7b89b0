#!/usr/bin/env bash
# The server benchmark (run by hand, as root; not in CI): aggregate
# generated tok/s under 1, 2, 4 concurrent clients, moe serve against
# llama-server with the same number of slots, both in a cgroup v1 memory
# cgroup (page cache counts), engines alternated round by round, the model
# file's pages evicted before each server starts. Clients:
# benches/serve_clients.py (greedy /v1/completions, ignore_eos).
#
#   MODEL=m.gguf scripts/bench-serve.sh                                   # moe only
#   MODEL=m.gguf LLAMA_BIN_DIR=/path/to/llama.cpp/build/bin scripts/bench-serve.sh
#
# Env (defaults in brackets):
#   MODEL [required]   CG_MEM [16G] cgroup limit   THREADS [2]
#   CLIENTS [1,2,4]    PARALLEL [4] slots of both servers   CTX [4096] total context
#   REQUESTS [2] per client   TOKENS [32] per request   ROUNDS [2]
#   MOE_ARGS [] extra `moe serve` flags (e.g. "--expert-cache 30%")
#   LLAMA_ARGS [] extra llama-server flags   CG_NAME [moe-bench-serve]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:?MODEL=path/to/model.gguf}"
CG_MEM="${CG_MEM:-16G}"; THREADS="${THREADS:-2}"; CLIENTS="${CLIENTS:-1,2,4}"
PARALLEL="${PARALLEL:-4}"; CTX="${CTX:-4096}"; REQUESTS="${REQUESTS:-2}"; TOKENS="${TOKENS:-32}"; ROUNDS="${ROUNDS:-2}"
MOE=target/release/moe
cargo build --release --locked --bin moe
# shellcheck source=scripts/cgroup.sh
source scripts/cgroup.sh
cg_init "${CG_NAME:-moe-bench-serve}" "$CG_MEM"

port=18080
wait_ready() {
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
        kill -0 "$SPAWNED" 2>/dev/null || { echo "bench-serve: the server exited" >&2; return 1; }
        sleep 0.5
    done
    echo "bench-serve: the server did not get ready" >&2
    return 1
}
run_engine() {
    local engine=$1
    evict_pages "$MODEL"
    cg_reset
    # The cgroup's OOM kill count only grows: report this run's.
    local kills0
    kills0=$(cg_oom_kills)
    if [[ $engine == moe ]]; then
        # shellcheck disable=SC2086
        spawn_in_cg "$MOE" serve -q -m "$MODEL" --port $port --parallel "$PARALLEL" -c "$CTX" -t "$THREADS" ${MOE_ARGS:-}
    else
        # shellcheck disable=SC2086
        spawn_in_cg "$LLAMA_BIN_DIR/llama-server" -m "$MODEL" --port $port -np "$PARALLEL" -c "$CTX" -t "$THREADS" --log-disable ${LLAMA_ARGS:-}
    fi
    if wait_ready; then
        echo "== $engine (round $round; cgroup $CG_MEM)"
        python3 benches/serve_clients.py "http://127.0.0.1:$port" --clients "$CLIENTS" --requests "$REQUESTS" --tokens "$TOKENS" --pid "$SPAWNED"
        echo "   cgroup peak $(( $(cg_peak_bytes) >> 20 )) MiB, OOM kills $(( $(cg_oom_kills) - kills0 ))"
    fi
    kill "$SPAWNED" 2>/dev/null || true
    wait "$SPAWNED" 2>/dev/null || true
}
for round in $(seq 1 "$ROUNDS"); do
    engines=(moe)
    [[ -n "${LLAMA_BIN_DIR:-}" ]] && engines=(moe llama)
    # Alternate which engine goes first.
    (( round % 2 == 0 )) && engines=("${engines[@]}") && [[ ${#engines[@]} == 2 ]] && engines=(llama moe)
    for e in "${engines[@]}"; do
        run_engine "$e"
    done
done
