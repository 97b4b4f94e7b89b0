//! Every kernel tier this CPU supports against the scalar reference tier.
//!
//! The quantized formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 and the
//! K-quants Q2_K..Q6_K) follow llama.cpp's x86 float order in every tier, so
//! every tier must give the scalar tier's result bit for bit (`to_bits`), at
//! 1, 2, 3, 7, 33, 255, 257 and 4097 blocks (MXFP4 pairs blocks: odd and
//! even counts), with random and extreme codes and scales, one row at a
//! time and through the multi-row matvec kernels.
//!
//! F32 too, in llama.cpp's AVX-512 order (also at 16, 64, 80 and 2,880
//! elements: tinyBLAS's lengths).
//!
//! The other float types (F16, BF16): for the same lengths, with random values (zeros, subnormals, large) against real
//! activations quantized with `quantize_activations`:
//!
//!   |tier − scalar| ≤ 1e-6 · M
//!
//! where M = Σ|terms| of the dot product as the kernels compute it: Σ|w·a|
//! over elements, with type-1 formats split into their scale part and their
//! min part (Σ|d·q·a| + Σ|m·a|), since both tiers sum those separately. The
//! integer parts of every SIMD kernel are exact and each SIMD i32 lane holds
//! a true partial sum of terms, so the only difference is float
//! reassociation: a few units of f32 rounding (≈6e-8) of M. Measured worst
//! is printed by the test (`--nocapture`). A wrong code, scale, sign or
//! element order in a short row moves the result by ≳1e-4·M, which
//! `the_tolerance_catches_a_wrong_kernel` checks against this same bound.
//!
//! Also: `QMatrix::matvec_with(tier)` (multi-row kernels, serial and rayon
//! sizes) is bit-identical to that tier's per-row `vec_dot`.

mod common;

use common::{dequant, e8m0_fields, f16_fields, moderate_e8m0, Rng};
use moe_quant::blocks::{Block, BlockQ8_1};
use moe_quant::fp::{f16_to_f32, f32_to_bf16, f32_to_f16};
use moe_quant::{available_tiers, quantize_activations, vec_dot_with, QMatrix, QType, Tier};

const REL_TOL: f64 = 1e-6;

/// The formats whose kernels must be bit-identical in every tier (F32:
/// llama.cpp's AVX-512 order, tinyBLAS for lengths that are multiples of
/// 16, `ggml_vec_dot_f32` otherwise).
const EXACT: [QType; 12] = [
    QType::F32,
    QType::Q4_0,
    QType::Q4_1,
    QType::Q5_0,
    QType::Q5_1,
    QType::Q8_0,
    QType::Q2_K,
    QType::Q3_K,
    QType::Q4_K,
    QType::Q5_K,
    QType::Q6_K,
    QType::MXFP4,
];

/// A random f16 scale: mostly moderate of either sign, sometimes subnormal,
/// zero, or large.
fn wild_f16(rng: &mut Rng) -> u16 {
    let u = rng.unif();
    let sign = if rng.unif() < 0.4 { 0x8000 } else { 0 };
    if u < 0.10 {
        sign | (1 + (rng.u64() % 0x3ff) as u16) // subnormal
    } else if u < 0.14 {
        sign // ±0
    } else if u < 0.20 {
        sign | f32_to_f16(100.0 + 900.0 * rng.unif())
    } else {
        sign | f32_to_f16(10f32.powf(-3.0 + 2.5 * rng.unif()))
    }
}

/// A random E8M0 exponent: mostly moderate, sometimes the subnormal scales
/// (e = 0, 1), 2^-126 or large ones (up to 2^40: no overflow to inf).
fn wild_e8m0(rng: &mut Rng) -> u8 {
    match rng.u64() % 10 {
        0 => (rng.u64() % 3) as u8,
        1 => 130 + (rng.u64() % 39) as u8,
        _ => moderate_e8m0(rng),
    }
}

