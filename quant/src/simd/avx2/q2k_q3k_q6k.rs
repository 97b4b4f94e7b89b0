//! Q2_K, Q3_K and Q6_K · Q8_K, AVX2: sixteen sub-blocks of 16 elements with
//! their own scales.
//!
//! In llama.cpp's x86 float order (bit-identical to the scalar tier, see
//! `crate::scalar::kquant`). Codes are unpacked to unsigned bytes 32 at a
//! time (Q2_K: 0..=3, Q3_K: 0..=7 = q + 4, Q6_K: 0..=63 = q + 32).
//! `maddubs(code, a)` gives i16 pairs; for Q3_K `maddubs(4, a)` is
//! subtracted in i16 (exact: |(code − 4)·a| pairs stay within ±4·127·2), so
//! its lanes are true partial sums. The low 128-bit half of such a vector
//! covers one sub-block of 16 and the high half the next, so `madd` with the
//! two scales (one per half, as i16) gives i32 lanes; all exact within a
//! super-block, lane k holding the elements `(e mod 32) / 4 = k`. Q6_K
//! removes its offset 32 per lane as llama.cpp does, through the activation
//! block sums ([`q6k_offset`]). Per super-block and row: Q2_K first
//! `acc = fma(−dmin·dy, Σ m·bsums lanes, acc)`, then for every format
//! `acc = fma(d·dy, lanes, acc)`; `hsum_float_8` order at the end.

use core::arch::x86_64::*;

use super::util::prefetch_next;

use super::util::{f16, f16x4, hsum_ps, ld128, ld256, q3k_scales};
use crate::simd::{block, common_blocks, sub, u16_at, u32_at};

/// Shuffle controls: low lane ← i16 word 2q, high lane ← word 2q + 1.
static HALF_BCAST: [[u8; 32]; 4] = {
    let mut t = [[0u8; 32]; 4];
    let mut q = 0;
    while q < 4 {
        let mut b = 0;
        while b < 32 {
            t[q][b] = (4 * q + 2 * (b / 16) + b % 2) as u8;
            b += 1;
        }
        q += 1;
    }
    t
};

/// 16 i8 scales to two vectors of 8 i16, each in both 128-bit lanes:
/// `[scales 0..8, scales 8..16]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn scale_halves(sc: __m128i) -> [__m256i; 2] {
    [
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(sc)),
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128::<8>(sc))),
    ]
}

/// Q6_K's code offset per lane, as llama.cpp's x86 kernel subtracts it:
/// `32·(bsums[2k]·sc[2k] + bsums[2k+1]·sc[2k+1])` in i32 lane k (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6k_offset(scales: __m128i, bsums: __m256i) -> __m256i {
    _mm256_slli_epi32::<5>(_mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(scales)))
}

/// i16 pairs of 32 elements (sub-blocks 8h + 2q and 8h + 2q + 1) times
/// their scales, in i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scaled(p16: __m256i, half: __m256i, q: usize) -> __m256i {
    _mm256_madd_epi16(p16, half_scale_of(half, q))
}

/// The scale words [`scaled`] multiplies by: sub-block 2q's scale of
/// `half` (one of [`scale_halves`]) in the low 128-bit lane, 2q + 1's in
/// the high one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn half_scale_of(half: __m256i, q: usize) -> __m256i {
    _mm256_shuffle_epi8(half, ld256(&HALF_BCAST[q]))
}

