//! Q4_K and Q5_K · Q8_K, AVX2: 4/5-bit unsigned codes, eight sub-blocks of
//! 32 with 6-bit scales and mins.
//!
//! Integer part per row: for each sub-block, `maddubs(code, a)` (i16 pairs,
//! at most 31·127·2) then `madd` with the sub-block scale broadcast to i16
//! (i32 lanes), summed over the super-block: exact. The min part is
//! `Σ_j m_j·(bsums[2j] + bsums[2j+1])`, also exact. In llama.cpp's x86
//! float order (see `crate::scalar::kquant`): per super-block
//! `acc = fma(d·dy, sumi, acc)` in 8 lanes, and the min terms with
//! `−dmin·dy` in a 4-lane accumulator (Q4_K) or one f32 (Q5_K), added
//! after the 8-lane sum. Rows share the activation loads (j outer, rows
//! inner).

use core::arch::x86_64::*;

use super::util::{f16x4, hsum_ps, hsum_ps128, ld256, prefetch_next};
use crate::simd::{block, common_blocks, k4_scale_mins, sub, u32_at};

/// Shuffle controls that broadcast i16 word k of a 128-bit lane to the lane.
static WORD_BCAST: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    let mut k = 0;
    while k < 8 {
        let mut b = 0;
        while b < 32 {
            t[k][b] = (2 * k + b % 2) as u8;
            b += 1;
        }
        k += 1;
    }
    t
};

/// Per-row super-block setup shared by Q4_K and Q5_K: the 8 scales as i16 in
/// both 128-bit lanes, and the min term `Σ m_j·bsum32_j` as four i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_and_mins(s: &[u8; 12], bsum32: __m128i) -> (__m256i, __m128i) {
    let (scales, m16) = scales_and_mins16(s);
    (scales, _mm_madd_epi16(m16, bsum32))
}

/// The weight-only half of [`scales_and_mins`]: the scales, and the 8 mins
/// as i16 (the min term is `madd(mins16, bsum32)` per activation).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_and_mins16(s: &[u8; 12]) -> (__m256i, __m128i) {
    let (sc, m) = k4_scale_mins(s);
    let sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64));
    let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
    (_mm256_broadcastsi128_si256(sc16), m16)
}

/// Sub-block `k`'s scale (of [`scales_and_mins16`]'s) in every i16 word.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_of(scales: __m256i, k: usize) -> __m256i {
    _mm256_shuffle_epi8(scales, ld256(&WORD_BCAST[k]))
}

/// The 16 bsums of a Q8_K block summed in pairs: one i16 per 32 elements.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn bsums32(y: &[u8; 292]) -> __m128i {
    let bs = ld256(sub::<260, 32, 292>(y));
    _mm_hadd_epi16(
        _mm256_castsi256_si128(bs),
        _mm256_extracti128_si256::<1>(bs),
    )
}

/// `sc` times the unsigned codes `u` dotted with `a`, in i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scaled_dot(u: __m256i, a: __m256i, scales: __m256i, k: usize) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), scale_of(scales, k))
}

/// Fold one super-block into a row's accumulators.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn finish_block(acc: &mut __m256, acc_m: &mut __m128, dd: __m128, sumi: __m256i, mins: __m128i) {
    *acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi), *acc);
    let dmin = _mm_permute_ps::<0b01_01_01_01>(dd);
    *acc_m = _mm_fnmadd_ps(dmin, _mm_cvtepi32_ps(mins), *acc_m);
}

/// Q5_K's variant of [`finish_block`]: the min term is one f32 per row,
/// `summs −= dmin·dy·(Σ of the four i32)`, as llama.cpp's x86 Q5_K kernel
/// keeps it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn finish_block_q5(
    acc: &mut __m256,
    summs: &mut __m128,
    dd: __m128,
    sumi: __m256i,
    mins: __m128i,
) {
    *acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi), *acc);
    let dmin = _mm_movehdup_ps(dd);
    *summs = _mm_fnmadd_ss(dmin, _mm_cvtepi32_ps(hsum_epi32(mins)), *summs);
}

/// The sum of four i32 lanes, in lane 0 (exact, wrapping).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_epi32(v: __m128i) -> __m128i {
    let v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
    _mm_add_epi32(v, _mm_shuffle_epi32::<0b01>(v))
}