/// `n` elements of random valid `t` data with extreme blocks mixed in.
fn wild_row(rng: &mut Rng, t: QType, n: usize) -> Vec<u8> {
    match t {
        QType::F32 | QType::F16 | QType::BF16 => {
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    let u = rng.unif();
                    if u < 0.05 {
                        0.0
                    } else if u < 0.10 {
                        rng.normal() * 1e-39 // f32 subnormal
                    } else if u < 0.15 {
                        rng.normal() * 1e4
                    } else {
                        rng.normal() * 0.5
                    }
                })
                .collect();
            let mut out = Vec::new();
            moe_quant::quantize_row(t, &x, &mut out);
            out
        }
        _ => {
            let (bb, nb) = (t.block_bytes(), n / t.block_len());
            let mut out = vec![0u8; nb * bb];
            const EXTREME: [u8; 6] = [0x00, 0xFF, 0x0F, 0xF0, 0x80, 0x7F];
            for blk in out.chunks_exact_mut(bb) {
                let mode = rng.u64() % 8;
                for b in blk.iter_mut() {
                    *b = match mode {
                        0 => 0x00,
                        1 => 0xFF,
                        2 => EXTREME[(rng.u64() % 6) as usize],
                        _ => rng.byte(),
                    };
                }
                for &off in f16_fields(t) {
                    blk[off..off + 2].copy_from_slice(&wild_f16(rng).to_le_bytes());
                }
                for &off in e8m0_fields(t) {
                    blk[off] = wild_e8m0(rng);
                }
            }
            out
        }
    }
}

/// Activations with a few outliers, as a real residual stream has.
fn activations(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let x = rng.normal();
            if rng.unif() < 0.01 {
                40.0 * x
            } else {
                x
            }
        })
        .collect()
}

fn quantize_act(t: QType, x: &[f32]) -> Vec<u8> {
    let at = t.vec_dot_type();
    let mut a = vec![0u8; at.row_bytes_usize(x.len()).unwrap()];
    quantize_activations(at, x, &mut a);
    a
}

/// `w` with the f16 field at `off` of every block set to zero.
fn zero_field(t: QType, w: &[u8], off: usize) -> Vec<u8> {
    let mut w = w.to_vec();
    for blk in w.chunks_exact_mut(t.block_bytes()) {
        blk[off..off + 2].fill(0);
    }
    w
}

/// Σ|terms| as the kernels sum them (see the module docs).
fn magnitude(t: QType, w: &[u8], act: &[u8], n: usize) -> f64 {
    let at = t.vec_dot_type();
    let ad = dequant(at, act, n);
    let abs_dot = |w: &[u8]| -> f64 {
        dequant(t, w, n)
            .iter()
            .zip(&ad)
            .map(|(&x, &y)| (f64::from(x) * f64::from(y)).abs())
            .sum()
    };
    match f16_fields(t) {
        // Type-1: scale part (min field zeroed) + min part (scale zeroed).
        &[d, m] => {
            let mut mag = abs_dot(&zero_field(t, w, m)) + abs_dot(&zero_field(t, w, d));
            if at == QType::Q8_1 {
                // The min term uses the stored s = f16(d·Σq) of each block.
                for (x, y) in w.chunks_exact(t.block_bytes()).zip(act.chunks_exact(36)) {
                    let mw = f16_to_f32(u16::from_le_bytes([x[m], x[m + 1]]));
                    let s = f16_to_f32(BlockQ8_1::read(y).s);
                    mag += f64::from(mw * s).abs();
                }
            }
            mag
        }
        _ => abs_dot(w),
    }
}

fn lengths(t: QType) -> Vec<usize> {
    let extra: &[usize] = if t == QType::F32 { &[16, 64, 80, 2880] } else { &[] };
    [1, 2, 3, 7, 33, 255, 257, 4097]
        .into_iter()
        .map(|b| b * t.block_len())
        .chain(extra.iter().copied())
        .collect()
}

fn within(got: f32, want: f32, mag: f64) -> bool {
    f64::from(got - want).abs() <= REL_TOL * mag
}

/// Extreme scales for the bit-identity test: the largest and smallest f16
/// magnitudes of either sign, zero, and values whose products round.
const EXTREME_F16: [u16; 10] = [
    0x7bff, 0xfbff, 0x0001, 0x8001, 0x03ff, 0x0000, 0x8000, 0x3c00, 0x3c01, 0xb555,
];

/// Extreme MXFP4 exponents: scales 2^-128 and 2^-127 (subnormal), 2^-126,
/// 1, 2, and 2^126 and 2^127 (e = 255, E8M0's NaN, is 2^127 in ggml), which
/// overflow to inf against the larger activation scales: every tier must
/// still agree bit for bit, infinities and NaNs included.
const EXTREME_E8M0: [u8; 7] = [0, 1, 2, 128, 129, 254, 255];

/// `w` with every f16 field of every block replaced, block by block, by
/// entries of [`EXTREME_F16`] (a different mix per block and field).
fn extreme_scales(rng: &mut Rng, t: QType, w: &[u8]) -> Vec<u8> {
    let mut w = w.to_vec();
    for blk in w.chunks_exact_mut(t.block_bytes()) {
        for &off in f16_fields(t) {
            let v = EXTREME_F16[(rng.u64() % EXTREME_F16.len() as u64) as usize];
            blk[off..off + 2].copy_from_slice(&v.to_le_bytes());
        }
        for &off in e8m0_fields(t) {
            blk[off] = EXTREME_E8M0[(rng.u64() % EXTREME_E8M0.len() as u64) as usize];
        }
    }
    w
}

