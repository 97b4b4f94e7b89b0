//! The 32-element formats, AVX2: Q4_0, Q5_0, Q8_0 · Q8_0 and Q4_1, Q5_1 · Q8_1.
//!
//! Per block and row the 32 codes become bytes, `maddubs` multiplies them
//! (unsigned) with the activation bytes into i16 pairs and `madd` against
//! ones widens the pairs to eight i32 lanes: all exact. One `fmadd` per block
//! applies the block's scale `d_w·d_a`; the Q4_1/Q5_1 min term `m_w·s_a` is
//! added to lane 0.
//!
//! Offset codes (Q4_0: u − 8, Q5_0: u − 16) subtract `maddubs(offset, a)`
//! from `maddubs(u, a)` in i16, exact since every pair of (u − o)·a fits in
//! ±16·128·2; that activation term is computed once per block for all rows.
//! Q8_0 uses the sign trick (|x| times a with x's sign), exact for
//! activations in -127..=127.

use core::arch::x86_64::*;

use super::util::{f16, f16x4, ld128, ld256, pairs, two_chains};
use crate::simd::{block, common_blocks, sub, u16_at, u32_at};

/// 16 packed nibble bytes to 32 code bytes: low nibbles are elements 0..16,
/// high nibbles 16..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles(qs: __m128i) -> __m256i {
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(qs), qs);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// The fifth bits of Q5_0/Q5_1 (bit j of `qh` is element j's bit 4) as
/// bytes of 0x10 or 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fifth_bits(qh: u32) -> __m256i {
    // Byte k of the vector gets byte k/8 of qh, then keeps only bit k%8.
    let spread = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let b = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), spread);
    let b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_and_si256(
        _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1)),
        _mm256_set1_epi8(0x10),
    )
}

/// `acc += d·cvt(p) + (min in lane 0)`, where `dm` holds d in lane 0 and the
/// min term in lane 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn add_with_min(acc: __m256, dm: __m128, p: __m256i) -> __m256 {
    // Lane 1 of dm to lane 0, lanes 1..4 zeroed.
    let min = _mm256_zextps128_ps256(_mm_insert_ps::<0b0100_1110>(dm, dm));
    _mm256_fmadd_ps(
        _mm256_broadcastss_ps(dm),
        _mm256_cvtepi32_ps(p),
        _mm256_add_ps(acc, min),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 18, a, 34);
    two_chains(nb, |i, acc| {
        let y = block::<34>(a, i);
        let ya = ld256(sub::<2, 32, 34>(y));
        let off = _mm256_maddubs_epi16(_mm256_set1_epi8(8), ya);
        let da = f16(u16_at::<0, 34>(y));
        for (acc, w) in acc.iter_mut().zip(&w) {
            let x = block::<18>(w, i);
            let u = nibbles(ld128(sub::<2, 16, 18>(x)));
            let p = pairs(_mm256_sub_epi16(_mm256_maddubs_epi16(u, ya), off));
            let d = _mm256_set1_ps(f16(u16_at::<0, 18>(x)) * da);
            *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), *acc);
        }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 22, a, 34);
    two_chains(nb, |i, acc| {
        let y = block::<34>(a, i);
        let ya = ld256(sub::<2, 32, 34>(y));
        let off = _mm256_maddubs_epi16(_mm256_set1_epi8(16), ya);
        let da = f16(u16_at::<0, 34>(y));
        for (acc, w) in acc.iter_mut().zip(&w) {
            let x = block::<22>(w, i);
            let u = _mm256_or_si256(
                nibbles(ld128(sub::<6, 16, 22>(x))),
                fifth_bits(u32_at::<2, 22>(x)),
            );
            let p = pairs(_mm256_sub_epi16(_mm256_maddubs_epi16(u, ya), off));
            let d = _mm256_set1_ps(f16(u16_at::<0, 22>(x)) * da);
            *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), *acc);
        }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q8_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 34, a, 34);
    two_chains(nb, |i, acc| {
        let y = block::<34>(a, i);
        let ya = ld256(sub::<2, 32, 34>(y));
        let da = f16(u16_at::<0, 34>(y));
        for (acc, w) in acc.iter_mut().zip(&w) {
            let x = block::<34>(w, i);
            let q = ld256(sub::<2, 32, 34>(x));
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(ya, q));
            let d = _mm256_set1_ps(f16(u16_at::<0, 34>(x)) * da);
            *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(pairs(p)), *acc);
        }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 20, a, 36);
    two_chains(nb, |i, acc| {
        let y = block::<36>(a, i);
        let ya = ld256(sub::<4, 32, 36>(y));
        let ds = f16x4(u64::from(u32_at::<0, 36>(y)));
        for (acc, w) in acc.iter_mut().zip(&w) {
            let x = block::<20>(w, i);
            let u = nibbles(ld128(sub::<4, 16, 20>(x)));
            let p = pairs(_mm256_maddubs_epi16(u, ya));
            let dm = _mm_mul_ps(f16x4(u64::from(u32_at::<0, 20>(x))), ds);
            *acc = add_with_min(*acc, dm, p);
        }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 24, a, 36);
    two_chains(nb, |i, acc| {
        let y = block::<36>(a, i);
        let ya = ld256(sub::<4, 32, 36>(y));
        let ds = f16x4(u64::from(u32_at::<0, 36>(y)));
        for (acc, w) in acc.iter_mut().zip(&w) {
            let x = block::<24>(w, i);
            let u = _mm256_or_si256(
                nibbles(ld128(sub::<8, 16, 24>(x))),
                fifth_bits(u32_at::<4, 24>(x)),
            );
            let p = pairs(_mm256_maddubs_epi16(u, ya));
            let dm = _mm_mul_ps(f16x4(u64::from(u32_at::<0, 24>(x))), ds);
            *acc = add_with_min(*acc, dm, p);
        }
    })
}
