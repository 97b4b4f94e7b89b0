//! Q2_K, Q3_K and Q6_K · Q8_K, AVX-512: 64 codes (four sub-blocks of 16) per
//! vector.
//!
//! Bit-identical to the AVX2 kernels (llama.cpp's x86 float order). Codes
//! are unsigned bytes (Q2_K: 0..=3, Q3_K: q + 4, Q6_K: q + 32); for Q3_K
//! `maddubs(code, a) − maddubs(4, a)` gives exact i16 pairs of q·a (the
//! activation term is computed once per super-block for all rows), and
//! `vpdpwssd` with the sub-block scales (one per 128-bit lane, picked by
//! `permutexvar` from the 16 scales) accumulates exact i32 lanes. The two
//! 256-bit halves hold elements 32 apart, so their sum is the AVX2 kernel's
//! 8 lanes; from there (Q6_K's offset, the FMAs) it is the AVX2 sequence.

use core::arch::x86_64::*;

use crate::simd::avx2::util::prefetch_next;

use super::q4k_q5k::fold256;
use super::util::{
    bcast256, dpwssd, f16x4, hsum_ps, ld128, ld256, ld512, q3k_scales, scale_pairs_i8, HIGH_HALF_W,
};
use crate::simd::avx2::q2k_q3k_q6k::q6k_offset;
use crate::simd::{block, common_blocks, sub, u16_at, u32_at};

/// Scale words for 64 elements starting at sub-block 4c: sub-block 4c + k
/// in 128-bit lane k.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn quad_scales(pairs: __m512i, c: usize) -> __m512i {
    let base = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    let idx = _mm512_add_epi32(base, _mm512_set1_epi32(4 * c as i32));
    _mm512_permutexvar_epi32(idx, pairs)
}

/// `sumi += p16·scales(c)` (i16 pairs to i32 lanes, exact).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn add_scaled(sumi: &mut __m512i, p16: __m512i, pairs: __m512i, c: usize) {
    // `vpdpwssd`: the `madd` and the add in one instruction (exact).
    *sumi = dpwssd(*sumi, p16, quad_scales(pairs, c));
}

