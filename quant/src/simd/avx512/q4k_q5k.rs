//! Q4_K and Q5_K · Q8_K, AVX-512: 64 codes per vector.
//!
//! 64 bytes of `qs` (chunks 2k and 2k+1) hold sub-blocks 4k and 4k+2 in
//! their low nibbles and 4k+1 and 4k+3 in their high nibbles. The
//! activations are rearranged to match once per super-block (shared by all
//! rows: `[a(4k) | a(4k+2)]` and `[a(4k+1) | a(4k+3)]` in 32-element chunks),
//! so each row needs one load, one shift and two masks per 128 elements.
//! Then `maddubs` (i16 pairs, at most 31·127·2) and `madd` with the two
//! sub-blocks' scales (one per 256-bit half) give exact i32 lanes; the two
//! halves added are the AVX2 kernel's 8 lanes, and from there (min terms,
//! FMAs, sums) the AVX2 helpers run, so the results are bit-identical.

use core::arch::x86_64::*;

use super::util::{bcast256, hsum_ps, join256, ld512, HIGH_HALF_W};
use crate::simd::avx2::util::prefetch_next;
use crate::simd::avx2::q4k_q5k::{
    bsums32, finish_block, finish_block_q5, finish_mins, super_scales,
};
use crate::simd::{block, common_blocks, k4_scale_mins, sub, u32_at};

/// Per-row setup: scales as i32 lanes 0..8 holding each 6-bit scale in both
/// 16-bit halves, and the min term as four i32. (Unpacked in general
/// registers: measured faster here than the vector unpacking of
/// `ktile::k4_scale_mins_x4`, 42 vs 37 GMAC/s on 32 L2-resident Q4_K matvecs.)
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn scales_and_mins(s: &[u8; 12], bsum32: __m128i) -> (__m512i, __m128i) {
    let (sc, m) = k4_scale_mins(s);
    let s32 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(sc as i64));
    let pairs = _mm256_or_si256(s32, _mm256_slli_epi32::<16>(s32));
    let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
    (_mm512_zextsi256_si512(pairs), _mm_madd_epi16(m16, bsum32))
}

/// Scale words for sub-block `s` in the low half and `s + 2` in the high.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn half_scales(pairs: __m512i, s: usize) -> __m512i {
    let base = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    let idx = _mm512_add_epi32(base, _mm512_set1_epi32(s as i32));
    _mm512_permutexvar_epi32(idx, pairs)
}

/// Activations of the 128 elements from 128k, as (sub-blocks 4k | 4k+2,
/// sub-blocks 4k+1 | 4k+3), 32 elements per sub-block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn acts_lo_hi(aq: &[[u8; 32]], k: usize) -> (__m512i, __m512i) {
    (
        join256(&aq[4 * k], &aq[4 * k + 2]),
        join256(&aq[4 * k + 1], &aq[4 * k + 3]),
    )
}

/// `maddubs(u, a)` times the scales of sub-blocks `s` and `s + 2`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn scaled(u: __m512i, a: __m512i, pairs: __m512i, s: usize) -> __m512i {
    _mm512_madd_epi16(_mm512_maddubs_epi16(u, a), half_scales(pairs, s))
}

/// The two 256-bit halves of `v` added: 8 i32 lanes, lane k holding the
/// elements `(e mod 32) / 4 = k` as in the AVX2 kernels (exact).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn fold256(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
}

/// The codes of two 32-element sub-blocks per 256-bit half from 64 `qs`
/// bytes `q` (low nibbles, high nibbles), for Q5_K (`FIVE`) with the fifth
/// bits from `qh` (bits 0 and 1 of each byte; then shifted right by
/// `QH_SHIFT` for the next use).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn k4_codes<const FIVE: bool, const QH_SHIFT: u32>(
    q: __m512i,
    qh: &mut __m512i,
) -> [__m512i; 2] {
    let (mask, bit4) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x10));
    let lo = _mm512_and_si512(q, mask);
    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), mask);
    if !FIVE {
        return [lo, hi];
    }
    let h_lo = _mm512_and_si512(_mm512_slli_epi16::<4>(*qh), bit4);
    let h_hi = _mm512_and_si512(_mm512_slli_epi16::<3>(*qh), bit4);
    *qh = _mm512_srli_epi16::<QH_SHIFT>(*qh);
    [_mm512_or_si512(lo, h_lo), _mm512_or_si512(hi, h_hi)]
}

/// Q4_K (`FIVE` false) and Q5_K (`FIVE` true: fifth bits `qh` at byte 16):
/// blocks of `BB` bytes with the 4-bit codes at byte `QS`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
        let sm: [(__m512i, __m128i); R] =
            core::array::from_fn(|r| scales_and_mins(sub::<4, 12, BB>(x[r]), bs));
        // Q5_K's qh byte l, bit g: fifth bit of element 32g + l. Low half:
        // qh, high half: qh >> 2, so that bit 4k + b of the low half and bit
        // 4k + 2 + b of qh line up; shifted right by 4 per 128 elements.
        let mut qh: [__m512i; R] = core::array::from_fn(|r| {
            if FIVE {
                let h = bcast256(sub::<16, 32, BB>(x[r]));
                _mm512_mask_srli_epi16(h, HIGH_HALF_W, h, 2)
            } else {
                _mm512_setzero_si512()
            }
        });
        let mut sumi = [_mm512_setzero_si512(); R];
        for k in 0..2 {
            let (a_lo, a_hi) = acts_lo_hi(aq, k);
            for r in 0..R {
                let (qc, _) = sub::<QS, 128, BB>(x[r]).as_chunks::<64>();
                let q = ld512(&qc[k]);
                let [lo, hi] = k4_codes::<FIVE, 4>(q, &mut qh[r]);
                let p = _mm512_add_epi32(
                    scaled(lo, a_lo, sm[r].0, 4 * k),
                    scaled(hi, a_hi, sm[r].0, 4 * k + 1),
                );
                sumi[r] = _mm512_add_epi32(sumi[r], p);
            }
        }
        for r in 0..R {
            let dd = super_scales(u32_at::<0, BB>(x[r]), dy);
            let lanes = fold256(sumi[r]);
            if FIVE {
                finish_block_q5(&mut acc[r], &mut acc_m[r], dd, lanes, sm[r].1);
            } else {
                finish_block(&mut acc[r], &mut acc_m[r], dd, lanes, sm[r].1);
            }
        }
    }
    core::array::from_fn(|r| hsum_ps(acc[r]) + finish_mins::<FIVE>(acc_m[r]))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q4_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    k4::<R, false, 144, 16>(w, a)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q5_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    k4::<R, true, 176, 48>(w, a)
}
