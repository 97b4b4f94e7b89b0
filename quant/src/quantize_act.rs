//! Activation quantization, bit-exact with what llama.cpp runs on x86-64
//! with AVX2/AVX-512 (GGML_NATIVE build, GCC, this snapshot of ggml-cpu).
//!
//! Pinned facts (ggml-cpu/arch/x86/quants.c, ggml-quants.c, ggml-cpu.c):
//! - **Q8_0** (`quantize_row_q8_0`, AVX2 branch; AVX-512 builds take it too):
//!   amax = max|x| over the block; `d = amax / 127` (f32 division), stored as
//!   f16 rounded to nearest-even (F16C); the multiplier is `id = 127 / amax`
//!   (not `1/d` as in the C reference), 0 when amax is 0; `q = x·id` rounded
//!   half to **even** (`_mm256_round_ps` nearest), then saturated to i8.
//!   The C reference `quantize_row_q8_0_ref` would use `roundf` (half away
//!   from zero) and `1/d`; it does not run on this machine.
//! - **Q8_1** (`quantize_row_q8_1`, AVX2 branch): quants as Q8_0, and
//!   `s = f16(d · Σq)` with the *unrounded* f32 `d` and the i32 sum of the
//!   block's 32 quants converted to f32.
//! - **Q8_K**: x86 has no SIMD version; `quantize_row_q8_K` calls
//!   `quantize_row_q8_K_ref` (compiled in ggml-base without -march, so no FMA
//!   contraction). It takes `max` = the signed value of the first element
//!   with the largest |x| (strict `>` scan); `iscale = -127 / max`;
//!   `q = min(127, nearest_int(iscale·x))` where `nearest_int` is the
//!   1.5·2^23 magic-add trick, i.e. round half to even; `d = 1 / iscale`
//!   stored as f32. So d is negative when the largest-magnitude element is
//!   positive, and the quants have the opposite sign of x. An all-zero block
//!   gets d = 0 and zero quants (ggml leaves its bsums unwritten; we write 0).
//! - **F16** (`ggml_cpu_fp32_to_fp16`): F16C conversion, nearest-even.
//! - **BF16** (`ggml_cpu_fp32_to_bf16`, no AVX512-BF16 here): ggml's
//!   `ggml_compute_fp32_to_bf16`, see [`crate::fp::f32_to_bf16`].
//!
//! Non-finite inputs are not meaningful activations; they produce whatever
//! falls out (no panic). For Q8_0/Q8_1 that is what the AVX2 code gives:
//! NaN and overflowing products (a subnormal amax makes `id` infinite)
//! convert to i32::MIN, hence -128, and the Q8_1 sum wraps.

use crate::blocks::{Block, BlockQ8K, BlockQ8_0, BlockQ8_1, QK, QK_K};
use crate::fp::{f32_to_bf16, f32_to_f16};
use crate::QType;

/// Quantize a row of activations `src` into `dst` in `act_type`, exactly as
/// llama.cpp's `from_float` for that type does on x86-64 (see module docs).
///
/// `act_type` must be one of F32, F16, BF16, Q8_0, Q8_1, Q8_K.
///
/// # Panics
/// If `act_type` is not an activation type, `src.len()` is not a whole number
/// of blocks, or `dst.len() != act_type.row_bytes(src.len())`.
pub fn quantize_activations(act_type: QType, src: &[f32], dst: &mut [u8]) {
    let want = act_type.row_bytes_usize(src.len());
    assert_eq!(
        Some(dst.len()),
        want,
        "quantize_activations: {act_type} row of {} elements needs {want:?} bytes, got {}",
        src.len(),
        dst.len()
    );
    match act_type {
        QType::F32 => {
            for (o, x) in dst.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        }
        QType::F16 => {
            for (o, &x) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_f16(x).to_le_bytes());
            }
        }
        QType::BF16 => {
            for (o, &x) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_bf16(x).to_le_bytes());
            }
        }
        QType::Q8_0 => {
            for (o, x) in dst
                .chunks_exact_mut(BlockQ8_0::BYTES)
                .zip(src.chunks_exact(QK))
            {
                let (d, qs, _) = q8_x86(x);
                BlockQ8_0 {
                    d: f32_to_f16(d),
                    qs,
                }
                .write(o);
            }
        }
        QType::Q8_1 => {
            for (o, x) in dst
                .chunks_exact_mut(BlockQ8_1::BYTES)
                .zip(src.chunks_exact(QK))
            {
                let (d, qs, sum) = q8_x86(x);
                BlockQ8_1 {
                    d: f32_to_f16(d),
                    s: f32_to_f16(d * sum as f32),
                    qs,
                }
                .write(o);
            }
        }
        QType::Q8_K => {
            for (o, x) in dst
                .chunks_exact_mut(BlockQ8K::BYTES)
                .zip(src.chunks_exact(QK_K))
            {
                q8_k(x).write(o);
            }
        }
        other => panic!("quantize_activations: {other} is not an activation type"),
    }
}

