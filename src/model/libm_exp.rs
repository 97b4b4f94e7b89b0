//! `exp` over a slice with `f32::exp`'s bits, vectorized.
//!
//! llama.cpp's CPU flash attention calls the C library's `expf` once per
//! query and position, and so does our bit-identical version of it. glibc
//! (since 2.28) and musl compute `expf` with Arm's optimized-routines
//! algorithm: in double precision, `x·32/ln 2 = k + r` with k rounded to an
//! integer by adding 1.5·2^52, `2^(k/32)` from a 32-entry table with k's
//! high bits added to the exponent, a cubic in r, one rounding to float at
//! the end. glibc's x86-64 build for FMA machines contracts the multiply
//! of `x·32/ln 2` into both uses (the rounding shift and `r`) and the
//! polynomial's steps into FMAs. [`exp_in_place`] runs that arithmetic four
//! doubles at a time with AVX2 and FMA, which is what this CPU's `expf`
//! gives bit for bit: checked over every float from −103.9 to 88.7 on the
//! dev machine, by a strided sweep in `tests/exp_libm.rs`, and at first use
//! against `f32::exp` on 2^16 values and the edge cases. Where that check
//! fails (another C library) or the CPU lacks AVX2/FMA, it is `f32::exp`
//! element by element.
//!
//! `gen_exp_table.py` writes the table (2^(i/32) in double, less i << 47).

#![allow(unsafe_code)]

use std::sync::OnceLock;

/// `2^(i/32)`'s double bits less `i << 47` (`gen_exp_table.py`).
const TABLE: [u64; 32] = [0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d, 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13, 0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d, 0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540];
const INV_LN2_N: u64 = 0x40471547652b82fe;
const SHIFT: u64 = 0x4338000000000000;
const C0: u64 = 0x3ebc6af84b912394;
const C1: u64 = 0x3f2ebfce50fac4f3;
const C2: u64 = 0x3f962e42ff0c52d6;

/// Below this, `expf` is +0 (it underflows; −inf included).
const UNDERFLOW: f32 = f32::from_bits(0xc2cf_f1b4); // -0x1.9fe368p6 = log(2^-150)
/// Above this, `expf` is +inf.
const OVERFLOW: f32 = f32::from_bits(0x42b1_7217); // 0x1.62e42ep6 = log(2^128)

/// `x[i] = x[i].exp()` for every i, with `f32::exp`'s bits.
pub fn exp_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if vector_matches_libm() {
        // SAFETY: `vector_matches_libm` is true only on a CPU with AVX2
        // and FMA.
        unsafe { x86::exp_in_place(x) };
        return;
    }
    for v in x.iter_mut() {
        *v = v.exp();
    }
}

/// Whether the vector version runs here and gives `f32::exp`'s bits on
/// the check's inputs (once per process).
pub fn vector_matches_libm() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let inputs = check_inputs();
            let mut got = inputs.clone();
            // SAFETY: AVX2 and FMA were detected just above.
            unsafe { x86::exp_in_place(&mut got) };
            return inputs.iter().zip(&got).all(|(x, g)| same(x.exp(), *g));
        }
        false
    })
}

