#!/usr/bin/env python3
"""Generate the binary test fixtures of the `moe-quant` crate.

Regenerate (from the repository root):

    pip install gguf numpy
    python3 scripts/gen_quant_fixtures.py --ggml-lib /path/to/llama.cpp/build/bin

(gguf-py needs its MXFP4 class, which the llama-cpp-python 0.3.36
vendored llama.cpp's gguf-py 0.19.0 has; to use that one, put it first:
PYTHONPATH=/path/to/llama.cpp/gguf-py. The fixtures were made with it and
that tree's GGML_NATIVE build on an AVX-512 VNNI machine.)

Writes into quant/tests/fixtures/:

- dequant.mqf        random-but-valid blocks of every weight type and their
                     values as dequantized by gguf-py (`gguf.quants.dequantize`,
                     an independent numpy implementation). With --ggml-lib the
                     values are also checked against ggml's `dequantize_row_*`.
- weights_legacy.mqf random f32 rows and their Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/F16/
                     BF16/MXFP4 encodings by gguf-py's quantizers (which mirror
                     ggml's `quantize_row_*_ref`; checked against ggml with
                     --ggml-lib), and a row of MXFP4 edge cases (MXFP4_edges).
                     Entries for types added later are drawn after the older
                     ones, so the older entries do not change.
- act_x86.mqf        (needs --ggml-lib) activation rows and what llama.cpp's
                     CPU backend, built for this x86-64 machine, makes of them:
                     `quantize_row_q8_0/q8_1/q8_K`, `ggml_cpu_fp32_to_fp16/bf16`.
- vecdot_x86.mqf     (needs --ggml-lib) weight rows, f32 activations, the
                     activations as ggml quantized them, and ggml's dot products:
                     the kernel x86 runs (`ggml_vec_dot_*`) and the portable one
                     (`*_generic`). (The committed BF16.dot_x86 comes from the
                     build the older entries were made with; the vendored
                     AVX-512 build gives values 1 ulp apart, within the
                     tests' tolerance for the float types.)

--ggml-lib is the folder holding libggml-base.so and libggml-cpu.so of a
llama.cpp build for the machine whose logits we match (GGML_NATIVE, x86-64
with AVX2/AVX-512). Without it (--skip-ggml) only the gguf-py fixtures are
rewritten and the others are left as they are.

File format ("MQF1"): magic b"MQF1", u32 entry count, then per entry a u8
name length, the UTF-8 name, a u32 byte length and the bytes. All integers
little-endian. Arrays are stored raw (f32 LE, u8 blocks).
"""

import argparse
import ctypes
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quant", "tests", "fixtures")

BLOCK = {  # type: (elements, bytes) -- ggml's sizes (gguf-py's Q8_1 entry is stale)
    T.F32: (1, 4), T.F16: (1, 2), T.BF16: (1, 2),
    T.Q4_0: (32, 18), T.Q4_1: (32, 20), T.Q5_0: (32, 22), T.Q5_1: (32, 24), T.Q8_0: (32, 34),
    T.Q2_K: (256, 84), T.Q3_K: (256, 110), T.Q4_K: (256, 144), T.Q5_K: (256, 176), T.Q6_K: (256, 210),
    T.MXFP4: (32, 17),
}
# Byte offsets of the f16 scale fields inside each block: (d fields, m/dmin fields).
F16_FIELDS = {
    T.Q4_0: ([0], []), T.Q4_1: ([0], [2]), T.Q5_0: ([0], []), T.Q5_1: ([0], [2]), T.Q8_0: ([0], []),
    T.Q2_K: ([80], [82]), T.Q3_K: ([108], []), T.Q4_K: ([0], [2]), T.Q5_K: ([0], [2]), T.Q6_K: ([208], []),
    T.MXFP4: ([], []),
}
# Byte offsets of the E8M0 exponent fields (scale 2^(e-127)).
E8M0_FIELDS = {T.MXFP4: [0]}
WEIGHT_TYPES = list(BLOCK)
VEC_DOT_TYPE = {
    T.F32: T.F32, T.F16: T.F16, T.BF16: T.BF16,
    T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0, T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1,
    T.Q2_K: T.Q8_K, T.Q3_K: T.Q8_K, T.Q4_K: T.Q8_K, T.Q5_K: T.Q8_K, T.Q6_K: T.Q8_K,
    T.MXFP4: T.Q8_0,
}
ACT_BYTES = {T.F32: (1, 4), T.F16: (1, 2), T.BF16: (1, 2), T.Q8_0: (32, 34), T.Q8_1: (32, 36), T.Q8_K: (256, 292)}


