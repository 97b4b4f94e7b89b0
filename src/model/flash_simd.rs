//! x86 vector versions of [`super::flash_attention`]'s loop, bit-identical
//! to it: the same fused operations in the same order, with the f16
//! accumulator held in registers for the whole pass over positions
//! instead of being converted in and out of a buffer at every position
//! (that buffer traffic made attention ~20% of a 512-token prompt).
//!
//! Two phases, which the reference interleaves but which do not depend on
//! each other: first every position's score (the dot product in ggml's
//! 64-lane order, see `dot_f16`), then the online softmax over the scores
//! in position order. The tier follows `moe_quant::dispatch::tier()`, so
//! `MOE_QUANT_TIER=avx2` measures what an AVX2 machine runs. This module and
//! [`super::fma`] hold the model's `unsafe`.

#![allow(unsafe_code)]

use super::attention::ValueLayout;

/// A vector kernel for one head: `q` already rounded to f16 values, `scale`
/// the score multiplier; fills `scores[..n_pos]` and writes `out`.
pub type Kernel = fn(q: &[f32], keys: &[u16], values: &[u16], layout: ValueLayout, scale: f32, scores: &mut [f32], out: &mut [f32]);

/// The kernel for this CPU's tier and head size, if there is one: head
/// sizes that are whole multiples of 64, up to 256.
pub fn kernel(head_dim: usize) -> Option<Kernel> {
    #[cfg(target_arch = "x86_64")]
    {
        use moe_quant::Tier;
        if head_dim == 0 || !head_dim.is_multiple_of(64) || head_dim > 256 {
            return None;
        }
        return match moe_quant::dispatch::tier() {
            Tier::Avx512Vnni => Some(x86::avx512),
            Tier::Avx2 => Some(x86::avx2),
            _ => None,
        };
    }
    #[allow(unreachable_code)]
    {
        let _ = head_dim;
        None
    }
}

