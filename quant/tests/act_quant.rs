//! Activation quantization: bit-identical to llama.cpp's x86 CPU backend
//! (fixtures made by calling the real libggml-cpu), plus hand-checked values
//! that pin the rounding mode, the scale formulas, the s/bsums fields, the
//! zero case, and the per-element error bound.

mod common;

use common::{dequant, Fixture, Rng};
use moe_quant::fp::{f16_to_f32, f32_to_f16};
use moe_quant::{quantize_activations, QType};

const ACT_TYPES: [QType; 5] = [
    QType::Q8_0,
    QType::Q8_1,
    QType::Q8_K,
    QType::F16,
    QType::BF16,
];

fn quantize(t: QType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; t.row_bytes_usize(x.len()).unwrap()];
    quantize_activations(t, x, &mut out);
    out
}

#[test]
fn matches_llama_cpp_x86_bit_for_bit() {
    let fx = Fixture::load("act_x86.mqf");
    let rows = [
        "normal",
        "outliers",
        "ties",
        "zeros",
        "maxtie",
        "fp_edges",
        "wide_range",
    ];
    for row in rows {
        let x = fx.f32s(&format!("{row}.f32"));
        for t in ACT_TYPES {
            let want = fx.bytes(&format!("{row}.{}", t.name()));
            let got = quantize(t, &x);
            if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
                let blk = i / t.block_bytes();
                panic!(
                    "{row} as {t}: byte {i} (block {blk}) differs: ours {}, llama.cpp {}",
                    got[i], want[i]
                );
            }
            assert_eq!(got.len(), want.len());
        }
    }
}

#[test]
fn q8_0_rounds_half_to_even_with_id_127_over_max() {
    // amax = 127 => d = 1, id = 1: the products are exact and ties show the mode.
    let mut x = [0.0f32; 32];
    x[..8].copy_from_slice(&[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5]);
    for t in [QType::Q8_0, QType::Q8_1] {
        let b = quantize(t, &x);
        let qs_at = if t == QType::Q8_0 { 2 } else { 4 };
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), 0x3c00, "{t}: d = 1.0");
        let q: Vec<i8> = b[qs_at..qs_at + 8].iter().map(|&v| v as i8).collect();
        // roundf (the C reference) would give 1, 3, -1, -3 and 127.
        assert_eq!(q, [127, 0, 2, 2, 0, -2, -2, 126], "{t}");
    }
}

#[test]
fn q8_0_multiplies_by_127_over_amax_not_one_over_d() {
    // Found by search and confirmed against libggml-cpu: here x·(127/amax)
    // rounds to 1 while x·(1/(amax/127)) rounds to 2.
    let amax = f32::from_bits(0x3fb4_795d);
    let v = f32::from_bits(0x3c88_6bdd);
    assert_ne!(
        (v * (127.0 / amax)).round_ties_even(),
        (v * (1.0 / (amax / 127.0))).round_ties_even()
    );
    let mut x = [0.0f32; 32];
    x[0] = amax;
    x[1] = v;
    let b = quantize(QType::Q8_0, &x);
    assert_eq!(u16::from_le_bytes([b[0], b[1]]), 0x21af);
    assert_eq!((b[2] as i8, b[3] as i8), (127, 1));
}

#[test]
fn q8_1_s_is_d_times_sum_of_quants() {
    let mut rng = Rng::new(11);
    let x = rng.normals(64, 2.0);
    let b = quantize(QType::Q8_1, &x);
    for (blk, xs) in b.chunks_exact(36).zip(x.chunks_exact(32)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0; // unrounded
        let sum: i32 = blk[4..].iter().map(|&q| i32::from(q as i8)).sum();
        assert_eq!(u16::from_le_bytes([blk[0], blk[1]]), f32_to_f16(d));
        assert_eq!(
            u16::from_le_bytes([blk[2], blk[3]]),
            f32_to_f16(d * sum as f32)
        );
        assert_ne!(sum, 0, "test data should have a non-trivial sum");
    }
}