/// (d·dy, dmin·dy) in lanes 0 and 1, from the f16 pair at the block start.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn super_scales(d_dmin: u32, dy: f32) -> __m128 {
    _mm_mul_ps(f16x4(u64::from(d_dmin)), _mm_set1_ps(dy))
}

/// Q4_K (`FIVE` false) and Q5_K (`FIVE` true: fifth bits `qh` at byte 16):
/// blocks of `BB` bytes with the 4-bit codes at byte `QS`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4<const R: usize, const FIVE: bool, const BB: usize, const QS: usize>(
    w: [&[u8]; R],
    a: &[u8],
) -> [f32; R] {
    let nb = common_blocks(&w, BB, a, 292);
    let mut acc = [_mm256_setzero_ps(); R];
    // Q4_K: four lanes of min terms; Q5_K: one, in lane 0.
    let mut acc_m = [_mm_setzero_ps(); R];
    for i in 0..nb {
        prefetch_next::<R, BB, _MM_HINT_T1>(&w, i, nb);
        let y = block::<292>(a, i);
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<32>();
        let bs = bsums32(y);
        let x: [&[u8; BB]; R] = core::array::from_fn(|r| block::<BB>(w[r], i));
        let mut scales = [_mm256_setzero_si256(); R];
        let mut mins = [_mm_setzero_si128(); R];
        // Q5_K's qh byte l, bit g: fifth bit of element 32g + l. Shifted
        // right by two per 64 elements, so bits 0 and 1 are the current pair.
        let mut qh = [_mm256_setzero_si256(); R];
        for r in 0..R {
            (scales[r], mins[r]) = scales_and_mins(sub::<4, 12, BB>(x[r]), bs);
            if FIVE {
                qh[r] = ld256(sub::<16, 32, BB>(x[r]));
            }
        }
        let mut sumi = [_mm256_setzero_si256(); R];
        for j in 0..4 {
            let (a_lo, a_hi) = (ld256(&aq[2 * j]), ld256(&aq[2 * j + 1]));
            for r in 0..R {
                let (qc, _) = sub::<QS, 128, BB>(x[r]).as_chunks::<32>();
                let q = ld256(&qc[j]);
                let [lo, hi] = k4_codes::<FIVE>(q, &mut qh[r]);
                let s = _mm256_add_epi32(
                    scaled_dot(lo, a_lo, scales[r], 2 * j),
                    scaled_dot(hi, a_hi, scales[r], 2 * j + 1),
                );
                sumi[r] = _mm256_add_epi32(sumi[r], s);
            }
        }
        for r in 0..R {
            let dd = super_scales(u32_at::<0, BB>(x[r]), dy);
            if FIVE {
                finish_block_q5(&mut acc[r], &mut acc_m[r], dd, sumi[r], mins[r]);
            } else {
                finish_block(&mut acc[r], &mut acc_m[r], dd, sumi[r], mins[r]);
            }
        }
    }
    core::array::from_fn(|r| hsum_ps(acc[r]) + finish_mins::<FIVE>(acc_m[r]))
}

/// The codes of 64 elements from 32 `qs` bytes `q`: low nibbles (the first
/// sub-block of 32) and high nibbles (the second), for Q5_K (`FIVE`) with
/// the fifth bits from `qh` (bits 0 and 1 of each byte; shifted right by
/// two for the next 64 elements).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn k4_codes<const FIVE: bool>(q: __m256i, qh: &mut __m256i) -> [__m256i; 2] {
    let (mask, bit4) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x10));
    let lo = _mm256_and_si256(q, mask);
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
    if !FIVE {
        return [lo, hi];
    }
    let h_lo = _mm256_and_si256(_mm256_slli_epi16::<4>(*qh), bit4);
    let h_hi = _mm256_and_si256(_mm256_slli_epi16::<3>(*qh), bit4);
    *qh = _mm256_srli_epi16::<2>(*qh);
    [_mm256_or_si256(lo, h_lo), _mm256_or_si256(hi, h_hi)]
}

/// A row's min-term accumulator as a float: Q4_K's four lanes summed
/// `(l0 + l2) + (l1 + l3)`, Q5_K's single lane as it is.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn finish_mins<const FIVE: bool>(acc_m: __m128) -> f32 {
    if FIVE {
        _mm_cvtss_f32(acc_m)
    } else {
        hsum_ps128(acc_m)
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    k4::<R, false, 144, 16>(w, a)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    k4::<R, true, 176, 48>(w, a)
}