/// `acc = fma(d, lanes, acc)` in 8 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn fold(acc: &mut __m256, d: f32, lanes: __m256i) {
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), *acc);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q6_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 210, a, 292);
    let m4 = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); R];
    for i in 0..nb {
        prefetch_next::<R, 210, _MM_HINT_T1>(&w, i, nb);
        let y = block::<292>(a, i);
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<64>();
        let x: [&[u8; 210]; R] = core::array::from_fn(|r| block::<210>(w[r], i));
        let bsums = ld256(sub::<260, 32, 292>(y));
        let raw: [__m128i; R] = core::array::from_fn(|r| ld128(sub::<192, 16, 210>(x[r])));
        let sc = raw.map(|s| scale_pairs_i8(s));
        let mut sumi = [_mm512_setzero_si512(); R];
        for h in 0..2 {
            let (a01, a23) = (ld512(&aq[2 * h]), ld512(&aq[2 * h + 1]));
            for r in 0..R {
                let (ql, _) = sub::<0, 128, 210>(x[r]).as_chunks::<64>();
                let (qh, _) = sub::<128, 64, 210>(x[r]).as_chunks::<32>();
                let l = ld512(&ql[h]);
                let hb = bcast256(&qh[h]);
                // Low half: quarters 0/2 bits at 0-1/4-5; high half: 1/3 likewise.
                let hb = _mm512_mask_srli_epi16(hb, HIGH_HALF_W, hb, 2);
                let u01 = _mm512_or_si512(
                    _mm512_and_si512(l, m4),
                    _mm512_slli_epi16::<4>(_mm512_and_si512(hb, _mm512_set1_epi8(0x03))),
                );
                let u23 = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(l), m4),
                    _mm512_and_si512(hb, _mm512_set1_epi8(0x30)),
                );
                add_scaled(&mut sumi[r], _mm512_maddubs_epi16(u01, a01), sc[r], 2 * h);
                add_scaled(&mut sumi[r], _mm512_maddubs_epi16(u23, a23), sc[r], 2 * h + 1);
            }
        }
        for r in 0..R {
            let lanes = _mm256_sub_epi32(fold256(sumi[r]), q6k_offset(raw[r], bsums));
            let d = f16x4(u64::from(u16_at::<208, 210>(x[r])));
            fold(&mut acc[r], _mm_cvtss_f32(d) * dy, lanes);
        }
    }
    acc.map(|v| hsum_ps(v))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q3_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 110, a, 292);
    let (m3, m4) = (_mm512_set1_epi8(3), _mm512_set1_epi8(4));
    let mut acc = [_mm256_setzero_ps(); R];
    for i in 0..nb {
        prefetch_next::<R, 110, _MM_HINT_T1>(&w, i, nb);
        let y = block::<292>(a, i);
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<64>();
        let x: [&[u8; 110]; R] = core::array::from_fn(|r| block::<110>(w[r], i));
        let sc: [__m512i; R] =
            core::array::from_fn(|r| scale_pairs_i8(q3k_scales(sub::<94, 16, 110>(x[r]))));
        // hmask byte l, bit g: high bit of element 32g + l. Low half at the
        // even group, high half at the odd one; shifted by two per vector.
        let mut hm: [__m512i; R] = core::array::from_fn(|r| {
            let h = bcast256(sub::<0, 32, 110>(x[r]));
            _mm512_mask_srli_epi16(h, HIGH_HALF_W, h, 1)
        });
        let mut sumi = [_mm512_setzero_si512(); R];
        for h in 0..2 {
            let (a01, a23) = (ld512(&aq[2 * h]), ld512(&aq[2 * h + 1]));
            let (o01, o23) = (_mm512_maddubs_epi16(m4, a01), _mm512_maddubs_epi16(m4, a23));
            for r in 0..R {
                let (qs, _) = sub::<32, 64, 110>(x[r]).as_chunks::<32>();
                let q = bcast256(&qs[h]);
                let q = _mm512_mask_srli_epi16(q, HIGH_HALF_W, q, 2);
                let h01 = _mm512_and_si512(_mm512_slli_epi16::<2>(hm[r]), m4);
                let h23 = _mm512_and_si512(hm[r], m4);
                hm[r] = _mm512_srli_epi16::<4>(hm[r]);
                let u01 = _mm512_or_si512(_mm512_and_si512(q, m3), h01);
                let u23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(q), m3), h23);
                let p01 = _mm512_sub_epi16(_mm512_maddubs_epi16(u01, a01), o01);
                let p23 = _mm512_sub_epi16(_mm512_maddubs_epi16(u23, a23), o23);
                add_scaled(&mut sumi[r], p01, sc[r], 2 * h);
                add_scaled(&mut sumi[r], p23, sc[r], 2 * h + 1);
            }
        }
        for r in 0..R {
            let d = f16x4(u64::from(u16_at::<108, 110>(x[r])));
            fold(&mut acc[r], _mm_cvtss_f32(d) * dy, fold256(sumi[r]));
        }
    }
    acc.map(|v| hsum_ps(v))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q2_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 84, a, 292);
    let m3 = _mm512_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); R];
    for i in 0..nb {
        prefetch_next::<R, 84, _MM_HINT_T1>(&w, i, nb);
        let y = block::<292>(a, i);
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<64>();
        let bsums = ld256(sub::<260, 32, 292>(y));
        let x: [&[u8; 84]; R] = core::array::from_fn(|r| block::<84>(w[r], i));
        let raw: [__m128i; R] = core::array::from_fn(|r| ld128(sub::<0, 16, 84>(x[r])));
        let sc = raw.map(|s| scale_pairs_i8(_mm_and_si128(s, m4)));
        let mut sumi = [_mm512_setzero_si512(); R];
        for h in 0..2 {
            let (a01, a23) = (ld512(&aq[2 * h]), ld512(&aq[2 * h + 1]));
            for r in 0..R {
                let (qs, _) = sub::<16, 64, 84>(x[r]).as_chunks::<32>();
                let q = bcast256(&qs[h]);
                let q = _mm512_mask_srli_epi16(q, HIGH_HALF_W, q, 2);
                let u01 = _mm512_and_si512(q, m3);
                let u23 = _mm512_and_si512(_mm512_srli_epi16::<4>(q), m3);
                add_scaled(&mut sumi[r], _mm512_maddubs_epi16(u01, a01), sc[r], 2 * h);
                add_scaled(&mut sumi[r], _mm512_maddubs_epi16(u23, a23), sc[r], 2 * h + 1);
            }
        }
        for r in 0..R {
            let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(raw[r]), m4));
            let msum = _mm256_madd_epi16(mins, bsums);
            let dd = _mm_mul_ps(f16x4(u64::from(u32_at::<80, 84>(x[r]))), _mm_set1_ps(dy));
            let (d, dmin) = (
                _mm256_broadcastss_ps(dd),
                _mm256_broadcastss_ps(_mm_movehdup_ps(dd)),
            );
            acc[r] = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(msum), acc[r]);
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(fold256(sumi[r])), acc[r]);
        }
    }
    acc.map(|v| hsum_ps(v))
}
