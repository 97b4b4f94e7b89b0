//! MXFP4 (ggml type 39) beyond what the all-type tests check:
//! - its geometry and ids;
//! - dequantization of hand-made blocks (exponent edge cases, nibble order);
//! - `vec_dot` in every tier against this file's own transcription of
//!   llama.cpp's x86 kernel (`ggml_vec_dot_mxfp4_q8_0`, AVX2 branch: blocks
//!   in pairs into two accumulators, an odd last block added alone), bit
//!   for bit, at 1, 2, 3, 7, 33 and 34 blocks; against ggml's portable
//!   order and an f64 dot of the dequantized values within stated bounds;
//! - the same for the matvec and matmul (tile) kernels of every tier on
//!   rows whose odd last block has a large integer sum.
//!
//! Why large sums: a lane's product d·l is exact in f32 (d has the 11 bits
//! of an f16 times a power of two, |l| ≤ 4·12·127 < 2^13), so only the
//! order of the sums shows in the result; the odd last block's d·Σ is not
//! exact once |Σ| ≥ 2^13, and only then does ggml's FMA there (GCC's
//! contraction of `sumf += d * sumi`) differ from a multiply and an add.
//! The tests check that their data tells the two apart.

mod common;

use common::{dequant, moderate_e8m0, Fixture, Rng};
use moe_quant::fp::f16_to_f32;
use moe_quant::{available_tiers, dequantize_row, quantize_activations, vec_dot_with, QMatrix, QType};

/// ggml-common.h's `kvalues_mxfp4`, copied here rather than taken from the
/// crate, so that the reference below is independent of it.
const KVALUES: [i32; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `GGML_E8M0_TO_FP32_HALF` by its definition in ggml-impl.h.
fn e8m0_half(e: u8) -> f32 {
    f32::from_bits(if e < 2 { 0x0020_0000 << e } else { (u32::from(e) - 1) << 23 })
}

/// Block i's (scale product, 32 weight values, 32 activation quants).
fn block(w: &[u8], a: &[u8], i: usize) -> (f32, [i32; 32], [i32; 32]) {
    let (x, y) = (&w[17 * i..17 * i + 17], &a[34 * i..34 * i + 34]);
    let d = f16_to_f32(u16::from_le_bytes([y[0], y[1]])) * e8m0_half(x[0]);
    let v = core::array::from_fn(|j| KVALUES[usize::from(if j < 16 { x[1 + j] & 15 } else { x[1 + j - 16] >> 4 })]);
    (d, v, core::array::from_fn(|j| i32::from(y[2 + j] as i8)))
}

/// llama.cpp's x86 `ggml_vec_dot_mxfp4_q8_0`, transcribed: for block pairs,
/// `accum1/2 = fmadd(scale, cvtepi32_ps(madd(maddubs(…))), accum1/2)`, whose
/// lane k sums elements 4k..4k+3; `hsum_float_8(accum1 + accum2)`; then the
/// leftover block as `sumf += d * (sumi1 + sumi2)`, which GCC contracts to
/// an FMA.
fn ggml_x86(w: &[u8], a: &[u8], nb: usize) -> f32 {
    ggml_x86_tail(w, a, nb, true)
}

/// [`ggml_x86`] with the leftover block added by an FMA (`fused`, as GCC
/// compiles it) or by a multiply and an add (as without contraction).
fn ggml_x86_tail(w: &[u8], a: &[u8], nb: usize, fused: bool) -> f32 {
    let mut accum = [[0.0f32; 8]; 2];
    let mut ib = 0;
    while ib + 1 < nb {
        for (k, acc) in accum.iter_mut().enumerate() {
            let (d, v, q) = block(w, a, ib + k);
            for (l, acc) in acc.iter_mut().enumerate() {
                let p: i32 = (4 * l..4 * l + 4).map(|j| v[j] * q[j]).sum();
                *acc = d.mul_add(p as f32, *acc);
            }
        }
        ib += 2;
    }
    let s: [f32; 8] = core::array::from_fn(|l| accum[0][l] + accum[1][l]);
    // hsum_float_8: high half + low half, then movehl, then movehdup.
    let h = [s[4] + s[0], s[5] + s[1], s[6] + s[2], s[7] + s[3]];
    let mut sumf = (h[0] + h[2]) + (h[1] + h[3]);
    while ib < nb {
        let (d, v, q) = block(w, a, ib);
        let sumi: i32 = (0..32).map(|j| v[j] * q[j]).sum();
        sumf = if fused { d.mul_add(sumi as f32, sumf) } else { sumf + d * sumi as f32 };
        ib += 1;
    }
    sumf
}

/// ggml's portable `ggml_vec_dot_mxfp4_q8_0_generic`: block by block (with
/// FMA contraction, as GCC compiles it).
fn ggml_generic(w: &[u8], a: &[u8], nb: usize) -> f32 {
    (0..nb).fold(0.0f32, |sumf, ib| {
        let (d, v, q) = block(w, a, ib);
        d.mul_add((0..32).map(|j| v[j] * q[j]).sum::<i32>() as f32, sumf)
    })
}

fn random_mxfp4(rng: &mut Rng, nb: usize) -> Vec<u8> {
    let mut w: Vec<u8> = (0..17 * nb).map(|_| rng.byte()).collect();
    for b in w.chunks_exact_mut(17) {
        b[0] = moderate_e8m0(rng);
    }
    w
}

/// Codes for block `i` of `w` that follow the signs of `x`'s elements
/// there (mostly ±12, some ±3 and ±1, so that the sum is not a multiple of
/// 4): a large integer sum against their activations.
fn follow_signs(rng: &mut Rng, w: &mut [u8], x: &[f32], i: usize) {
    let code = |j: usize, rng: &mut Rng| -> u8 {
        let u = rng.unif();
        let mag = if u < 0.8 { 7 } else if u < 0.9 { 3 } else { 1 };
        if x[32 * i + j] < 0.0 { mag | 8 } else { mag }
    };
    for j in 0..16 {
        w[17 * i + 1 + j] = code(j, rng) | (code(j + 16, rng) << 4);
    }
}

#[test]
fn geometry_and_ids() {
    let t = QType::MXFP4;
    assert_eq!(QType::from_ggml_id(39), Some(t));
    assert_eq!((t.ggml_id(), t.name(), t.block_len(), t.block_bytes()), (39, "MXFP4", 32, 17));
    assert_eq!(t.row_bytes(2880), Some(90 * 17), "a gpt-oss-20b row");
    assert_eq!(t.row_bytes(48), None);
    assert_eq!(t.vec_dot_type(), QType::Q8_0);
    assert!(t.is_weight_type() && QType::WEIGHT_TYPES.contains(&t) && QType::ALL.contains(&t));
}

#[test]
fn dequantize_hand_checked() {
    // Block 0: e = 128 (scale 1); element j has code j % 16 (low nibbles
    // codes 0..15 for elements 0..15, high nibbles 15 - j for 16..31).
    // Block 1: e = 0 (2^-128). Block 2: e = 255 (2^127: 12 overflows).
    let mut raw = vec![0u8; 3 * 17];
    raw[0] = 128;
    for j in 0..16 {
        raw[1 + j] = (j as u8) | ((15 - j as u8) << 4);
    }
    raw[17] = 0;
    raw[18] = 0x97; // element 0: code 7 (12), element 16: code 9 (−1)
    raw[34] = 255;
    raw[35] = 0x17; // element 0: code 7 (12), element 16: code 1 (1)
    let mut y = vec![f32::NAN; 96];
    dequantize_row(QType::MXFP4, &raw, &mut y);
    let want0 = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0];
    for j in 0..16 {
        assert_eq!(y[j].to_bits(), (want0[j] as f32).to_bits(), "element {j}");
        assert_eq!(y[16 + j].to_bits(), (want0[15 - j] as f32).to_bits(), "element {}", 16 + j);
    }
    assert_eq!(y[8].to_bits(), 0, "code 8 is +0 (the table holds 0, not −0)");
    let tiny = f32::from_bits(0x0020_0000); // 2^-128
    assert_eq!((y[32], y[48], y[33]), (12.0 * tiny, -tiny, 0.0));
    assert_eq!((y[64], y[80]), (f32::INFINITY, 2f32.powi(127)));
}

