//! Scalar `vec_dot` for every weight/activation pair:
//! - equals Σ dequant(w)·dequant(act) computed in f64, at odd block counts,
//!   within a stated per-type relative tolerance;
//! - agrees with llama.cpp's own kernels (fixtures from the real
//!   libggml-cpu on this x86 machine): its portable `_generic` kernels and
//!   the AVX2/AVX-512 kernels x86 actually runs.
//!
//! All tolerances are relative to Σ|w_i·a_i| (the size of the terms), which
//! is what float reassociation errors scale with. A wrong scale, min, sign or
//! element order gives errors of order 1 on that scale. Measured: ≤ 4e-8 vs
//! f64, ≤ 6e-8 vs llama.cpp's x86 kernels, ≤ 2e-8 vs its generic kernels
//! (which GCC compiled with FMA contraction). The generic Q5_0 kernel of the
//! llama.cpp build is miscompiled and is not used (see the fixture script).

mod common;

use common::{dequant, random_row, Fixture, Rng};
use moe_quant::blocks::{Block, BlockQ4_1, BlockQ5_1, BlockQ8_1};
use moe_quant::fp::f16_to_f32;
use moe_quant::{quantize_activations, quantize_row, vec_dot, QType};

/// Our f32 result against an f64 reference of the same quantized data.
fn tolerance_vs_f64(t: QType) -> f64 {
    match t {
        // Products are rounded to f32 (≤ 2^-24 each), summed in f64, and the
        // sum rounded to f32 once: ≤ 1.2e-7 of Σ|terms|.
        QType::F32 | QType::F16 | QType::BF16 => 1.5e-7,
        // f32 scale products and accumulation over up to 257·8 block terms
        // (observed ≤ 4e-8).
        _ => 5e-7,
    }
}

struct Case {
    got: f32,
    reference: f64,
    magnitude: f64,
}

fn run_case(t: QType, w: &[u8], x: &[f32]) -> Case {
    let n = x.len();
    let at = t.vec_dot_type();
    let mut act = vec![0u8; at.row_bytes_usize(n).unwrap()];
    quantize_activations(at, x, &mut act);
    let got = vec_dot(t, w, &act, n);
    let (wd, ad) = (dequant(t, w, n), dequant(at, &act, n));
    let mut reference: f64 = wd
        .iter()
        .zip(&ad)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum();
    let magnitude = wd
        .iter()
        .zip(&ad)
        .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
        .sum();
    if at == QType::Q8_1 {
        reference += q8_1_min_term_correction(t, w, &act);
    }
    Case {
        got,
        reference,
        magnitude,
    }
}

/// Q4_1/Q5_1 weights meet Q8_1 activations through the stored `s`
/// (= f16(d_unrounded·Σq)), as in llama.cpp, not through f16(d)·Σq: swap
/// the exact min term m·f16(d)·Σq for m·s, block by block.
fn q8_1_min_term_correction(t: QType, w: &[u8], act: &[u8]) -> f64 {
    let mins = w.chunks_exact(t.block_bytes()).map(|b| match t {
        QType::Q4_1 => BlockQ4_1::read(b).m,
        QType::Q5_1 => BlockQ5_1::read(b).m,
        _ => unreachable!("only Q4_1/Q5_1 pair with Q8_1"),
    });
    mins.zip(act.chunks_exact(36))
        .map(|(m, a)| {
            let a = BlockQ8_1::read(a);
            let sum: i32 = a.qs.iter().map(|&q| i32::from(q)).sum();
            let m = f64::from(f16_to_f32(m));
            m * (f64::from(f16_to_f32(a.s)) - f64::from(f16_to_f32(a.d)) * f64::from(sum))
        })
        .sum()
}

fn rel_err(c: &Case) -> f64 {
    (f64::from(c.got) - c.reference).abs() / c.magnitude.max(f64::MIN_POSITIVE)
}