/// Activations at the ends of the Q8 range: every block's quants ±127 or 0.
fn extreme_activations(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match rng.u64() % 5 {
            0 => 0.0,
            1 | 2 => 1e3,
            _ => -1e3,
        })
        .collect()
}

fn assert_same_bits(tier: Tier, t: QType, n: usize, case: &str, got: f32, want: f32) {
    assert_eq!(
        got.to_bits(),
        want.to_bits(),
        "{tier} {t} n={n} {case}: got {got:e}, scalar {want:e}"
    );
}

#[test]
fn quantized_formats_are_bit_identical_to_scalar_in_every_tier() {
    let tiers = available_tiers();
    eprintln!("tiers on this CPU: {tiers:?}");
    let mut rng = Rng::new(0xb175);
    for t in EXACT {
        for n in lengths(t) {
            for rep in 0..6 {
                let mut w = wild_row(&mut rng, t, n);
                if rep >= 3 {
                    w = extreme_scales(&mut rng, t, &w);
                }
                let mut x = if rep % 3 == 1 {
                    extreme_activations(&mut rng, n)
                } else {
                    activations(&mut rng, n)
                };
                if rep % 3 == 2 {
                    // Tiny activations: small Q8 scales.
                    x.iter_mut().for_each(|v| *v *= 1e-6);
                }
                let a = quantize_act(t, &x);
                let want = vec_dot_with(Tier::Scalar, t, &w, &a, n);
                for &tier in &tiers {
                    let got = vec_dot_with(tier, t, &w, &a, n);
                    assert_same_bits(tier, t, n, &format!("rep {rep}"), got, want);
                }
            }
        }
    }
}

/// The multi-row kernels of every tier against the scalar `vec_dot`, row by
/// row (row counts that leave remainders for any rows-per-pass up to 8).
#[test]
fn quantized_matvec_is_bit_identical_to_scalar_in_every_tier() {
    let mut rng = Rng::new(0x3a7);
    for t in EXACT {
        for (rows, blocks) in [(1, 1), (2, 3), (7, 2), (13, 9), (21, 257), (3, 16), (5, 64), (9, 2880 / t.block_len())] {
            let cols = blocks * t.block_len();
            let mut w = wild_row(&mut rng, t, rows * cols);
            if rows % 2 == 1 {
                w = extreme_scales(&mut rng, t, &w);
            }
            let m = QMatrix::new(t, rows, cols, &w).unwrap();
            let a = quantize_act(t, &activations(&mut rng, cols));
            for tier in available_tiers() {
                let mut out = vec![f32::NAN; rows];
                m.matvec_with(tier, &a, &mut out);
                for (r, &y) in out.iter().enumerate() {
                    let want = vec_dot_with(Tier::Scalar, t, m.row(r), &a, cols);
                    assert_same_bits(tier, t, cols, &format!("{rows}x{cols} row {r}"), y, want);
                }
            }
        }
    }
}

#[test]
fn every_tier_matches_scalar_within_reassociation_tolerance() {
    let tiers = available_tiers();
    eprintln!("tiers on this CPU: {tiers:?}");
    assert!(tiers.contains(&Tier::Scalar) && tiers.contains(&Tier::Portable));
    let mut rng = Rng::new(0x5eed);
    for t in QType::WEIGHT_TYPES
        .into_iter()
        .filter(|t| !EXACT.contains(t))
    {
        let mut worst = vec![0.0f64; tiers.len()];
        for n in lengths(t) {
            for rep in 0..3 {
                let w = wild_row(&mut rng, t, n);
                let mut x = activations(&mut rng, n);
                if rep == 2 {
                    // Tiny activations: small Q8 scales.
                    x.iter_mut().for_each(|v| *v *= 1e-6);
                }
                let a = quantize_act(t, &x);
                let mag = magnitude(t, &w, &a, n);
                let want = vec_dot_with(Tier::Scalar, t, &w, &a, n);
                for (k, &tier) in tiers.iter().enumerate() {
                    let got = vec_dot_with(tier, t, &w, &a, n);
                    let err = f64::from(got - want).abs() / mag.max(f64::MIN_POSITIVE);
                    worst[k] = worst[k].max(if mag > 0.0 { err } else { 0.0 });
                    assert!(
                        within(got, want, mag),
                        "{tier} {t} n={n} rep={rep}: got {got:e}, scalar {want:e}, \
                         |diff| = {:e} > {REL_TOL:e} · Σ|terms| ({mag:e})",
                        f64::from(got - want).abs()
                    );
                }
            }
        }
        let report: Vec<String> = tiers
            .iter()
            .zip(&worst)
            .map(|(t, e)| format!("{t} {e:.1e}"))
            .collect();
        eprintln!("{t}: worst |diff|/Σ|terms|: {}", report.join(", "));
    }
}

