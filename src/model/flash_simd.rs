//! x86 vector versions of [`super::flash_attention`]'s loop, bit-identical
//! to it: the same fused operations in the same order, with the f16
//! accumulator held in registers for the whole pass over positions
//! instead of being converted in and out of a buffer at every position
//! (that buffer traffic made attention ~20% of a 512-token prompt).
//!
//! Three phases, which the reference interleaves but which do not depend
//! on each other: first every position's score (the dot product in ggml's
//! 64-lane order, see `dot_f16`); then the online softmax's factors
//! ([`online_weights`]: the running maximum in position order, then every
//! `expf` at once, vectorized with libm's bits by [`super::libm_exp`]);
//! then the accumulation over the values in position order. The tier
//! follows `moe_quant::dispatch::tier()`, so `MOE_QUANT_TIER=avx2` measures
//! what an AVX2 machine runs. This module, [`super::libm_exp`] and
//! [`super::fma`] hold the model's `unsafe`.

#![allow(unsafe_code)]

use super::attention::ValueLayout;

/// A vector kernel for the query heads of one KV head: `q` holds
/// `out.len() / head_dim` queries of `head_dim` values each, already
/// rounded to f16 values; `scale` is the score multiplier; `scores` has
/// room for every query's `n_pos` scores (query g's at `g·n_pos`). Each
/// query's output is what the one-query reference gives. (The AVX-512
/// kernel converts each K and V row once for the group; the AVX2 one runs
/// the queries one after another.)
/// `new_max` is scratch for [`online_weights`].
pub type Kernel =
    fn(q: &[f32], keys: &[u16], values: &[u16], layout: ValueLayout, head_dim: usize, scale: f32, scores: &mut [f32], new_max: &mut Vec<u32>, out: &mut [f32]);

/// The reference's softmax factors for one query's `scores`, in place: at a
/// position whose score does not exceed the running maximum m, the weight
/// `exp(score − m)` (its own factor being 1); at one that sets a new
/// maximum, the factor `exp(m − score)` by which the accumulator is scaled
/// (its weight being 1), its position appended to `new_max`. The exps run
/// vectorized, with `f32::exp`'s bits.
pub fn online_weights(scores: &mut [f32], new_max: &mut Vec<u32>) {
    let mut m = f32::NEG_INFINITY;
    for (t, s) in scores.iter_mut().enumerate() {
        let score = *s;
        if score > m {
            *s = m - score;
            m = score;
            new_max.push(t as u32);
        } else {
            *s = score - m;
        }
    }
    super::libm_exp::exp_in_place(scores);
}