/// The kernel of a given tier, for tests; None where the CPU lacks it.
#[cfg(test)]
pub fn kernel_of(tier: moe_quant::Tier) -> Option<Kernel> {
    #[cfg(target_arch = "x86_64")]
    if tier.is_available() {
        return match tier {
            moe_quant::Tier::Avx512Vnni => Some(x86::avx512),
            moe_quant::Tier::Avx2 => Some(x86::avx2),
            _ => None,
        };
    }
    let _ = tier;
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::ValueLayout;

    /// The head sizes `kernel` serves; the unchecked loads rely on it.
    fn check_shape(q: &[f32], out: &[f32]) {
        let hd = q.len();
        assert!(hd > 0 && hd.is_multiple_of(64) && hd <= 256 && out.len() == hd, "flash kernel: head size {hd}, {} outputs", out.len());
    }

    /// Position t's `hd` values in `cache` (keys or values).
    #[inline(always)]
    fn at(cache: &[u16], layout: ValueLayout, t: usize, hd: usize) -> &[u16] {
        &cache[layout.offset + t * layout.stride..][..hd]
    }

    /// The reference's `f32::exp`, `mul_add` and branch, in one place for
    /// both widths: returns (ms, vs) and updates the maximum `m`.
    #[inline(always)]
    fn weights(score: f32, m: &mut f32) -> (f32, f32, bool) {
        if score > *m {
            let ms = (*m - score).exp();
            *m = score;
            (ms, 1.0, true)
        } else {
            (1.0, (score - *m).exp(), false)
        }
    }

    pub fn avx512(q: &[f32], keys: &[u16], values: &[u16], layout: ValueLayout, scale: f32, scores: &mut [f32], out: &mut [f32]) {
        check_shape(q, out);
        // SAFETY: `kernel` hands this out only for the AVX-512 tier, which
        // `is_available` checked (AVX-512 F/VL, with AVX2/FMA/F16C).
        unsafe {
            scores512(q, keys, layout, scale, scores);
            match q.len() / 16 {
                4 => values512::<4>(scores, values, layout, out),
                8 => values512::<8>(scores, values, layout, out),
                12 => values512::<12>(scores, values, layout, out),
                _ => values512::<16>(scores, values, layout, out),
            }
        }
    }

    pub fn avx2(q: &[f32], keys: &[u16], values: &[u16], layout: ValueLayout, scale: f32, scores: &mut [f32], out: &mut [f32]) {
        check_shape(q, out);
        // SAFETY: `kernel` hands this out only for the AVX2 tier or above,
        // which `is_available` checked (AVX2, FMA, F16C).
        unsafe {
            scores256(q, keys, layout, scale, scores);
            match q.len() / 8 {
                8 => values256::<8>(scores, values, layout, out),
                16 => values256::<16>(scores, values, layout, out),
                24 => values256::<24>(scores, values, layout, out),
                _ => values256::<32>(scores, values, layout, out),
            }
        }
    }

    /// `reduce16` on a vector: halves, quarters, pairs, as
    /// `_mm512_reduce_add_ps`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn reduce_halves(t: __m256) -> f32 {
        // t[i] = v[i] + v[i + 8] already; then t[i] + t[i + 4], then
        // (q0 + q2, q1 + q3), then p0 + p1.
        let q = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t));
        let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps::<1>(p, p)))
    }

    /// Scores: ggml_vec_dot_f16's four 16-lane accumulators per 64
    /// elements, folded (a0 + a2) + (a1 + a3), reduced, times `scale`.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn scores512(q: &[f32], keys: &[u16], layout: ValueLayout, scale: f32, scores: &mut [f32]) {
        let hd = q.len();
        for (t, s) in scores.iter_mut().enumerate() {
            let k = at(keys, layout, t, hd);
            let mut a = [_mm512_setzero_ps(); 4];
            for c in 0..hd / 64 {
                for (j, aj) in a.iter_mut().enumerate() {
                    let i = c * 64 + j * 16;
                    // SAFETY: i + 16 <= hd = k.len() = q.len().
                    let (kv, qv) = unsafe {
                        (_mm512_cvtph_ps(_mm256_loadu_si256(k.as_ptr().add(i).cast())), _mm512_loadu_ps(q.as_ptr().add(i)))
                    };
                    *aj = _mm512_fmadd_ps(kv, qv, *aj);
                }
            }
            let v = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            *s = reduce_halves(_mm256_add_ps(lo, hi)) * scale;
        }
    }

    /// The same lanes in eight 8-lane accumulators: lanes 0..8 of the fold
    /// are (y0 + y4) + (y2 + y6), lanes 8..16 (y1 + y5) + (y3 + y7).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn scores256(q: &[f32], keys: &[u16], layout: ValueLayout, scale: f32, scores: &mut [f32]) {
        let hd = q.len();
        for (t, s) in scores.iter_mut().enumerate() {
            let k = at(keys, layout, t, hd);
            let mut y = [_mm256_setzero_ps(); 8];
            for c in 0..hd / 64 {
                for (j, yj) in y.iter_mut().enumerate() {
                    let i = c * 64 + j * 8;
                    // SAFETY: i + 8 <= hd = k.len() = q.len().
                    let (kv, qv) = unsafe {
                        (_mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(i).cast())), _mm256_loadu_ps(q.as_ptr().add(i)))
                    };
                    *yj = _mm256_fmadd_ps(kv, qv, *yj);
                }
            }
            let lo = _mm256_add_ps(_mm256_add_ps(y[0], y[4]), _mm256_add_ps(y[2], y[6]));
            let hi = _mm256_add_ps(_mm256_add_ps(y[1], y[5]), _mm256_add_ps(y[3], y[7]));
            *s = reduce_halves(_mm256_add_ps(lo, hi)) * scale;
        }
    }

    /// Rounds each lane to the nearest f16 (ties to even) and back.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn round512(x: __m512) -> __m512 {
        _mm512_cvtph_ps(_mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn round256(x: __m256) -> __m256 {
        _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x))
    }

    /// The online softmax over `scores` with N 16-lane accumulators
    /// (head_dim = 16·N), as the reference's position loop.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn values512<const N: usize>(scores: &[f32], values: &[u16], layout: ValueLayout, out: &mut [f32]) {
        let mut acc = [_mm512_setzero_ps(); N];
        let (mut m, mut sum) = (f32::NEG_INFINITY, 0.0f32);
        for (t, &score) in scores.iter().enumerate() {
            let v = at(values, layout, t, 16 * N);
            let (ms, vs, new_max) = weights(score, &mut m);
            if new_max {
                let msv = _mm512_set1_ps(ms);
                for a in acc.iter_mut() {
                    *a = round512(_mm512_mul_ps(*a, msv));
                }
            }
            let vsv = _mm512_set1_ps(vs);
            for (i, a) in acc.iter_mut().enumerate() {
                // SAFETY: 16·i + 16 <= 16·N = v.len().
                let vv = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().add(16 * i).cast())) };
                *a = round512(_mm512_fmadd_ps(vv, vsv, *a));
            }
            sum = sum.mul_add(ms, vs);
        }
        let inv = _mm512_set1_ps(if sum == 0.0 { 0.0 } else { 1.0 / sum });
        for (i, a) in acc.iter().enumerate() {
            // SAFETY: out.len() = 16·N (checked by the caller's assert).
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(16 * i), _mm512_mul_ps(*a, inv)) };
        }
    }

    /// [`values512`] with N 8-lane accumulators (head_dim = 8·N).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn values256<const N: usize>(scores: &[f32], values: &[u16], layout: ValueLayout, out: &mut [f32]) {
        let mut acc = [_mm256_setzero_ps(); N];
        let (mut m, mut sum) = (f32::NEG_INFINITY, 0.0f32);
        for (t, &score) in scores.iter().enumerate() {
            let v = at(values, layout, t, 8 * N);
            let (ms, vs, new_max) = weights(score, &mut m);
            if new_max {
                let msv = _mm256_set1_ps(ms);
                for a in acc.iter_mut() {
                    *a = round256(_mm256_mul_ps(*a, msv));
                }
            }
            let vsv = _mm256_set1_ps(vs);
            for (i, a) in acc.iter_mut().enumerate() {
                // SAFETY: 8·i + 8 <= 8·N = v.len().
                let vv = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(8 * i).cast())) };
                *a = round256(_mm256_fmadd_ps(vv, vsv, *a));
            }
            sum = sum.mul_add(ms, vs);
        }
        let inv = _mm256_set1_ps(if sum == 0.0 { 0.0 } else { 1.0 / sum });
        for (i, a) in acc.iter().enumerate() {
            // SAFETY: out.len() = 8·N (checked by the caller's assert).
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * i), _mm256_mul_ps(*a, inv)) };
        }
    }
}
