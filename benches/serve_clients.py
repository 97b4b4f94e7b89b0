#!/usr/bin/env python3
"""Aggregate generation speed of an OpenAI-compatible server under C
concurrent clients (moe serve, llama-server): each client sends R
completion requests one after another (greedy, ignore_eos, N tokens each).

Prints, per client count: requests answered, aggregate generated tok/s
(all completion tokens over the wall time), where the server has moe's
/metrics the expert bytes it read per generated token, and with --pid
(either server) the bytes the process fetched from storage per generated
token (/proc/PID/io read_bytes: reads and page faults that missed the page
cache).

Usage: benches/serve_clients.py URL [--clients 1,2,4] [--requests 2] [--tokens 64] [--prompt TEXT] [--pid PID]
Standard library only.
"""
import argparse
import json
import re
import threading
import time
import urllib.request


def post(url, body):
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.load(r)


def metric_sum(url, name):
    try:
        text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    except Exception:
        return None
    if not re.search(r"^moe_", text, re.M):
        return None
    # Before the first request moe has no per-layer lines yet: 0 bytes.
    return sum(float(m.group(1)) for m in re.finditer(r"^moe_%s(?:\{[^}]*\})? (\S+)$" % name, text, re.M))


def storage_read_bytes(pid):
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def per_token(before, after, tokens):
    return (after - before) / tokens if before is not None and after is not None and tokens else None


def run(url, clients, requests, tokens, prompt, pid):
    done, tokens_out, errors = [0], [0], []
    lock = threading.Lock()

    def client(c):
        for r in range(requests):
            body = {"prompt": f"{prompt} ({c}.{r})", "max_tokens": tokens, "temperature": 0, "ignore_eos": True}
            try:
                out = post(url, body)
                with lock:
                    done[0] += 1
                    tokens_out[0] += out["usage"]["completion_tokens"]
            except Exception as e:
                with lock:
                    errors.append(str(e))

    bytes0 = metric_sum(url, "expert_cache_read_bytes_total")
    disk0 = storage_read_bytes(pid)
    t0 = time.time()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    bytes1 = metric_sum(url, "expert_cache_read_bytes_total")
    disk1 = storage_read_bytes(pid)
    return done[0], tokens_out[0], wall, per_token(bytes0, bytes1, tokens_out[0]), per_token(disk0, disk1, tokens_out[0]), errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--clients", default="1,2,4")
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("--pid", type=int, help="the server's process, for the storage reads per token")
    a = ap.parse_args()
    print(f"{'clients':>7} {'answered':>8} {'tokens':>7} {'wall s':>8} {'agg tok/s':>10} {'MiB/token':>10} {'disk MiB/tok':>12}")
    mib = lambda v, w: f"{v / 2**20:{w}.2f}" if v is not None else f"{'-':>{w}}"
    for c in [int(x) for x in a.clients.split(",")]:
        n, toks, wall, expert, disk, errors = run(a.url.rstrip("/"), c, a.requests, a.tokens, a.prompt, a.pid)
        print(f"{c:>7} {n:>8} {toks:>7} {wall:>8.2f} {toks / wall:>10.2f} {mib(expert, 10)} {mib(disk, 12)}", flush=True)
        for e in errors[:3]:
            print(f"        error: {e}")


if __name__ == "__main__":
    main()