#[test]
fn vec_dot_is_llama_cpp_x86_order_in_every_tier() {
    let mut rng = Rng::new(0x3f4);
    let (mut worst_gen, mut worst_f64) = (0.0f64, 0.0f64);
    let mut fused_tail_seen = false;
    for nb in [1usize, 2, 3, 7, 33, 34] {
        let n = 32 * nb;
        // Half of the reps with a last block of large sum; its product is
        // inexact only for some scales and sums, so there are many.
        for rep in 0..60 {
            let mut w = random_mxfp4(&mut rng, nb);
            let mut x = rng.normals(n, 1.0);
            if rep % 4 == 3 {
                x.iter_mut().for_each(|v| *v *= 1e-5);
            }
            if rep % 2 == 1 {
                follow_signs(&mut rng, &mut w, &x, nb - 1);
            }
            let mut a = vec![0u8; 34 * nb];
            quantize_activations(QType::Q8_0, &x, &mut a);
            let want = ggml_x86(&w, &a, nb);
            fused_tail_seen |= want != ggml_x86_tail(&w, &a, nb, false);
            for tier in available_tiers() {
                let got = vec_dot_with(tier, QType::MXFP4, &w, &a, n);
                assert_eq!(got.to_bits(), want.to_bits(), "{tier}, {nb} blocks, rep {rep}: got {got:e}, ggml x86 order {want:e}");
            }
            // Against the generic order and an f64 dot: both differ only by
            // float reassociation of ≤ 2·nb products (each term exact in
            // f32 but for its scale product), so by a few f32 roundings of
            // Σ|terms|.
            let (wd, ad) = (dequant(QType::MXFP4, &w, n), dequant(QType::Q8_0, &a, n));
            let terms = wd.iter().zip(&ad).map(|(&p, &q)| f64::from(p) * f64::from(q));
            let (exact, mag): (f64, f64) = terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()));
            if mag == 0.0 {
                continue;
            }
            let e_gen = f64::from(want - ggml_generic(&w, &a, nb)).abs() / mag;
            let e_f64 = (f64::from(want) - exact).abs() / mag;
            (worst_gen, worst_f64) = (worst_gen.max(e_gen), worst_f64.max(e_f64));
            assert!(e_gen <= 2.5e-7, "{nb} blocks: x86 vs generic order {e_gen:e} of Σ|terms|");
            assert!(e_f64 <= 2.5e-7, "{nb} blocks: x86 order vs f64 {e_f64:e} of Σ|terms|");
        }
    }
    eprintln!("MXFP4: worst |x86 − generic| {worst_gen:.1e}, |x86 − f64| {worst_f64:.1e} of Σ|terms|");
    assert!(fused_tail_seen, "no case tells an FMA in the last block from a multiply-add");
}

