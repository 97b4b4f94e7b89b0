#!/usr/bin/env bash
# Prompt and generation speed at depth, moe against llama-bench, side by
# side: for each round and each depth, `moe bench` then `llama-bench` with
# the same -p/-n/-d/-t, one repetition each, so the two engines alternate
# on a noisy machine. Prints a table: each test's tok/s per round for both
# engines and the ratio of their means.
#
#   MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf LLAMA_BIN_DIR=/path/to/llama.cpp/build/bin \
#     [PROMPTS=512,2048,8192] [GEN=32] [DEPTHS=0,2048,8192] [THREADS=2] [ROUNDS=2] \
#     [TIER=avx2] [OUT=target/bench-depth] scripts/bench-depth.sh
#
# TIER sets MOE_QUANT_TIER for moe (compare it with a llama.cpp build for
# the same instruction set). Needs python3 for the table.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${MODEL:?set MODEL to a GGUF file}"
: "${LLAMA_BIN_DIR:?set LLAMA_BIN_DIR to the directory holding llama-bench}"
PROMPTS=${PROMPTS:-512,2048,8192}
GEN=${GEN:-32}
DEPTHS=${DEPTHS:-0,2048,8192}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-target/bench-depth}
MOE=${MOE:-target/release/moe}

[ -f "$MODEL" ] || { echo "bench-depth: $MODEL: no such file" >&2; exit 1; }
[ -x "$LLAMA_BIN_DIR/llama-bench" ] || { echo "bench-depth: $LLAMA_BIN_DIR/llama-bench: not an executable" >&2; exit 1; }
[ -x "$MOE" ] || cargo build --release --locked --bin moe
mkdir -p "$OUT"
rm -f "$OUT"/*.json

tier_env=()
[ -n "${TIER:-}" ] && tier_env=(env "MOE_QUANT_TIER=$TIER")

for round in $(seq 1 "$ROUNDS"); do
  for depth in ${DEPTHS//,/ }; do
    echo "round $round, depth $depth: moe" >&2
    "${tier_env[@]}" "$MOE" bench -q -m "$MODEL" -p "$PROMPTS" -n "$GEN" -d "$depth" -r 1 -t "$THREADS" -o json \
      > "$OUT/moe-r$round-d$depth.json"
    echo "round $round, depth $depth: llama-bench" >&2
    "$LLAMA_BIN_DIR/llama-bench" -m "$MODEL" -p "$PROMPTS" -n "$GEN" -d "$depth" -r 1 -t "$THREADS" -o json \
      > "$OUT/llama-r$round-d$depth.json" 2> "$OUT/llama-r$round-d$depth.err"
  done
done

python3 - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
runs = {"moe": {}, "llama": {}}
order = []
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    engine = os.path.basename(path).split("-")[0]
    for r in json.load(open(path)):
        if engine == "moe":
            name = r["test"]
        else:
            test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
            name = test + (f" @ d{r['n_depth']}" if r.get("n_depth") else "")
        runs[engine].setdefault(name, []).append(r["avg_ts"])
        if name not in order:
            order.append(name)
key = lambda n: (int(n.split("@ d")[1]) if "@ d" in n else 0, n.startswith("tg"), int(n.split()[0][2:]))
print("| test | moe tok/s | llama.cpp tok/s | ratio (means) |")
print("|---|---|---|---|")
for name in sorted(order, key=key):
    m, l = runs["moe"].get(name, []), runs["llama"].get(name, [])
    ratio = f"{(sum(m) / len(m)) / (sum(l) / len(l)):.2f}×" if m and l else "–"
    fmt = lambda xs: " / ".join(f"{x:.1f}" for x in xs) or "–"
    print(f"| {name} | {fmt(m)} | {fmt(l)} | {ratio} |")
EOF