/// The bound above is not vacuous: what an unpacking bug does (element 0's
/// code off by one in every block; for the float types one mantissa bit of
/// the first element) moves a short row's result out of it.
#[test]
fn the_tolerance_catches_a_wrong_kernel() {
    let mut rng = Rng::new(7);
    for t in QType::WEIGHT_TYPES {
        for blocks in [1, 3] {
            let n = blocks * t.block_len().max(32);
            let w = common::random_row(&mut rng, t, n);
            // No zero activations, so that every change is seen.
            let x: Vec<f32> = (0..n)
                .map(|_| (1.0 + rng.normal().abs()) * if rng.unif() < 0.5 { -1.0 } else { 1.0 })
                .collect();
            let a = quantize_act(t, &x);
            let mag = magnitude(t, &w, &a, n);
            let want = vec_dot_with(Tier::Scalar, t, &w, &a, n);
            let mut bad = w.clone();
            match t {
                QType::F32 => bad[2] ^= 0x40,
                QType::F16 | QType::BF16 => bad[0] ^= 0x01,
                _ => {
                    // The first quant byte: element 0's code changes by one.
                    let off = match t {
                        QType::MXFP4 => 1,
                        QType::Q4_0 | QType::Q8_0 => 2,
                        QType::Q4_1 => 4,
                        QType::Q5_0 => 6,
                        QType::Q5_1 => 8,
                        QType::Q2_K | QType::Q4_K => 16,
                        QType::Q3_K => 32,
                        QType::Q5_K => 48,
                        _ => 0, // Q6_K ql
                    };
                    for blk in bad.chunks_exact_mut(t.block_bytes()) {
                        blk[off] ^= 0x01;
                    }
                }
            }
            let broken = vec_dot_with(Tier::Scalar, t, &bad, &a, n);
            assert!(
                !within(broken, want, mag),
                "{t}, {blocks} blocks: a wrong code ({want:e} -> {broken:e}) \
                 passes the tolerance {:e}",
                REL_TOL * mag
            );
        }
    }
}

#[test]
fn matvec_of_every_tier_equals_its_vec_dot() {
    let mut rng = Rng::new(99);
    // Row counts that leave remainders for 2- and 4-row kernels; the last
    // shape is over 600 KB for every type, so it goes through rayon.
    let shapes = [(1, 1), (3, 3), (7, 2), (13, 9), (130, 16), (0, 16)];
    for tier in available_tiers() {
        for t in QType::WEIGHT_TYPES {
            for (rows, cols_blocks) in shapes {
                let cols = cols_blocks * t.block_len().max(32);
                let rows = if rows > 0 {
                    rows
                } else {
                    600_000 / t.row_bytes_usize(cols).unwrap() + 3
                };
                let w = wild_row(&mut rng, t, rows * cols);
                let m = QMatrix::new(t, rows, cols, &w).unwrap();
                let a = quantize_act(t, &activations(&mut rng, cols));
                let mut out = vec![f32::NAN; rows];
                m.matvec_with(tier, &a, &mut out);
                for (r, &y) in out.iter().enumerate() {
                    let want = vec_dot_with(tier, t, m.row(r), &a, cols);
                    assert_eq!(
                        y.to_bits(),
                        want.to_bits(),
                        "{tier} {t} {rows}x{cols} row {r}: matvec {y:e}, vec_dot {want:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn forcing_is_safe_and_names_round_trip() {
    for t in Tier::ALL {
        assert_eq!(Tier::from_name(t.name()), Some(t));
        // An unavailable tier yields no kernel rather than illegal code.
        let k = moe_quant::vec_dot_fn_for(t, QType::Q4_0);
        assert_eq!(k.is_some(), t.is_available());
    }
    assert!(moe_quant::vec_dot_fn_for(Tier::Scalar, QType::Q8_K).is_none());
    assert!(available_tiers().contains(&moe_quant::tier()));
}

#[test]
fn float_helpers_used_by_the_generator_are_exact() {
    // Guard for wild_row: bf16/f16 quantization of the generator's values
    // stays finite.
    assert!(f16_to_f32(f32_to_f16(1e4)).is_finite());
    assert_eq!(f32_to_bf16(0.0), 0);
}
