#!/usr/bin/env python3
"""Summarises a scripts/bench-offload.sh run: OUT/moe.json (moe --stats-json),
OUT/*.cg (cgroup figures), OUT/llama.err (llama.cpp's timings).

    bench_summary.py OUT DISK_GBPS N_PROMPT

The bound, per token t: max(bytes read_t / disk throughput, compute_t),
compute_t = time_t - stall_t (the time not spent waiting for experts).
Our share of the bound = sum(bound_t) / sum(time_t)."""

import json
import os
import re
import sys


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def phase_figures(tokens, disk_bps, n, t):
    """`n` forward passes in `t` seconds; `tokens`: their per-token records."""
    if n == 0 or not tokens:
        return None
    hits = sum(x["hits"] or 0 for x in tokens)
    acc = hits + sum(x["misses"] or 0 for x in tokens)
    read = sum(x["io_bytes"] or 0 for x in tokens)
    stall = sum(x["stall_s"] or 0 for x in tokens)
    bound = sum(max((x["io_bytes"] or 0) / disk_bps, x["time_s"] - (x["stall_s"] or 0)) for x in tokens)
    io_time = read / disk_bps
    return {
        "tokens": n,
        "tok_s": n / t if t else 0,
        "s_per_token": t / n,
        "hit_rate": hits / acc if acc else None,
        "read_bytes_per_token": read / n,
        "stall_fraction": stall / t if t else 0,
        "compute_s_per_token": (t - stall) / n,
        "io_s_per_token": io_time / n,
        "bound_tok_s": n / bound if bound else 0,
        "share_of_bound": bound / t if t else 0,
    }


def moe_summary(out, disk_bps):
    j = load(os.path.join(out, "moe.json"))
    if j is None:
        return None
    toks = j["tokens"]
    np_, tp, nd, td = j["prompt_tokens"], j["prompt_s"], j["decode_passes"], j["generation_s"]
    s = {
        "prompt": phase_figures([x for x in toks if x["phase"] == "prompt"], disk_bps, np_, tp),
        "decode": phase_figures([x for x in toks if x["phase"] == "decode"], disk_bps, nd, td),
        "all": phase_figures(toks, disk_bps, np_ + nd, tp + td),
        "ready_s": j["load_s"] + j["first_token_s"],
        "load_s": j["load_s"],
        "cache_budget_bytes": j["plan"]["expert_cache_bytes"],
        "prefetch": j["prefetch"],
        "cg": load(os.path.join(out, "moe.cg")),
    }
    r = j.get("routing")
    if r:
        s["routing"] = {k: r[k] for k in ("mean_usage_evenness", "mean_max_share", "mean_set_change_rate", "mean_reuse_rate")}
        s["routing"]["mean_distinct_sets"] = sum(l["distinct_sets"] for l in r["layers"]) / len(r["layers"])
    return s


def llama_summary(out):
    path = os.path.join(out, "llama.err")
    if not os.path.exists(path):
        return None
    text = open(path, errors="replace").read()

    def grab(pattern):
        m = re.search(pattern, text)
        return m.groups() if m else None

    load_ms = grab(r"load time =\s*([\d.]+) ms")
    pe = grab(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
    ev = grab(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs")
    s = {"cg": load(os.path.join(out, "llama.cg")), "completed": pe is not None}
    if load_ms:
        s["load_s"] = float(load_ms[0]) / 1e3
    if pe:
        s["prompt"] = {"tokens": int(pe[1]), "tok_s": int(pe[1]) / (float(pe[0]) / 1e3)}
        # llama.cpp reports no per-token times: load + the mean prompt token.
        s["ready_s_approx"] = s.get("load_s", 0) + float(pe[0]) / 1e3 / int(pe[1])
    if ev:
        s["decode"] = {"tokens": int(ev[1]), "tok_s": int(ev[1]) / (float(ev[0]) / 1e3) if float(ev[0]) else 0}
    if pe and ev and s["cg"]:
        n = int(pe[1]) + int(ev[1])
        s["all_tok_s"] = n / ((float(pe[0]) + float(ev[0])) / 1e3)
        s["device_read_bytes_per_token"] = s["cg"]["device_read_bytes"] / n
    return s


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main():
    out, disk_gbps, n_prompt = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    disk_bps = disk_gbps * 1e9
    ours, llama = moe_summary(out, disk_bps), llama_summary(out)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"disk_gbps": disk_gbps, "n_prompt": n_prompt, "moe": ours, "llama": llama}, f, indent=1)
    print(f"\n## Offload benchmark ({out}); disk O_DIRECT expert reads: {disk_gbps:.3f} GB/s\n")
    print("| figure | moe | llama.cpp |")
    print("|---|---|---|")
    rows = []
    o = ours or {}
    l = llama or {}
    for ph in ("prompt", "decode"):
        rows.append((f"{ph} tok/s", fmt((o.get(ph) or {}).get("tok_s"), ".3f"), fmt((l.get(ph) or {}).get("tok_s"), ".3f")))
    rows.append(("all tokens tok/s", fmt((o.get("all") or {}).get("tok_s"), ".3f"), fmt(l.get("all_tok_s"), ".3f")))
    a = o.get("all") or {}
    rows += [
        ("hit rate (all tokens)", fmt(a.get("hit_rate"), ".3f"), "-"),
        ("GB read per token", fmt((a.get("read_bytes_per_token") or 0) / 1e9 if a else None, ".3f"),
         fmt((l.get("device_read_bytes_per_token") or 0) / 1e9 if l.get("device_read_bytes_per_token") else None, ".3f") + " (device)"),
        ("stall fraction", fmt(a.get("stall_fraction"), ".3f"), "-"),
        ("compute s/token", fmt(a.get("compute_s_per_token"), ".3f"), "-"),
        ("I/O s/token at disk speed", fmt(a.get("io_s_per_token"), ".3f"), "-"),
        ("bound tok/s", fmt(a.get("bound_tok_s"), ".3f"), "-"),
        ("share of bound", fmt(a.get("share_of_bound"), ".1%"), "-"),
        ("ready (load + first token) s", fmt(o.get("ready_s"), ".2f"), fmt(l.get("ready_s_approx"), ".2f") + " (load + mean prompt token)"),
    ]
    cgs = [s.get("cg") or {} for s in (o, l)]
    rows.append(("cgroup max usage GiB", *[fmt(c["max_usage_bytes"] / 2**30 if c else None, ".2f") for c in cgs]))
    rows.append(("cgroup failcnt / OOM kills", *[f"{c['failcnt']} / {c['oom_kills']}" if c else "-" for c in cgs]))
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    if o.get("all") and l.get("all_tok_s"):
        print(f"\nmoe / llama.cpp (all tokens): {o['all']['tok_s'] / l['all_tok_s']:.2f}x")
    if o.get("routing"):
        r = o["routing"]
        print(
            f"routing diversity (mean over layers): evenness {r['mean_usage_evenness']:.3f}, max share {r['mean_max_share']:.3f}, "
            f"set change {r['mean_set_change_rate']:.3f}, reuse {r['mean_reuse_rate']:.3f}, distinct sets {r['mean_distinct_sets']:.1f}"
        )
    print(f"details: {out}/summary.json")


if __name__ == "__main__":
    main()