/// Q6_K's four code vectors of 32 elements for half `h` of a block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6k_codes(x: &[u8; 210], h: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0F);
    let (ql, _) = sub::<0, 128, 210>(x).as_chunks::<32>();
    let (qh, _) = sub::<128, 64, 210>(x).as_chunks::<32>();
    let (l0, l1, hb) = (ld256(&ql[2 * h]), ld256(&ql[2 * h + 1]), ld256(&qh[h]));
    [
        _mm256_or_si256(
            _mm256_and_si256(l0, m4),
            _mm256_slli_epi16::<4>(_mm256_and_si256(hb, _mm256_set1_epi8(0x03))),
        ),
        _mm256_or_si256(
            _mm256_and_si256(l1, m4),
            _mm256_slli_epi16::<2>(_mm256_and_si256(hb, _mm256_set1_epi8(0x0C))),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
            _mm256_and_si256(hb, _mm256_set1_epi8(0x30)),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
            _mm256_srli_epi16::<2>(_mm256_and_si256(hb, _mm256_set1_epi8(-64))),
        ),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 210, a, 292);
    let mut acc = [_mm256_setzero_ps(); R];
    for i in 0..nb {
        prefetch_next::<R, 210, _MM_HINT_T1>(&w, i, nb);
        let y = block::<292>(a, i);
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<32>();
        let bsums = ld256(sub::<260, 32, 292>(y));
        let x: [&[u8; 210]; R] = core::array::from_fn(|r| block::<210>(w[r], i));
        let raw: [__m128i; R] = core::array::from_fn(|r| ld128(sub::<192, 16, 210>(x[r])));
        let scales = raw.map(|s| scale_halves(s));
        let mut sumi = [_mm256_setzero_si256(); R];
        for h in 0..2 {
            let av: [__m256i; 4] = core::array::from_fn(|q| ld256(&aq[4 * h + q]));
            for r in 0..R {
                let u = q6k_codes(x[r], h);
                for (q, (&u, &a)) in u.iter().zip(&av).enumerate() {
                    let p = _mm256_maddubs_epi16(u, a);
                    sumi[r] = _mm256_add_epi32(sumi[r], scaled(p, scales[r][h], q));
                }
            }
        }
        for r in 0..R {
            let sumi = _mm256_sub_epi32(sumi[r], q6k_offset(raw[r], bsums));
            let d = _mm256_set1_ps(f16(u16_at::<208, 210>(x[r])) * dy);
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[r]);
        }
    }
    acc.map(|v| hsum_ps(v))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q3_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 110, a, 292);
    let (m3, m4) = (_mm256_set1_epi8(3), _mm256_set1_epi8(4));
    let mut acc = [_mm256_setzero_ps(); R];
    for i in 0..nb {
        prefetch_next::<R, 110, _MM_HINT_T1>(&w, i, nb);
        let y = block::<292>(a, i);
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<32>();
        let x: [&[u8; 110]; R] = core::array::from_fn(|r| block::<110>(w[r], i));
        let scales: [[__m256i; 2]; R] =
            core::array::from_fn(|r| scale_halves(q3k_scales(sub::<94, 16, 110>(x[r]))));
        // hmask byte l, bit g: high bit of element 32g + l; shifted right by
        // one per group so that bit 0 is the current group's.
        let mut hm: [__m256i; R] = core::array::from_fn(|r| ld256(sub::<0, 32, 110>(x[r])));
        let mut sumi = [_mm256_setzero_si256(); R];
        for h in 0..2 {
            let av: [__m256i; 4] = core::array::from_fn(|q| ld256(&aq[4 * h + q]));
            let off = av.map(|a| _mm256_maddubs_epi16(m4, a));
            for r in 0..R {
                let (qs, _) = sub::<32, 64, 110>(x[r]).as_chunks::<32>();
                let mut lo = ld256(&qs[h]);
                for q in 0..4 {
                    let hi = _mm256_and_si256(_mm256_slli_epi16::<2>(hm[r]), m4);
                    let u = _mm256_or_si256(_mm256_and_si256(lo, m3), hi);
                    lo = _mm256_srli_epi16::<2>(lo);
                    hm[r] = _mm256_srli_epi16::<1>(hm[r]);
                    let p = _mm256_sub_epi16(_mm256_maddubs_epi16(u, av[q]), off[q]);
                    sumi[r] = _mm256_add_epi32(sumi[r], scaled(p, scales[r][h], q));
                }
            }
        }
        for r in 0..R {
            let d = _mm256_set1_ps(f16(u16_at::<108, 110>(x[r])) * dy);
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        }
    }
    acc.map(|v| hsum_ps(v))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q2_k<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 84, a, 292);
    let (m3, m4) = (_mm256_set1_epi8(3), _mm_set1_epi8(0x0F));
    let mut acc = [_mm256_setzero_ps(); R];
    for i in 0..nb {
        prefetch_next::<R, 84, _MM_HINT_T1>(&w, i, nb);
        let y = block::<292>(a, i);
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<32>();
        let bsums = ld256(sub::<260, 32, 292>(y));
        let x: [&[u8; 84]; R] = core::array::from_fn(|r| block::<84>(w[r], i));
        let raw: [__m128i; R] = core::array::from_fn(|r| ld128(sub::<0, 16, 84>(x[r])));
        let scales = raw.map(|s| scale_halves(_mm_and_si128(s, m4)));
        let mut sumi = [_mm256_setzero_si256(); R];
        for h in 0..2 {
            let av: [__m256i; 4] = core::array::from_fn(|q| ld256(&aq[4 * h + q]));
            for r in 0..R {
                let (qs, _) = sub::<16, 64, 84>(x[r]).as_chunks::<32>();
                let mut bits = ld256(&qs[h]);
                for (q, &a) in av.iter().enumerate() {
                    let u = _mm256_and_si256(bits, m3);
                    bits = _mm256_srli_epi16::<2>(bits);
                    let p = _mm256_maddubs_epi16(u, a);
                    sumi[r] = _mm256_add_epi32(sumi[r], scaled(p, scales[r][h], q));
                }
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
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        }
    }
    acc.map(|v| hsum_ps(v))
}
