//! Weight quantizers: legacy formats and MXFP4 byte-identical to ggml's
//! reference quantizers (fixtures from gguf-py, cross-checked against
//! ggml), and round-trip error bounds for every type at odd sizes.

mod common;

use common::{dequant, Fixture, Rng};
use moe_quant::{quantize_row, QType};

const LEGACY: [QType; 5] = [
    QType::Q4_0,
    QType::Q4_1,
    QType::Q5_0,
    QType::Q5_1,
    QType::Q8_0,
];

fn quantize(t: QType, x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    quantize_row(t, x, &mut out);
    assert_eq!(Some(out.len()), t.row_bytes_usize(x.len()));
    out
}

#[test]
fn legacy_and_float_quantizers_match_ggml_reference_bytes() {
    let fx = Fixture::load("weights_legacy.mqf");
    let x = fx.f32s("x.f32");
    for t in LEGACY.into_iter().chain([QType::F16, QType::BF16]) {
        let want = fx.bytes(&format!("{}.bytes", t.name()));
        let got = quantize(t, &x);
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
            panic!(
                "{t}: byte {i} (block {}) differs: ours {}, ggml {}",
                i / t.block_bytes(),
                got[i],
                want[i]
            );
        }
    }
}

#[test]
fn mxfp4_quantizer_matches_ggml_reference_bytes() {
    // The shared random row, and a row of edge cases (exponents at and
    // near powers of two, ties between levels, clipping, ±0, tiny and huge
    // blocks; see MXFP4_edges in scripts/gen_quant_fixtures.py).
    let fx = Fixture::load("weights_legacy.mqf");
    for (x, bytes) in [("x.f32", "MXFP4.bytes"), ("MXFP4_edges.f32", "MXFP4_edges.bytes")] {
        let x = fx.f32s(x);
        let want = fx.bytes(bytes);
        let got = quantize(QType::MXFP4, &x);
        for (b, (g, w)) in got.chunks_exact(17).zip(want.chunks_exact(17)).enumerate() {
            assert_eq!(g, w, "{bytes} block {b}: ours (e, qs) differs from ggml's; input {:?}", &x[32 * b..32 * b + 32]);
        }
        assert_eq!(got.len(), want.len());
    }
}

#[test]
fn quantize_row_appends() {
    let mut out = vec![7u8; 3];
    quantize_row(QType::Q4_0, &[1.0; 64], &mut out);
    assert_eq!(out.len(), 3 + 36);
    assert_eq!(&out[..3], &[7, 7, 7]);
}

/// Rows with a different scale per block and some awkward blocks.
fn test_row(rng: &mut Rng, n: usize, block: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(n);
    for b in 0..n / block {
        let scale = 10f32.powf(-3.0 + 3.0 * rng.unif());
        let shift = if b % 3 == 1 { scale * 2.0 } else { 0.0 };
        x.extend((0..block).map(|_| rng.normal() * scale + shift));
    }
    if n >= 2 * block {
        x[block..2 * block].fill(0.0); // an all-zero block
    }
    x
}

/// Worst |x − y| / max|x| over blocks of `block` elements, and the relative
/// RMS error over the row.
fn errors(x: &[f32], y: &[f32], block: usize) -> (f32, f32) {
    let mut worst = 0.0f32;
    for (xs, ys) in x.chunks_exact(block).zip(y.chunks_exact(block)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = xs
            .iter()
            .zip(ys)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        if amax == 0.0 {
            assert_eq!(err, 0.0, "a zero block must stay zero");
        } else {
            worst = worst.max(err / amax);
        }
    }
    let num: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let den: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    (worst, (num / den).sqrt() as f32)
}