/// One 32-element block the way the x86 AVX2 `quantize_row_q8_0/1` do it.
/// Returns (unrounded f32 d, quants, Σquants).
fn q8_x86(x: &[f32]) -> (f32, [i8; 32], i32) {
    // `_mm256_max_ps` of |x|; for finite inputs the order does not matter.
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; 32];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        // Round half to even, convert as cvtps_epi32, then saturate like
        // packs_epi32/epi16; the sum adds the i32s as add_epi32 (wrapping).
        let r = cvtps_epi32(round_half_even(v * id));
        sum = sum.wrapping_add(r);
        *q = r.clamp(-128, 127) as i8;
    }
    (d, qs, sum)
}

/// `_mm256_cvtps_epi32` on an already rounded value: NaN and values outside
/// the i32 range give the "integer indefinite" i32::MIN (Rust's `as`
/// saturates instead). Only non-finite or subnormal-scaled blocks get here:
/// a block whose amax is below 127 / f32::MAX has `id` = +inf.
#[inline(always)]
fn cvtps_epi32(v: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    }
}

/// ggml's `nearest_int`: valid for |v| ≤ 2^22, rounds half to even.
#[inline]
fn nearest_int(v: f32) -> i32 {
    round_half_even(v) as i32
}

/// `v.round_ties_even()` without a libm call (the baseline x86-64 target
/// has no rounding instruction, and `rintf` was 6% of prompt time): adding
/// and subtracting 2^23 with v's sign rounds to an integer in the default
/// round-to-nearest-even mode, exactly, for |v| < 2^23 (up to the sign of
/// a zero, which the callers' integer conversion drops); larger floats
/// are integers already, and NaN stays NaN. No call in either branch: LLVM
/// treats `rintf` as free of side effects, so a `round_ties_even()`
/// fallback branch was computed for every element of the vectorized loop
/// (3% of decode time on SmolLM2).
#[inline(always)]
fn round_half_even(v: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    if v.abs() < TWO_23 {
        let m = TWO_23.copysign(v);
        (v + m) - m
    } else {
        v
    }
}

fn q8_k(x: &[f32]) -> BlockQ8K {
    let mut b = BlockQ8K {
        d: [0; 4],
        qs: [0; 256],
        bsums: [0; 16],
    };
    let Some(max) = first_largest(x) else {
        return b;
    };
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = g.iter().map(|&q| i16::from(q)).sum();
    }
    b.d = (1.0 / iscale).to_le_bytes();
    b
}