#[test]
fn vec_dot_equals_f64_dot_of_dequantized_values() {
    let mut rng = Rng::new(42);
    for t in QType::WEIGHT_TYPES {
        let mut worst = 0.0f64;
        for blocks in [1usize, 3, 255, 257] {
            let n = blocks * t.block_len();
            let x = rng.normals(n, 1.0);
            // Random bytes with moderate scales, and a realistic quantized row.
            let mut quantized = Vec::new();
            quantize_row(t, &rng.normals(n, 0.05), &mut quantized);
            for w in [random_row(&mut rng, t, n), quantized] {
                let c = run_case(t, &w, &x);
                assert!(c.magnitude > 0.0, "{t}: degenerate test data");
                let e = rel_err(&c);
                worst = worst.max(e);
                assert!(
                    e <= tolerance_vs_f64(t),
                    "{t} with {blocks} blocks: got {}, f64 reference {}, relative error {e:e}",
                    c.got,
                    c.reference
                );
            }
        }
        eprintln!("{t}: worst relative error vs f64 {worst:e}");
    }
}

#[test]
fn agrees_with_llama_cpp_kernels() {
    let fx = Fixture::load("vecdot_x86.mqf");
    for t in QType::WEIGHT_TYPES {
        let name = t.name();
        let x = fx.f32s(&format!("{name}.x"));
        let n = x.len();
        let at = t.vec_dot_type();
        let act_ggml = fx.bytes(&format!("{name}.act"));
        let mut act = vec![0u8; at.row_bytes_usize(n).unwrap()];
        quantize_activations(at, &x, &mut act);
        assert_eq!(
            act, act_ggml,
            "{t}: activations differ from llama.cpp's {at}"
        );

        let w_all = fx.bytes(&format!("{name}.w"));
        let rb = t.row_bytes_usize(n).unwrap();
        let (x86, generic) = (
            fx.f32s(&format!("{name}.dot_x86")),
            fx.f32s(&format!("{name}.dot_generic")),
        );
        let (mut worst_x86, mut worst_gen) = (0.0f64, 0.0f64);
        for (r, w) in w_all.chunks_exact(rb).enumerate() {
            let ours = vec_dot(t, w, &act, n);
            let (wd, ad) = (dequant(t, w, n), dequant(at, &act, n));
            let mag: f64 = wd
                .iter()
                .zip(&ad)
                .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                .sum();
            let e_x86 = f64::from(ours - x86[r]).abs() / mag;
            worst_x86 = worst_x86.max(e_x86);
            if !matches!(t, QType::F32 | QType::F16 | QType::BF16) {
                // The quantized formats follow llama.cpp's x86 float order
                // exactly.
                assert_eq!(
                    ours.to_bits(),
                    x86[r].to_bits(),
                    "{t} row {r}: ours {ours}, llama.cpp x86 {} (must be bit-identical)",
                    x86[r]
                );
            }
            assert!(
                e_x86 <= 5e-7,
                "{t} row {r}: ours {ours}, llama.cpp x86 {}, rel {e_x86:e}",
                x86[r]
            );
            if !generic[r].is_nan() {
                let e_gen = f64::from(ours - generic[r]).abs() / mag;
                worst_gen = worst_gen.max(e_gen);
                assert!(
                    e_gen <= 2e-7,
                    "{t} row {r}: ours {ours}, ggml generic {}, rel {e_gen:e}",
                    generic[r]
                );
            }
        }
        eprintln!("{t}: worst rel diff vs llama.cpp x86 {worst_x86:e}, vs generic {worst_gen:e}");
    }
}

#[test]
fn vec_dot_reads_unaligned_rows() {
    let mut rng = Rng::new(3);
    for t in [QType::Q4_K, QType::Q6_K, QType::Q8_0, QType::F16] {
        let n = 3 * t.block_len().max(32);
        let w = random_row(&mut rng, t, n);
        let at = t.vec_dot_type();
        let mut act = vec![0u8; at.row_bytes_usize(n).unwrap()];
        quantize_activations(at, &rng.normals(n, 1.0), &mut act);
        let mut shifted = vec![0u8; w.len() + 1];
        shifted[1..].copy_from_slice(&w);
        assert_eq!(
            vec_dot(t, &w, &act, n).to_bits(),
            vec_dot(t, &shifted[1..], &act, n).to_bits()
        );
    }
}

#[test]
#[should_panic(expected = "bytes, got 33")]
fn vec_dot_rejects_mismatched_activation_length() {
    vec_dot(QType::Q4_0, &[0u8; 18], &[0u8; 33], 32);
}

#[test]
#[should_panic(expected = "not a weight type")]
fn vec_dot_rejects_activation_only_weights() {
    vec_dot(QType::Q8_K, &[0u8; 292], &[0u8; 292], 256);
}
