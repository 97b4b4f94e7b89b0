//! A simple K-quant quantizer of our own (not llama-quantize's search).
//!
//! Type-1 formats (Q2_K, Q4_K, Q5_K: x ≈ d·sc·q − dmin·m): per sub-block the
//! offset `dmin·m` is rounded *up* to cover the sub-block minimum (clamped to
//! ≤ 0, as ggml does) and the step `d·sc` is rounded *up* to cover its
//! maximum, so every input lies inside the representable range and each
//! element's error is at most half a step. Super-scales are rounded up to
//! the next f16 so the largest sub-block still fits in the scale bits.
//!
//! Type-0 formats (Q3_K, Q6_K: x ≈ d·sc·q with signed q): as ggml's Q4_0, the
//! sub-block's largest-magnitude value maps to the most negative code, then
//! the sub-block scales are quantized against the super-scale by rounding.

use crate::blocks::{Block, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, QK_K};
use crate::fp::{f16_to_f32, f32_to_f16};

fn per_block<B: Block>(src: &[f32], out: &mut [u8], f: impl Fn(&[f32; QK_K]) -> B) {
    for (x, o) in src.chunks_exact(QK_K).zip(out.chunks_exact_mut(B::BYTES)) {
        f(x.try_into().expect("chunk of QK_K")).write(o);
    }
}

/// The smallest f16 ≥ `v` (v ≥ 0, finite and in f16 range), as bits.
fn f16_at_least(v: f32) -> u16 {
    let h = f32_to_f16(v);
    if f16_to_f32(h) < v {
        h + 1
    } else {
        h
    }
}

/// `ceil(need / unit)` clamped to `0..=max`; 0 when `unit` is 0.
fn ceil_div(need: f32, unit: f32, max: u8) -> u8 {
    if unit > 0.0 {
        (need / unit).ceil().clamp(0.0, f32::from(max)) as u8
    } else {
        0
    }
}

/// The codes, scales and super-scales of one type-1 super-block.
struct Type1 {
    d: u16,
    dmin: u16,
    sc: Vec<u8>,
    m: Vec<u8>,
    q: [u8; QK_K],
}

/// Quantize 256 values as `QK_K/sub` sub-blocks with codes `0..=nmax` and
/// scales/mins of `0..=smax`.
fn type1(x: &[f32; QK_K], sub: usize, nmax: u8, smax: u8) -> Type1 {
    let lo: Vec<f32> = x
        .chunks_exact(sub)
        .map(|s| s.iter().fold(0.0f32, |a, &v| a.min(v)))
        .collect();
    let hi: Vec<f32> = x
        .chunks_exact(sub)
        .map(|s| s.iter().fold(f32::MIN, |a, &v| a.max(v)))
        .collect();

    let max_min = lo.iter().fold(0.0f32, |a, &v| a.max(-v));
    let dmin = f16_at_least(max_min / f32::from(smax));
    let m: Vec<u8> = lo
        .iter()
        .map(|&l| ceil_div(-l, f16_to_f32(dmin), smax))
        .collect();
    let offset: Vec<f32> = m.iter().map(|&m| f16_to_f32(dmin) * f32::from(m)).collect();

    // Each sub-block needs nmax steps from -offset up to its max.
    let need: Vec<f32> = hi
        .iter()
        .zip(&offset)
        .map(|(&h, &o)| ((h + o) / f32::from(nmax)).max(0.0))
        .collect();
    let max_need = need.iter().fold(0.0f32, |a, &v| a.max(v));
    let d = f16_at_least(max_need / f32::from(smax));
    let sc: Vec<u8> = need
        .iter()
        .map(|&n| ceil_div(n, f16_to_f32(d), smax))
        .collect();

    let mut q = [0u8; QK_K];
    for (j, (qs, xs)) in q.chunks_exact_mut(sub).zip(x.chunks_exact(sub)).enumerate() {
        let step = f16_to_f32(d) * f32::from(sc[j]);
        if step > 0.0 {
            for (q, &v) in qs.iter_mut().zip(xs) {
                *q = ((v + offset[j]) / step).round().clamp(0.0, f32::from(nmax)) as u8;
            }
        }
    }
    Type1 { d, dmin, sc, m, q }
}

/// Quantize 256 values as sub-blocks of 16 with codes `-cmax..cmax` (the
/// largest magnitude maps to `-cmax`) and signed scales of `|sc| <= smax`.
fn type0(x: &[f32; QK_K], cmax: i8, smax: i8) -> (u16, [i8; 16], [i8; QK_K]) {
    let want: Vec<f32> = x
        .chunks_exact(16)
        .map(|s| {
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in s {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            max / -f32::from(cmax)
        })
        .collect();
    let max_abs = want.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    let d = f32_to_f16(max_abs / f32::from(smax));
    let df = f16_to_f32(d);
    let lim = f32::from(smax);
    let sc: [i8; 16] = core::array::from_fn(|j| {
        if df > 0.0 {
            (want[j] / df).round().clamp(-lim, lim) as i8
        } else {
            0
        }
    });
    let mut q = [0i8; QK_K];
    for (j, (qs, xs)) in q.chunks_exact_mut(16).zip(x.chunks_exact(16)).enumerate() {
        let step = df * f32::from(sc[j]);
        if step != 0.0 {
            for (q, &v) in qs.iter_mut().zip(xs) {
                *q = (v / step)
                    .round()
                    .clamp(-f32::from(cmax), f32::from(cmax - 1)) as i8;
            }
        }
    }
    (d, sc, q)
}

pub(super) fn q2_k(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let t = type1(x, 16, 3, 15);
        BlockQ2K::new(t.d, t.dmin, &to16(&t.sc), &to16(&t.m), &t.q)
    });
}

pub(super) fn q4_k(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let t = type1(x, 32, 15, 63);
        BlockQ4K::new(t.d, t.dmin, &to8(&t.sc), &to8(&t.m), &t.q)
    });
}

pub(super) fn q5_k(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let t = type1(x, 32, 31, 63);
        BlockQ5K::new(t.d, t.dmin, &to8(&t.sc), &to8(&t.m), &t.q)
    });
}

pub(super) fn q3_k(src: &[f32], out: &mut [u8]) {
    // Scales are 6-bit signed (-32..=31); use ±31 so the range is symmetric.
    per_block(src, out, |x| {
        let (d, sc, q) = type0(x, 4, 31);
        BlockQ3K::new(d, &sc, &q)
    });
}

pub(super) fn q6_k(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let (d, sc, q) = type0(x, 32, 127);
        BlockQ6K::new(d, &sc, &q)
    });
}

fn to8(v: &[u8]) -> [u8; 8] {
    v.try_into().expect("8 sub-blocks")
}

fn to16(v: &[u8]) -> [u8; 16] {
    v.try_into().expect("16 sub-blocks")
}