/// What ggml's strict `>` scan for the largest |x| finds: the signed value
/// of the first element whose |x| is the largest (NaN never wins), or None
/// when that largest |x| is 0. Found as the lane-wise maximum, which does
/// not depend on order, then the first element attaining it: the scan's
/// serial compare-and-select chain was most of the quantization's time.
fn first_largest(x: &[f32]) -> Option<f32> {
    let mut lanes = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v.abs());
        }
    }
    let amax = chunks.remainder().iter().fold(lanes.iter().fold(0.0f32, |a, &m| a.max(m)), |a, v| a.max(v.abs()));
    if amax == 0.0 {
        return None;
    }
    x.iter().copied().find(|v| v.abs() == amax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_even_equals_round_ties_even() {
        let mut x = 0x1234_5678u32;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Halves, near-halves, random values up to ±2^23 and beyond,
            // halves between 2^22 and 2^23.
            let v = match i % 5 {
                0 => (x as i32 % 4000) as f32 * 0.5,
                1 => f32::from_bits(x) % 8_388_608.0,
                2 => f32::from_bits(x),
                3 => (4_194_304 + (x % 4_194_304)) as f32 + 0.5 * (x % 2) as f32,
                _ => (x as i32 as f32) / 256.0,
            };
            if v.is_nan() {
                assert!(round_half_even(v).is_nan());
            } else {
                // Equal as integers (the magic sum gives +0 where rint gives −0).
                assert_eq!(round_half_even(v) as i32, v.round_ties_even() as i32, "{v}");
                assert_eq!(round_half_even(v), v.round_ties_even(), "{v}");
            }
        }
    }

    /// Found by fuzzing (fuzz/, target gguf): a block whose largest |x| is
    /// subnormal has an infinite multiplier; summing the saturated i32
    /// quants overflowed. AVX2 converts ±inf and NaN to i32::MIN (quant
    /// -128) and wraps the sum.
    #[test]
    fn q8_subnormal_block_does_not_overflow() {
        let mut x = [0.0f32; 32];
        x[0] = 1e-40; // subnormal: id = 127 / 1e-40 = +inf
        x[1] = -1e-40;
        x[2] = f32::NAN;
        let (d, qs, sum) = q8_x86(&x);
        assert_eq!(d, 1e-40 / 127.0);
        // inf, -inf and NaN (0·inf, and the NaN) all become i32::MIN.
        assert!(qs.iter().all(|&q| q == -128), "{qs:?}");
        assert_eq!(sum, i32::MIN.wrapping_mul(32));
        let mut out = vec![0u8; QType::Q8_1.row_bytes_usize(32).unwrap()];
        quantize_activations(QType::Q8_1, &x, &mut out);
        // Ordinary blocks are unchanged: quants of ±127 and a sum of 0.
        let (_, qs, sum) = q8_x86(&[1.0, -1.0].repeat(16));
        assert_eq!((qs[0], qs[1], sum), (127, -127, 0));
    }

    /// ggml's scan, as written in `quantize_row_q8_K_ref`.
    fn scan_largest(x: &[f32]) -> Option<f32> {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        (amax != 0.0).then_some(max)
    }

    #[test]
    fn first_largest_is_what_the_scan_finds() {
        let mut r = 0x9e37_79b9u32;
        let mut next = || {
            r ^= r << 13;
            r ^= r >> 17;
            r ^= r << 5;
            r
        };
        for case in 0..2000 {
            let n = [256, 16, 17, 1, 300][case % 5];
            // Few distinct magnitudes, both signs: ties between +m and −m
            // and between equal values are common.
            let mut x: Vec<f32> = (0..n).map(|_| ((next() % 9) as f32 - 4.0) * 0.25).collect();
            match case % 7 {
                0 => x.iter_mut().for_each(|v| *v = 0.0),
                1 => x[next() as usize % n] = f32::NAN,
                2 => x.iter_mut().for_each(|v| *v = -0.0),
                3 => x[next() as usize % n] = f32::INFINITY,
                _ => {}
            }
            let (got, want) = (first_largest(&x), scan_largest(&x));
            assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "case {case}: {x:?}");
        }
    }

    #[test]
    fn nearest_int_is_half_even() {
        assert_eq!(
            [0.5, 1.5, 2.5, -0.5, -1.5, -2.5].map(nearest_int),
            [0, 2, 2, 0, -2, -2]
        );
        assert_eq!(nearest_int(2.500_000_2), 3);
    }
}