#[test]
fn llama_cpp_x86_results_in_every_tier_and_its_fused_last_block() {
    // ggml's own x86 kernel (the vendored llama.cpp, AVX-512 build) on 12
    // rows of 25 blocks; rows 4.. have a last block of large sum, and at
    // least one of them comes out differently with a multiply-add there:
    // the fixture pins the FMA, not just our reading of the disassembly.
    let fx = Fixture::load("vecdot_x86.mqf");
    let (w_all, want) = (fx.bytes("MXFP4.w"), fx.f32s("MXFP4.dot_x86"));
    let x = fx.f32s("MXFP4.x");
    let (n, nb) = (x.len(), x.len() / 32);
    let mut a = vec![0u8; 34 * nb];
    quantize_activations(QType::Q8_0, &x, &mut a);
    assert_eq!(a, fx.bytes("MXFP4.act"), "activations differ from ggml's Q8_0");
    let mut told_apart = 0;
    for (r, w) in w_all.chunks_exact(17 * nb).enumerate() {
        assert_eq!(ggml_x86(w, &a, nb).to_bits(), want[r].to_bits(), "row {r}: the transcription");
        told_apart += usize::from(ggml_x86_tail(w, &a, nb, false) != want[r]);
        for tier in available_tiers() {
            let got = vec_dot_with(tier, QType::MXFP4, w, &a, n);
            assert_eq!(got.to_bits(), want[r].to_bits(), "{tier} row {r}: {got:e} vs llama.cpp {:e}", want[r]);
        }
    }
    assert!(told_apart > 0, "no fixture row tells an FMA in the last block from a multiply-add");
}

#[test]
fn matvec_and_matmul_are_llama_cpp_x86_order_in_every_tier() {
    // 9 rows (two 4-row groups and one left over) of 7 blocks, 9 tokens
    // (two 4 × 4 tiles and one token left over) of positive activations;
    // every row's last block is all positive values, mostly 12, so its
    // integer sums are large.
    let (rows, nb, tokens) = (9, 7, 9);
    let cols = 32 * nb;
    let mut rng = Rng::new(0x7a11);
    let mut w = random_mxfp4(&mut rng, rows * nb);
    let positive = vec![1.0f32; cols];
    for r in 0..rows {
        follow_signs(&mut rng, &mut w[17 * nb * r..17 * nb * (r + 1)], &positive, nb - 1);
    }
    let m = QMatrix::new(QType::MXFP4, rows, cols, &w).unwrap();
    let mut acts = vec![0u8; 34 * nb * tokens];
    for a in acts.chunks_exact_mut(34 * nb) {
        let x: Vec<f32> = rng.normals(cols, 1.0).iter().map(|v| v.abs() + 0.1).collect();
        quantize_activations(QType::Q8_0, &x, a);
    }
    let mut fused_tail_seen = false;
    for tier in available_tiers() {
        let mut out = vec![f32::NAN; rows * tokens];
        m.matmul_with(tier, &acts, tokens, &mut out);
        for (j, a) in acts.chunks_exact(34 * nb).enumerate() {
            let mut mv = vec![f32::NAN; rows];
            m.matvec_with(tier, a, &mut mv);
            for r in 0..rows {
                let want = ggml_x86(m.row(r), a, nb);
                fused_tail_seen |= want != ggml_x86_tail(m.row(r), a, nb, false);
                let (got_mm, got_mv) = (out[j * rows + r], mv[r]);
                assert_eq!(got_mv.to_bits(), want.to_bits(), "{tier} matvec row {r} token {j}: {got_mv:e} vs {want:e}");
                assert_eq!(got_mm.to_bits(), want.to_bits(), "{tier} matmul row {r} token {j}: {got_mm:e} vs {want:e}");
            }
        }
    }
    assert!(fused_tail_seen, "no case tells an FMA in the last block from a multiply-add");
}