def write_mqf(name, entries):
    blob = bytearray(b"MQF1")
    blob += struct.pack("<I", len(entries))
    for key, arr in entries:
        data = np.ascontiguousarray(arr).tobytes()
        k = key.encode()
        blob += struct.pack("<B", len(k)) + k + struct.pack("<I", len(data)) + data
    path = os.path.join(OUT_DIR, name)
    with open(path, "wb") as f:
        f.write(blob)
    print(f"wrote {path}: {len(entries)} entries, {len(blob)} bytes")


def f16_bits(v):
    return np.array([v], dtype=np.float16).view(np.uint16)[0]


def scale_bits(rng, i, sane):
    """f16 bits of a scale: mostly moderate magnitudes of either sign; in the
    non-sane set also subnormals, zero and large values."""
    if not sane:
        special = i % 8
        if special == 1:
            return int(rng.integers(1, 0x400)) | (0x8000 if rng.random() < 0.5 else 0)  # subnormal
        if special == 3:
            return 0
        if special == 5:
            return int(f16_bits(-float(rng.uniform(100, 4000))))
    mag = 10 ** rng.uniform(-4, -0.5)
    sign = -1.0 if rng.random() < 0.3 else 1.0
    return int(f16_bits(sign * mag))


def e8m0_byte(rng, i, sane):
    """An E8M0 exponent: moderate scales (2^-10..2^2 for MXFP4's halved
    scale); in the non-sane set also the subnormal scales (e = 0, 1), 2^-126
    (e = 2), large ones and e = 255 (2^127: the 12s overflow to inf)."""
    if not sane:
        special = i % 8
        if special == 1:
            return int(rng.integers(0, 3))
        if special == 3:
            return 255
        if special == 5:
            return int(rng.integers(200, 255))
    return int(rng.integers(118, 131))


def random_blocks(rng, qtype, n_blocks, sane=False):
    """Random valid blocks: random quant bytes (every pattern is valid) with
    finite f16 scales written over the scale fields."""
    qk, size = BLOCK[qtype]
    if qtype == T.F32:
        x = rng.standard_normal(n_blocks).astype(np.float32)
        if not sane:
            x[:6] = np.array([0.0, -0.0, 1e-40, -3e-39, 3e38, -1.5], dtype=np.float32)
        return x.view(np.uint8)
    if qtype in (T.F16, T.BF16):
        bits = rng.integers(0, 1 << 16, n_blocks, dtype=np.uint32).astype(np.uint16)
        exp_all_ones = (bits & 0x7C00) == 0x7C00 if qtype == T.F16 else (bits & 0x7F80) == 0x7F80
        bits[exp_all_ones] &= 0xBFFF  # no NaN/inf
        if sane:  # moderate magnitudes only
            vals = (rng.standard_normal(n_blocks) * 0.1).astype(np.float32)
            bits = quantize(vals, qtype).view(np.uint16) if qtype == T.BF16 else vals.astype(np.float16).view(np.uint16)
        return bits.astype(np.uint16).view(np.uint8)
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint32).astype(np.uint8)
    d_offs, m_offs = F16_FIELDS[qtype]
    for b in range(n_blocks):
        for off in d_offs + m_offs:
            bits = scale_bits(rng, b + off, sane)
            raw[b, off:off + 2] = np.array([bits], dtype=np.uint16).view(np.uint8)
        for off in E8M0_FIELDS.get(qtype, []):
            raw[b, off] = e8m0_byte(rng, b + off, sane)
    return raw.reshape(-1)


# ---------------------------------------------------------------- ggml access