/// Bit-equal, or both NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The edge cases, and 2^16 values spread over the range where `expf` is
/// neither 0 nor infinite.
fn check_inputs() -> Vec<f32> {
    let mut v = vec![
        0.0, -0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, -f32::MIN_POSITIVE,
        UNDERFLOW, OVERFLOW, -87.336_55, -88.0, -100.0, -104.0, 89.0, 1e-30, -1e-30, f32::MAX, f32::MIN,
    ];
    for edge in [UNDERFLOW, OVERFLOW] {
        let b = edge.to_bits();
        v.extend((b - 64..b + 64).map(f32::from_bits));
    }
    let (lo, hi) = ((-104.0f32).to_bits(), 89.0f32.to_bits());
    let (neg, pos) = (lo - (-0.0f32).to_bits(), hi);
    v.extend((0..1u32 << 15).map(|i| f32::from_bits((-0.0f32).to_bits() + ((i as u64 * neg as u64) >> 15) as u32)));
    v.extend((0..1u32 << 15).map(|i| f32::from_bits(((i as u64 * pos as u64) >> 15) as u32)));
    v
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{C0, C1, C2, INV_LN2_N, OVERFLOW, SHIFT, TABLE, UNDERFLOW};

    /// Four floats (as doubles) through `expf`'s arithmetic.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp4(xd: __m256d) -> __m128 {
        let inv_ln2_n = _mm256_set1_pd(f64::from_bits(INV_LN2_N));
        let shift = _mm256_set1_pd(f64::from_bits(SHIFT));
        // kd = fma(x, 32/ln2, shift): k in the low bits; r = x·32/ln2 − k.
        let kd = _mm256_fmadd_pd(inv_ln2_n, xd, shift);
        let ki = _mm256_castpd_si256(kd);
        let k = _mm256_sub_pd(kd, shift);
        let r = _mm256_fmsub_pd(inv_ln2_n, xd, k);
        // s = 2^(k/32): the table entry for k mod 32, k's bits shifted into
        // the exponent.
        let index = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
        // SAFETY: every index is below 32, TABLE's length.
        let t = unsafe { _mm256_i64gather_epi64::<8>(TABLE.as_ptr().cast(), index) };
        let s = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64::<47>(ki)));
        let z = _mm256_fmadd_pd(_mm256_set1_pd(f64::from_bits(C0)), r, _mm256_set1_pd(f64::from_bits(C1)));
        let r2 = _mm256_mul_pd(r, r);
        let y = _mm256_fmadd_pd(_mm256_set1_pd(f64::from_bits(C2)), r, _mm256_set1_pd(1.0));
        let y = _mm256_fmadd_pd(z, r2, y);
        _mm256_cvtpd_ps(_mm256_mul_pd(y, s))
    }

    /// Eight floats; the out-of-range lanes as `expf` has them (+0 below,
    /// +inf above, NaN stays NaN).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let lo = exp4(_mm256_cvtps_pd(_mm256_castps256_ps128(x)));
        let hi = exp4(_mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)));
        let y = _mm256_set_m128(hi, lo);
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(UNDERFLOW));
        let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(OVERFLOW));
        let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
        let y = _mm256_andnot_ps(under, y);
        let y = _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), over);
        _mm256_blendv_ps(y, _mm256_add_ps(x, x), nan)
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_in_place(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds 8 floats.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), exp8(_mm256_loadu_ps(c.as_ptr()))) };
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut buf = [0.0f32; 8];
            buf[..rest.len()].copy_from_slice(rest);
            // SAFETY: `buf` holds 8 floats.
            unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), exp8(_mm256_loadu_ps(buf.as_ptr()))) };
            rest.copy_from_slice(&buf[..rest.len()]);
        }
    }
}

/// Every float in `[lo, hi]` whose bit pattern is a multiple of `step`
/// from `lo`'s: `(x, vector exp, f32::exp)` where they differ. For the
/// sweep in `tests/exp_libm.rs`.
pub fn mismatches(lo: f32, hi: f32, step: u32) -> Vec<(f32, f32, f32)> {
    let mut bad = Vec::new();
    let mut batch = Vec::with_capacity(4096);
    let flush = |batch: &mut Vec<f32>, bad: &mut Vec<(f32, f32, f32)>| {
        let mut got = batch.clone();
        exp_in_place(&mut got);
        bad.extend(batch.iter().zip(&got).filter(|(x, g)| !same(x.exp(), **g)).map(|(&x, &g)| (x, g, x.exp())));
        batch.clear();
    };
    // Walk the bit patterns: a negative float's grow with its magnitude,
    // so the negative part runs from the end nearest 0 down to `lo`.
    let mut ranges = Vec::new();
    if lo < 0.0 {
        ranges.push((if hi < 0.0 { hi } else { -0.0f32 }.to_bits(), lo.to_bits()));
    }
    if hi >= 0.0 {
        ranges.push((if lo > 0.0 { lo } else { 0.0f32 }.to_bits(), hi.to_bits()));
    }
    for (from, to) in ranges {
        let mut b = from;
        while b <= to {
            batch.push(f32::from_bits(b));
            if batch.len() == batch.capacity() {
                flush(&mut batch, &mut bad);
            }
            b = match b.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
    }
    flush(&mut batch, &mut bad);
    bad
}