/// (max error / block max, relative RMS error) allowed per type. The max
/// bounds of the legacy types follow from the format: Q4_0 maps the block's
/// extreme to −8, so the other side clips at +7 with an error of one step =
/// amax/8; Q4_1's step is (max−min)/15 ≤ 2·amax/15, error half a step. The
/// K-quants' bounds are relative to the whole 256-element block's max. RMS
/// bounds are about 1.25× the measured worst case over the test rows (one
/// 32-value Gaussian block has a wide range relative to its RMS).
fn bounds(t: QType) -> (f32, f32) {
    match t {
        QType::F32 => (0.0, 0.0),
        QType::F16 => (1.0 / 2048.0, 1.0 / 2048.0),
        QType::BF16 => (1.0 / 256.0, 1.0 / 256.0),
        QType::Q4_0 => (1.0 / 8.0 + 1e-3, 0.11),
        QType::Q4_1 => (1.0 / 15.0 + 1e-3, 0.09),
        QType::Q5_0 => (1.0 / 16.0 + 1e-3, 0.05),
        QType::Q5_1 => (1.0 / 31.0 + 1e-3, 0.045),
        QType::Q8_0 => (0.5 / 127.0 + 1e-3, 0.007),
        // Simple min/max quantizer (no search): measured 0.31/0.37, 0.25/0.15,
        // 0.060/0.081, 0.031/0.042, 0.020/0.019.
        QType::Q2_K => (0.4, 0.45),
        QType::Q3_K => (0.3, 0.2),
        QType::Q4_K => (0.075, 0.1),
        QType::Q5_K => (0.04, 0.05),
        QType::Q6_K => (0.03, 0.025),
        // The scale 2^(floor(log2 amax) − 3) puts the largest level, 12·d,
        // at 1.5·2^floor(log2 amax): an amax just below the next power of
        // two clips by up to amax/4; elsewhere the gap between levels is at
        // most 4·d, error 2·d ≤ amax/4. RMS: measured 0.109.
        QType::MXFP4 => (0.25 + 1e-3, 0.135),
        QType::Q8_1 | QType::Q8_K => unreachable!(),
    }
}

#[test]
fn round_trip_errors_are_bounded() {
    let mut rng = Rng::new(9);
    for t in QType::WEIGHT_TYPES {
        let block = t.block_len().max(32);
        let (max_bound, rms_bound) = bounds(t);
        let (mut worst, mut worst_rms) = (0.0f32, 0.0f32);
        for blocks in [1usize, 3, 7, 13] {
            let n = blocks * block;
            let x = test_row(&mut rng, n, block);
            let y = dequant(t, &quantize(t, &x), n);
            let (max_err, rms) = errors(&x, &y, block);
            worst = worst.max(max_err);
            worst_rms = worst_rms.max(rms);
            assert!(
                max_err <= max_bound,
                "{t}, {blocks} blocks: max error {max_err} of block max > {max_bound}"
            );
            assert!(
                rms <= rms_bound,
                "{t}, {blocks} blocks: relative RMS error {rms} > {rms_bound}"
            );
        }
        eprintln!(
            "{t}: worst max error {worst:.4} of block max, worst relative RMS {worst_rms:.4}"
        );
    }
}

#[test]
fn legacy_and_float_requantization_is_a_fixed_point() {
    // Blocks re-dequantize identically: quantizing the dequantized output
    // again reproduces the same bytes, hence the same values.
    let mut rng = Rng::new(10);
    let fixed = LEGACY
        .into_iter()
        .chain([QType::F32, QType::F16, QType::BF16, QType::MXFP4]);
    for t in fixed {
        let x = test_row(&mut rng, 32 * 9, 32);
        let q1 = quantize(t, &x);
        let q2 = quantize(t, &dequant(t, &q1, x.len()));
        assert_eq!(q1, q2, "{t}");
    }
}

#[test]
fn k_quant_requantization_stays_within_bounds() {
    // Our K-quant quantizer re-derives its scales (rounded up to cover each
    // sub-block's range), so it is not an exact fixed point; re-quantizing
    // its own output must still be within the type's error bound.
    let mut rng = Rng::new(12);
    for t in [
        QType::Q2_K,
        QType::Q3_K,
        QType::Q4_K,
        QType::Q5_K,
        QType::Q6_K,
    ] {
        let x = test_row(&mut rng, 256 * 5, 256);
        let y1 = dequant(t, &quantize(t, &x), x.len());
        let y2 = dequant(t, &quantize(t, &y1), x.len());
        let (max_err, _) = errors(&y1, &y2, 256);
        assert!(
            max_err <= bounds(t).0,
            "{t}: requantization moved values by {max_err} of block max"
        );
    }
}