class Ggml:
    def __init__(self, libdir):
        self.base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
        self.cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"))
        self.cpu.ggml_cpu_init()

    @staticmethod
    def ptr(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    def dequant(self, qtype, raw, n):
        name = {T.Q2_K: "q2_K", T.Q3_K: "q3_K", T.Q4_K: "q4_K", T.Q5_K: "q5_K", T.Q6_K: "q6_K"}.get(qtype, qtype.name.lower())
        out = np.zeros(n, dtype=np.float32)
        getattr(self.base, f"dequantize_row_{name}")(self.ptr(raw), self.ptr(out), ctypes.c_int64(n))
        return out

    def quantize_ref(self, qtype, x):
        qk, size = BLOCK[qtype]
        out = np.zeros(len(x) // qk * size, dtype=np.uint8)
        getattr(self.base, f"quantize_row_{qtype.name.lower()}_ref")(self.ptr(x), self.ptr(out), ctypes.c_int64(len(x)))
        return out

    def from_float(self, act_type, x):
        """What ggml-cpu's type_traits_cpu[act_type].from_float does."""
        qk, size = ACT_BYTES[act_type]
        out = np.zeros(len(x) // qk * size, dtype=np.uint8)
        fn = {
            T.Q8_0: self.cpu.quantize_row_q8_0, T.Q8_1: self.cpu.quantize_row_q8_1,
            T.Q8_K: self.cpu.quantize_row_q8_K, T.F16: self.cpu.ggml_cpu_fp32_to_fp16,
            T.BF16: self.cpu.ggml_cpu_fp32_to_bf16,
        }.get(act_type)
        if act_type == T.F32:
            return x.astype(np.float32).view(np.uint8).copy()
        fn(self.ptr(x), self.ptr(out), ctypes.c_int64(len(x)))
        return out

    def vec_dot(self, w_type, w, a, n, generic):
        if w_type in (T.F32, T.F16, T.BF16):
            if generic:
                return None
            name = f"ggml_vec_dot_{w_type.name.lower()}"
        else:
            wn = {T.Q2_K: "q2_K", T.Q3_K: "q3_K", T.Q4_K: "q4_K", T.Q5_K: "q5_K", T.Q6_K: "q6_K"}.get(w_type, w_type.name.lower())
            an = {T.Q8_K: "q8_K"}.get(VEC_DOT_TYPE[w_type], VEC_DOT_TYPE[w_type].name.lower())
            name = f"ggml_vec_dot_{wn}_{an}" + ("_generic" if generic else "")
        s = np.zeros(1, dtype=np.float32)
        getattr(self.cpu, name)(ctypes.c_int(n), self.ptr(s), ctypes.c_size_t(0), self.ptr(w), ctypes.c_size_t(0),
                                self.ptr(a), ctypes.c_size_t(0), ctypes.c_int(1))
        return s[0]


# ---------------------------------------------------------------- fixtures

def gen_dequant(rng, ggml):
    entries = []
    for qtype in WEIGHT_TYPES:
        qk, _ = BLOCK[qtype]
        n_blocks = {1: 512, 32: 24, 256: 8}[qk]
        raw = random_blocks(rng, qtype, n_blocks)
        n = n_blocks * qk
        want = dequantize(raw, qtype).astype(np.float32).reshape(-1)
        assert want.size == n, (qtype, want.size)
        if ggml is not None and qk > 1:
            got = ggml.dequant(qtype, raw, n)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"gguf-py and ggml disagree on {qtype.name}"
        entries += [(f"{qtype.name}.bytes", raw), (f"{qtype.name}.f32", want)]
    write_mqf("dequant.mqf", entries)


def gen_weights_legacy(rng, ggml):
    entries = []
    n = 32 * 9
    x = (rng.standard_normal(n) * np.repeat(10 ** rng.uniform(-3, 1, 9), 32)).astype(np.float32)
    x[32:64] = 0.0                       # an all-zero block
    x[64:96] = np.abs(x[64:96]) + 0.25   # an all-positive block (min > 0)
    x[96] = 3.0; x[97] = -3.0            # tie for the largest |x|: the first wins
    entries.append(("x.f32", x))
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.F16, T.BF16, T.MXFP4):
        entries.append((f"{qtype.name}.bytes", quantize_checked(ggml, qtype, x)))
    x = mxfp4_edge_row(rng)
    entries += [("MXFP4_edges.f32", x), ("MXFP4_edges.bytes", quantize_checked(ggml, T.MXFP4, x))]
    write_mqf("weights_legacy.mqf", entries)


def quantize_checked(ggml, qtype, x):
    """gguf-py's encoding of x, checked against ggml's reference quantizer."""
    want = quantize(x, qtype).view(np.uint8).reshape(-1)
    if ggml is not None and qtype not in (T.F16, T.BF16):
        got = ggml.quantize_ref(qtype, x)
        assert np.array_equal(got, want), f"gguf-py and ggml disagree on quantizing {qtype.name}"
    return want


def mxfp4_edge_row(rng):
    """Blocks that pin MXFP4's quantizer: the exponent is floor(log2(amax)) - 2
    (amax a power of two, just below one, just above one), values halfway
    between two E2M1 levels (ties take the lower code), values past the
    largest level (clipped), -0.0 and tiny values (code 0, never 8), an
    all-zero block, and wide ranges of scale."""
    blocks = []
    b = np.zeros(32, dtype=np.float32)
    b[:16] = [4.0, -4.0, 0.5, 1.5, 2.5, 3.5, 5.0, 7.0, 10.0, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5.0]
    b[16:] = [-7.0, -10.0, 6.5, 0.0, -0.0, 1e-30, -1e-30, 0.125, 0.375, 0.625, 0.875, 1.125, 2.0, 3.0, -6.0, -8.0]
    blocks.append(b)                                   # amax 10: e = 3 + 125, d = 0.5
    blocks.append(b * np.float32(0.5 ** 40))           # the same far below one
    blocks.append(b * np.float32(2.0 ** 30))           # and far above
    blocks.append(np.full(32, np.nextafter(np.float32(8.0), np.float32(0)), dtype=np.float32))
    blocks.append(np.full(32, np.float32(2.0 ** 20) * np.nextafter(np.float32(1.0), np.float32(0)), dtype=np.float32))
    blocks.append(np.full(32, np.nextafter(np.float32(16.0), np.float32(32)), dtype=np.float32))
    blocks.append(np.zeros(32, dtype=np.float32))
    blocks.append((rng.standard_normal(32) * 1e-3).astype(np.float32))
    blocks.append((rng.standard_normal(32) * 3e3).astype(np.float32))
    blocks.append((rng.standard_normal(32) * 1e-20).astype(np.float32))
    b = (rng.standard_normal(32) * 0.02).astype(np.float32)
    b[7] = 11.0                                        # one outlier: the rest round to 0
    blocks.append(b)
    return np.concatenate(blocks).astype(np.float32)


def activation_rows(rng):
    n = 768
    rows = {}
    rows["normal"] = rng.standard_normal(n).astype(np.float32)
    x = (rng.standard_normal(n) * 1e-3).astype(np.float32)
    x[5] = 40.0; x[300] = -17.0
    rows["outliers"] = x
    # Exact .5 ties: the largest |x| is 127, so Q8_0/Q8_1 use id = 127/127 = 1
    # and Q8_K iscale = -1; x = k + 0.5 then pins the rounding mode.
    x = np.zeros(n, dtype=np.float32)
    x[:] = (np.arange(n) % 64 - 32).astype(np.float32) + 0.5
    for b in range(0, n, 32):
        x[b] = 127.0 if (b // 32) % 2 == 0 else -127.0
    rows["ties"] = x
    x = rng.standard_normal(n).astype(np.float32)
    x[:256] = 0.0                        # zero Q8_0 blocks and a zero Q8_K block
    x[256:288] = -0.0
    rows["zeros"] = x
    x = rng.standard_normal(n).astype(np.float32)
    x[256] = -5.0; x[300] = 5.0          # +-max tie, negative first (Q8_K picks the first)
    x[512] = 6.0; x[600] = -6.0          # +-max tie, positive first
    rows["maxtie"] = x
    # f16/bf16 edge cases: ties at the f16/bf16 rounding point, subnormals, overflow.
    x = (rng.standard_normal(n) * 100).astype(np.float32)
    edge = np.array([1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 65504.0, 65519.0, 65520.0, 1e5, -7e4,
                     2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 1e-6, -6e-8, 1e-9, 0.0, -0.0], dtype=np.float32)
    x[:edge.size] = edge
    bf = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x7F7FFFFF, 0xC0FF8000, 0x00008000], dtype=np.uint32)
    x[32:32 + bf.size] = bf.view(np.float32)
    rows["fp_edges"] = x
    x = rng.standard_normal(n).astype(np.float32) * 10 ** rng.uniform(-8, 3, n).astype(np.float32)
    rows["wide_range"] = x
    return rows


def gen_act(rng, ggml):
    entries = []
    for name, x in activation_rows(rng).items():
        entries.append((f"{name}.f32", x))
        for act_type in (T.Q8_0, T.Q8_1, T.Q8_K, T.F16, T.BF16):
            entries.append((f"{name}.{act_type.name}", ggml.from_float(act_type, x)))
    write_mqf("act_x86.mqf", entries)


def dequantize_act(a, act_type):
    """Activation bytes to f64 (gguf-py lacks Q8_K and has a stale Q8_1 size)."""
    if act_type == T.Q8_1:
        blocks = a.reshape(-1, 36)
        return (blocks[:, 0:2].copy().view(np.float16).astype(np.float64) * blocks[:, 4:].view(np.int8)).reshape(-1)
    if act_type == T.Q8_K:
        blocks = a.reshape(-1, 292)
        return (blocks[:, 0:4].copy().view(np.float32).astype(np.float64) * blocks[:, 4:260].view(np.int8)).reshape(-1)
    return dequantize(a, act_type).astype(np.float64)


def mxfp4_large_tails(rng, w, x, rows):
    """Rows 4.. of the MXFP4 vec_dot fixture: the odd last block's codes follow
    the activations' signs (mostly +-12, some +-3 and +-1), against
    activations near their block's largest (set by the caller), so its
    integer sum is large (~2^15) and d*sumi is mostly not exact in f32: only
    an FMA there (GCC's contraction of ggml's `sumf += d * (sumi1 + sumi2)`)
    reproduces ggml's x86 result. (Every other product of the kernel is
    exact.) The test asserts that some row tells the two apart."""
    nb = len(x) // 32
    rb = nb * 17
    xs = x[(nb - 1) * 32:]
    for r in range(4, rows):
        u = rng.random(32)
        mag = np.where(u < 0.8, 7, np.where(u < 0.9, 3, 1))
        codes = (mag | np.where(xs < 0, 8, 0)).astype(np.uint8)
        off = r * rb + (nb - 1) * 17
        w[off + 1:off + 17] = codes[:16] | (codes[16:] << 4)


def gen_vecdot(rng, ggml):
    entries = []
    for w_type in WEIGHT_TYPES:
        # 24 blocks of 32; MXFP4 25 (its x86 kernel takes blocks in pairs
        # and adds an odd last one on its own), 8 more rows with a large
        # last block (mxfp4_large_tails).
        n = 800 if w_type == T.MXFP4 else 768
        rows = 12 if w_type == T.MXFP4 else 4
        qk, size = BLOCK[w_type]
        act_type = VEC_DOT_TYPE[w_type]
        x = rng.standard_normal(n).astype(np.float32)
        if w_type == T.MXFP4:  # the last block's quants large: |q| in 89..127
            x[-32:] = np.where(x[-32:] < 0, -1, 1) * rng.uniform(2.1, 3.0, 32).astype(np.float32)
        a = ggml.from_float(act_type, x)
        w = random_blocks(rng, w_type, rows * n // qk, sane=True)
        if w_type == T.MXFP4:
            mxfp4_large_tails(rng, w, x, rows)
        row_bytes = n // qk * size
        dots, gen = [], []
        for r in range(rows):
            wr = np.ascontiguousarray(w[r * row_bytes:(r + 1) * row_bytes])
            dots.append(ggml.vec_dot(w_type, wr, a, n, generic=False))
            g = ggml.vec_dot(w_type, wr, a, n, generic=True)
            # The portable kernels never run on x86; the compiled copy may even
            # be wrong (GCC 12 -O3 -march=native turns the int8_t cast in
            # ggml_vec_dot_q5_0_q8_0_generic into an unsigned one). Keep a
            # generic result only if it agrees with an f64 dot of the
            # dequantized operands; the tests skip NaN.
            if g is not None:
                prod = dequantize(wr, w_type).astype(np.float64) * dequantize_act(a, act_type)
                ref, mag = prod.sum(), np.abs(prod).sum()
                if abs(g - ref) > 1e-4 * mag:
                    print(f"warning: ggml's {w_type.name} generic kernel disagrees with the f64 dot "
                          f"({g} vs {ref}); not used as a reference", file=sys.stderr)
                    g = None
            gen.append(np.nan if g is None else g)
        entries += [
            (f"{w_type.name}.w", w), (f"{w_type.name}.x", x), (f"{w_type.name}.act", a),
            (f"{w_type.name}.dot_x86", np.array(dots, dtype=np.float32)),
            (f"{w_type.name}.dot_generic", np.array(gen, dtype=np.float32)),
        ]
    write_mqf("vecdot_x86.mqf", entries)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ggml-lib", default=os.environ.get("GGML_LIB_DIR"),
                    help="folder with libggml-base.so and libggml-cpu.so (or set GGML_LIB_DIR)")
    ap.add_argument("--skip-ggml", action="store_true", help="only rewrite the gguf-py fixtures")
    args = ap.parse_args()
    if not args.skip_ggml and not args.ggml_lib:
        sys.exit("need --ggml-lib DIR (a llama.cpp build for this machine) or --skip-ggml")
    os.makedirs(OUT_DIR, exist_ok=True)
    ggml = None if args.skip_ggml else Ggml(args.ggml_lib)
    gen_dequant(np.random.default_rng(1), ggml)
    gen_weights_legacy(np.random.default_rng(2), ggml)
    if ggml is not None:
        gen_act(np.random.default_rng(3), ggml)
        gen_vecdot(np.random.default_rng(4), ggml)


if __name__ == "__main__":
    main()