#[test]
fn q8_k_uses_minus_127_over_signed_max() {
    let mut x = [0.0f32; 256];
    x[0] = 127.0; // signed max is positive => iscale = -1, d = -1
    x[1] = 0.5;
    x[2] = 1.5;
    x[3] = -2.5;
    x[17] = 100.0;
    let b = quantize(QType::Q8_K, &x);
    assert_eq!(f32::from_le_bytes(b[0..4].try_into().unwrap()), -1.0);
    let q: Vec<i8> = b[4..8].iter().map(|&v| v as i8).collect();
    assert_eq!(q, [-127, 0, -2, 2], "negated, half to even");
    let bsums: Vec<i16> = b[260..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(bsums[0], -127 - 2 + 2);
    assert_eq!(bsums[1], -100);
    assert!(bsums[2..].iter().all(|&s| s == 0));

    // Negative signed max, and a ±max tie where the first occurrence wins.
    let mut x = [0.0f32; 256];
    x[3] = -4.0;
    x[9] = 4.0;
    x[10] = 1.0;
    let b = quantize(QType::Q8_K, &x);
    let d = f32::from_le_bytes(b[0..4].try_into().unwrap());
    assert_eq!(d, 1.0 / (127.0 / 4.0));
    assert_eq!(
        (b[4 + 3] as i8, b[4 + 9] as i8, b[4 + 10] as i8),
        (-127, 127, 32)
    );
}

#[test]
fn all_zero_input_gives_zero_blocks() {
    let x = [0.0f32; 512];
    for t in ACT_TYPES {
        let b = quantize(t, &x);
        assert!(
            b.iter().all(|&v| v == 0),
            "{t}: zero input must give zero bytes"
        );
    }
    let x = [-0.0f32; 256];
    assert!(quantize(QType::Q8_K, &x).iter().all(|&v| v == 0));
}

#[test]
fn dequant_error_within_half_a_step() {
    let mut rng = Rng::new(5);
    for scale in [1e-4f32, 0.1, 3.0, 1e3] {
        let x: Vec<f32> = rng.normals(768, scale);
        for t in [QType::Q8_0, QType::Q8_1] {
            let b = quantize(t, &x);
            let y = dequant(t, &b, x.len());
            for (blk, (xs, ys)) in b
                .chunks_exact(t.block_bytes())
                .zip(x.chunks_exact(32).zip(y.chunks_exact(32)))
            {
                let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let d16 = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                // Rounding costs d/2; storing d as f16 costs |q|·|d − d16| ≤ 127·|d − d16|.
                let bound = d / 2.0 + 127.0 * (d - d16).abs() + d * 1e-5;
                for (a, b) in xs.iter().zip(ys) {
                    assert!(
                        (a - b).abs() <= bound,
                        "{t} scale {scale}: {a} vs {b}, bound {bound}"
                    );
                }
            }
        }
        let b = quantize(QType::Q8_K, &x);
        let y = dequant(QType::Q8_K, &b, x.len());
        for (blk, (xs, ys)) in b
            .chunks_exact(292)
            .zip(x.chunks_exact(256).zip(y.chunks_exact(256)))
        {
            let d = f32::from_le_bytes(blk[0..4].try_into().unwrap()).abs();
            for (a, b) in xs.iter().zip(ys) {
                assert!(
                    (a - b).abs() <= d * (0.5 + 1e-5),
                    "Q8_K scale {scale}: {a} vs {b}, d {d}"
                );
            }
        }
    }
}

#[test]
fn f32_activations_are_the_raw_bytes() {
    let x = [1.5f32, -0.0, f32::MIN_POSITIVE, 3e38];
    let b = quantize(QType::F32, &x);
    let back: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(back.iter().zip(&x).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
#[should_panic(expected = "needs")]
fn rejects_wrong_destination_length() {
    let mut out = vec![0u8; 33];
    quantize_activations(QType::Q8_0, &[0.0; 32], &mut out);
}

#[test]
#[should_panic(expected = "not an activation type")]
fn rejects_weight_only_types() {
    let mut out = vec![0u8; 144];
    quantize_activations(QType::Q4_K, &[0.0; 256], &mut out);
}