/// Position t's factors from [`online_weights`]' output for one query: (ms,
/// vs, whether t sets a new maximum), `new_max` being that query's
/// new-maximum positions and `next` the index of the first not yet passed.
#[inline(always)]
pub fn factors(w: &[f32], t: usize, new_max: &[u32], next: &mut usize) -> (f32, f32, bool) {
    if new_max.get(*next) == Some(&(t as u32)) {
        *next += 1;
        (w[t], 1.0, true)
    } else {
        (1.0, w[t], false)
    }
}

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

    use super::{factors, online_weights, ValueLayout};

    /// The head sizes `kernel` serves (the unchecked loads rely on them),
    /// and a whole number of queries with room for their scores. Returns
    /// (queries, positions).
    fn check_shape(q: &[f32], hd: usize, scores: &[f32], out: &[f32]) -> (usize, usize) {
        assert!(hd > 0 && hd.is_multiple_of(64) && hd <= 256, "flash kernel: head size {hd}");
        assert!(q.len().is_multiple_of(hd) && out.len() == q.len() && !q.is_empty(), "flash kernel: {} query and {} output values", q.len(), out.len());
        let n = q.len() / hd;
        assert!(scores.len().is_multiple_of(n), "flash kernel: {} scores for {n} queries", scores.len());
        (n, scores.len() / n)
    }

    /// Position t's `hd` values in `cache` (keys or values).
    #[inline(always)]
    fn at(cache: &[u16], layout: ValueLayout, t: usize, hd: usize) -> &[u16] {
        &cache[layout.offset + t * layout.stride..][..hd]
    }

    /// The `n` queries of a group in blocks of at most `most`: `each(g, k)`
    /// runs the block of `k` queries from query g.
    #[inline(always)]
    fn blocks(n: usize, most: usize, mut each: impl FnMut(usize, usize)) {
        let mut g = 0;
        while g < n {
            let q = most.min(n - g);
            each(g, q);
            g += q;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn avx512(q: &[f32], keys: &[u16], values: &[u16], layout: ValueLayout, hd: usize, scale: f32, scores: &mut [f32], new_max: &mut Vec<u32>, out: &mut [f32]) {
        let (n, n_pos) = check_shape(q, hd, scores, out);
        // SAFETY: `kernel` hands this out only for the AVX-512 tier, which
        // `is_available` checked (AVX-512 F/VL, with AVX2/FMA/F16C).
        unsafe {
            blocks(n, 4, |g, k| {
                let (q, s) = (&q[g * hd..(g + k) * hd], &mut scores[g * n_pos..(g + k) * n_pos]);
                match k {
                    1 => scores512::<1>(q, keys, layout, scale, s),
                    2 => scores512::<2>(q, keys, layout, scale, s),
                    3 => scores512::<3>(q, keys, layout, scale, s),
                    _ => scores512::<4>(q, keys, layout, scale, s),
                }
            });
            // As many queries at a time as keep their accumulators in half
            // the 32 zmm registers (4 of head size 64, 2 of 128), so that
            // their rounding chains interleave: their factors, query j's
            // new-maximum positions being new_max[starts[j]..starts[j + 1]],
            // then the values.
            blocks(n, (16 / (hd / 16)).max(1), |g, k| {
                new_max.clear();
                let mut starts = [0usize; 5];
                for j in 0..k {
                    online_weights(&mut scores[(g + j) * n_pos..(g + j + 1) * n_pos], new_max);
                    starts[j + 1] = new_max.len();
                }
                let (s, o) = (&scores[g * n_pos..(g + k) * n_pos], &mut out[g * hd..(g + k) * hd]);
                let nm = (&new_max[..], &starts[..=k]);
                match (hd / 16, k) {
                    (4, 1) => values512::<4, 1>(s, nm, values, layout, o),
                    (4, 2) => values512::<4, 2>(s, nm, values, layout, o),
                    (4, 3) => values512::<4, 3>(s, nm, values, layout, o),
                    (4, _) => values512::<4, 4>(s, nm, values, layout, o),
                    (8, 1) => values512::<8, 1>(s, nm, values, layout, o),
                    (8, _) => values512::<8, 2>(s, nm, values, layout, o),
                    (12, _) => values512::<12, 1>(s, nm, values, layout, o),
                    _ => values512::<16, 1>(s, nm, values, layout, o),
                }
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn avx2(q: &[f32], keys: &[u16], values: &[u16], layout: ValueLayout, hd: usize, scale: f32, scores: &mut [f32], new_max: &mut Vec<u32>, out: &mut [f32]) {
        let (n, n_pos) = check_shape(q, hd, scores, out);
        // SAFETY: `kernel` hands this out only for the AVX2 tier or above,
        // which `is_available` checked (AVX2, FMA, F16C).
        unsafe {
            for g in 0..n {
                let (q, s) = (&q[g * hd..(g + 1) * hd], &mut scores[g * n_pos..(g + 1) * n_pos]);
                scores256(q, keys, layout, scale, s);
                new_max.clear();
                online_weights(s, new_max);
                let o = &mut out[g * hd..(g + 1) * hd];
                match hd / 8 {
                    8 => values256::<8>(s, new_max, values, layout, o),
                    16 => values256::<16>(s, new_max, values, layout, o),
                    24 => values256::<24>(s, new_max, values, layout, o),
                    _ => values256::<32>(s, new_max, values, layout, o),
                }
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

    /// Scores of `Q` queries (`q`, Q·hd values; `scores`, Q·n_pos): for
    /// each, ggml_vec_dot_f16's four 16-lane accumulators per 64 elements,
    /// folded (a0 + a2) + (a1 + a3), reduced, times `scale`. Each K vector
    /// is converted once for the Q queries. Whole groups of 16 positions
    /// are reduced together ([`reduce16x16`]), the rest one by one; both
    /// add the same pairs.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn scores512<const Q: usize>(q: &[f32], keys: &[u16], layout: ValueLayout, scale: f32, scores: &mut [f32]) {
        let hd = q.len() / Q;
        let n_pos = scores.len() / Q;
        let whole = n_pos / 16 * 16;
        let mut folded = [[_mm512_setzero_ps(); 16]; Q];
        for t0 in (0..whole).step_by(16) {
            for (i, t) in (t0..t0 + 16).enumerate() {
                let v = fold512::<Q>(q, at(keys, layout, t, hd), hd);
                for g in 0..Q {
                    folded[g][i] = v[g];
                }
            }
            for (g, f) in folded.iter().enumerate() {
                let s = _mm512_mul_ps(reduce16x16(f), _mm512_set1_ps(scale));
                // SAFETY: g·n_pos + t0 + 16 <= g·n_pos + n_pos <= scores.len().
                unsafe { _mm512_storeu_ps(scores.as_mut_ptr().add(g * n_pos + t0), s) };
            }
        }
        for t in whole..n_pos {
            let v = fold512::<Q>(q, at(keys, layout, t, hd), hd);
            for (g, v) in v.iter().enumerate() {
                let lo = _mm512_castps512_ps256(*v);
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(*v)));
                scores[g * n_pos + t] = reduce_halves(_mm256_add_ps(lo, hi)) * scale;
            }
        }
    }

    /// Each query's dot-product lanes with key row `k`, folded to 16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn fold512<const Q: usize>(q: &[f32], k: &[u16], hd: usize) -> [__m512; Q] {
        let mut a = [[_mm512_setzero_ps(); 4]; Q];
        for c in 0..hd / 64 {
            for j in 0..4 {
                let i = c * 64 + j * 16;
                // SAFETY: i + 16 <= hd = k.len().
                let kv = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(k.as_ptr().add(i).cast())) };
                for (g, ag) in a.iter_mut().enumerate() {
                    // SAFETY: g·hd + i + 16 <= Q·hd = q.len().
                    let qv = unsafe { _mm512_loadu_ps(q.as_ptr().add(g * hd + i)) };
                    ag[j] = _mm512_fmadd_ps(kv, qv, ag[j]);
                }
            }
        }
        core::array::from_fn(|g| _mm512_add_ps(_mm512_add_ps(a[g][0], a[g][2]), _mm512_add_ps(a[g][1], a[g][3])))
    }

    /// The [`reduce_halves`] sum of each of 16 vectors, as one vector
    /// (lane t: vector t's sum): the same four rounds of pairwise adds,
    /// lane i + 8, then i + 4, then i + 2, then i + 1, done for all 16 at
    /// once by shuffling pairs of vectors together before each add. The
    /// rounds leave position t in lane 4·(t mod 4) + t/4, a transpose of
    /// 4 × 4 that the last permute undoes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn reduce16x16(v: &[__m512; 16]) -> __m512 {
        // Lanes i and i + 8 (128-bit blocks 0,1 and 2,3), two vectors at a time.
        let w: [__m512; 8] = core::array::from_fn(|k| {
            let (a, b) = (v[2 * k], v[2 * k + 1]);
            _mm512_add_ps(_mm512_shuffle_f32x4::<0b01_00_01_00>(a, b), _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b))
        });
        // Lanes i and i + 4 (blocks 0,2 and 1,3 of each pair).
        let x: [__m512; 4] = core::array::from_fn(|k| {
            let (a, b) = (w[2 * k], w[2 * k + 1]);
            _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(a, b), _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b))
        });
        // Lanes 0 + 2 and 1 + 3 of each block.
        let y: [__m512; 2] = core::array::from_fn(|k| {
            let (a, b) = (x[2 * k], x[2 * k + 1]);
            _mm512_add_ps(_mm512_shuffle_ps::<0b01_00_01_00>(a, b), _mm512_shuffle_ps::<0b11_10_11_10>(a, b))
        });
        // Lanes 0 + 1 (and 2 + 3) of each block.
        let s = _mm512_add_ps(_mm512_shuffle_ps::<0b10_00_10_00>(y[0], y[1]), _mm512_shuffle_ps::<0b11_01_11_01>(y[0], y[1]));
        _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), s)
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

    /// The online softmax of `K` queries (`w`, K·n_pos factors from
    /// [`online_weights`], query g's new-maximum positions being
    /// `new_max.0[new_max.1[g]..new_max.1[g + 1]]`; `out`, K·16N) with N
    /// 16-lane accumulators each (head_dim = 16·N), as the reference's
    /// position loop; each V vector is converted once for the K queries,
    /// and their dependency chains interleave.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn values512<const N: usize, const K: usize>(weights: &[f32], new_max: (&[u32], &[usize]), values: &[u16], layout: ValueLayout, out: &mut [f32]) {
        let n_pos = weights.len() / K;
        let mut acc = [[_mm512_setzero_ps(); N]; K];
        let mut sum = [0.0f32; K];
        let lists: [&[u32]; K] = core::array::from_fn(|g| &new_max.0[new_max.1[g]..new_max.1[g + 1]]);
        let mut next = [0usize; K];
        for t in 0..n_pos {
            let v = at(values, layout, t, 16 * N);
            let mut vs = [_mm512_setzero_ps(); K];
            for g in 0..K {
                let (ms, w, new_max) = factors(&weights[g * n_pos..(g + 1) * n_pos], t, lists[g], &mut next[g]);
                if new_max {
                    let msv = _mm512_set1_ps(ms);
                    for a in acc[g].iter_mut() {
                        *a = round512(_mm512_mul_ps(*a, msv));
                    }
                }
                vs[g] = _mm512_set1_ps(w);
                sum[g] = sum[g].mul_add(ms, w);
            }
            #[allow(clippy::needless_range_loop)] // i indexes both acc[g] and v
            for i in 0..N {
                // SAFETY: 16·i + 16 <= 16·N = v.len().
                let vv = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().add(16 * i).cast())) };
                for (ag, vg) in acc.iter_mut().zip(&vs) {
                    ag[i] = round512(_mm512_fmadd_ps(vv, *vg, ag[i]));
                }
            }
        }
        for g in 0..K {
            let inv = _mm512_set1_ps(if sum[g] == 0.0 { 0.0 } else { 1.0 / sum[g] });
            for (i, a) in acc[g].iter().enumerate() {
                // SAFETY: out.len() = K·16·N (checked by the caller's assert).
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(g * 16 * N + 16 * i), _mm512_mul_ps(*a, inv)) };
            }
        }
    }

    /// [`values512`] for one query with N 8-lane accumulators (head_dim =
    /// 8·N).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn values256<const N: usize>(w: &[f32], new_max: &[u32], values: &[u16], layout: ValueLayout, out: &mut [f32]) {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut sum = 0.0f32;
        let mut next = 0;
        for t in 0..w.len() {
            let v = at(values, layout, t, 8 * N);
            let (ms, vs, new_max) = factors(w, t, new_max, &mut next);
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
