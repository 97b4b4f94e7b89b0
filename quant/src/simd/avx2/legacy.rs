//! The 32-element formats, AVX2: Q4_0, Q5_0, Q8_0 · Q8_0 and Q4_1, Q5_1 · Q8_1.
//!
//! The nibble formats go two blocks (i, j) at a time: the 16 packed bytes of
//! each become one vector `[qs_i | qs_j]`, whose low nibbles are elements
//! 0..16 and high nibbles 16..32 of each block. The activations are
//! rearranged to match once per pair for all rows (`[a_i 0..16 | a_j 0..16]`
//! and `[a_i 16..32 | a_j 16..32]`). `maddubs` multiplies the unsigned codes
//! with the activation bytes into i16 pairs; the low and high products are
//! added in i16 (at most 31·127·4 = 15748) and `madd` against ones widens to
//! i32 lanes 0..4 (block i) and 4..8 (block j): all exact. Offset codes
//! (Q4_0: q = u − 8, Q5_0: q = u − 16) subtract `maddubs(offset, a)` from the
//! same lanes (computed once per pair), so every lane is a true partial sum
//! Σ q·a. One FMA per pair applies `[d_i ×4 | d_j ×4]`; the Q4_1/Q5_1 min
//! terms `m·s` go to a small side accumulator. An odd last block is paired
//! with a zero block. Q8_0 goes block by block with the sign trick (|x| times
//! a with x's sign), exact for activations in -127..=127.

use core::arch::x86_64::*;

use super::util::{f16, f16x4, hsum_ps, ld128, ld256, pairs, two_chains};
use crate::simd::{block, common_blocks, sub, u16_at, u32_at};

/// Two blocks' packed nibbles `[qs_i | qs_j]` as (low nibbles, high nibbles).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles2(qi: &[u8; 16], qj: &[u8; 16]) -> (__m256i, __m256i) {
    let q = _mm256_set_m128i(ld128(qj), ld128(qi));
    let m = _mm256_set1_epi8(0x0F);
    (
        _mm256_and_si256(q, m),
        _mm256_and_si256(_mm256_srli_epi16::<4>(q), m),
    )
}

/// 32 bits to 32 bytes of 0x10 (bit set) or 0, byte k from bit k.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bits_to_0x10(bits: u32) -> __m256i {
    // Byte k of the vector gets byte k/8 of `bits`, then keeps only bit k%8.
    let spread = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let b = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), spread);
    let b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_and_si256(
        _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1)),
        _mm256_set1_epi8(0x10),
    )
}

/// The fifth bits of blocks i and j (bit e of `qh` = element e) for the
/// (low, high) nibble vectors of [`nibbles2`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fifth_bits2(qh_i: u32, qh_j: u32) -> (__m256i, __m256i) {
    let lo = (qh_i & 0xFFFF) | (qh_j << 16);
    let hi = (qh_i >> 16) | (qh_j & 0xFFFF_0000);
    (bits_to_0x10(lo), bits_to_0x10(hi))
}

/// A pair of activation blocks, rearranged for [`nibbles2`].
struct Acts {
    lo: __m256i,
    hi: __m256i,
    /// `maddubs(offset, lo) + maddubs(offset, hi)` (zero without offset).
    off: __m256i,
    /// The f16 fields of both blocks as f32: (d_i, d_j) or (d_i, s_i, d_j, s_j).
    scales: __m128,
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn acts(ai: &[u8; 32], aj: &[u8; 32], offset: i8, scales: __m128) -> Acts {
    let (ai, aj) = (ld256(ai), ld256(aj));
    let lo = _mm256_permute2x128_si256::<0x20>(ai, aj);
    let hi = _mm256_permute2x128_si256::<0x31>(ai, aj);
    let o = _mm256_set1_epi8(offset);
    let off = _mm256_add_epi16(_mm256_maddubs_epi16(o, lo), _mm256_maddubs_epi16(o, hi));
    Acts {
        lo,
        hi,
        off,
        scales,
    }
}

/// Exact i32 lanes Σ (u − offset)·a: lanes 0..4 block i, 4..8 block j.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sum_pair(ya: &Acts, lo: __m256i, hi: __m256i) -> __m256i {
    let p = _mm256_add_epi16(
        _mm256_maddubs_epi16(lo, ya.lo),
        _mm256_maddubs_epi16(hi, ya.hi),
    );
    pairs(_mm256_sub_epi16(p, ya.off))
}

/// `acc += [s[0] ×4 | s[HI] ×4]·cvt(sumi)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fold<const HI: i32>(acc: &mut __m256, s: __m128, sumi: __m256i) {
    let idx = _mm256_set_epi32(HI, HI, HI, HI, 0, 0, 0, 0);
    let d = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s), idx);
    *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), *acc);
}

/// Runs `step(pair_w, pair_a)` over block pairs, then over the last block
/// padded with a zero block if the count is odd. `W2`/`A2` are pair sizes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn block_pairs<const R: usize, const W2: usize, const A2: usize>(
    w: &[&[u8]; R],
    a: &[u8],
    nb: usize,
    mut step: impl FnMut([&[u8; W2]; R], &[u8; A2]),
) {
    for p in 0..nb / 2 {
        step(
            core::array::from_fn(|r| block::<W2>(w[r], p)),
            block::<A2>(a, p),
        );
    }
    if nb % 2 == 1 {
        let (wb, ab) = (W2 / 2, A2 / 2);
        let mut ya = [0u8; A2];
        ya[..ab].copy_from_slice(&a[(nb - 1) * ab..nb * ab]);
        let mut xw = [[0u8; W2]; R];
        for (x, w) in xw.iter_mut().zip(w) {
            x[..wb].copy_from_slice(&w[(nb - 1) * wb..nb * wb]);
        }
        step(core::array::from_fn(|r| &xw[r]), &ya);
    }
}

/// Two f16 fields (at byte offsets `I` and `J`) as f32 lanes 0 and 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_pair<const I: usize, const J: usize, const N: usize>(b: &[u8; N]) -> __m128 {
    f16x4(u64::from(u16_at::<I, N>(b)) | (u64::from(u16_at::<J, N>(b)) << 16))
}

/// Two 4-byte f16 pairs (at `I` and `J`) as f32 lanes 0..4.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_quad<const I: usize, const J: usize, const N: usize>(b: &[u8; N]) -> __m128 {
    f16x4(u64::from(u32_at::<I, N>(b)) | (u64::from(u32_at::<J, N>(b)) << 32))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 18, a, 34);
    let mut acc = [_mm256_setzero_ps(); R];
    block_pairs::<R, 36, 68>(&w, a, nb, |x, y| {
        let ya = acts(
            sub::<2, 32, 68>(y),
            sub::<36, 32, 68>(y),
            8,
            f16_pair::<0, 34, 68>(y),
        );
        for (acc, x) in acc.iter_mut().zip(x) {
            let (lo, hi) = nibbles2(sub::<2, 16, 36>(x), sub::<20, 16, 36>(x));
            let d = _mm_mul_ps(f16_pair::<0, 18, 36>(x), ya.scales);
            fold::<1>(acc, d, sum_pair(&ya, lo, hi));
        }
    });
    acc.map(|v| hsum_ps(v))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 22, a, 34);
    let mut acc = [_mm256_setzero_ps(); R];
    block_pairs::<R, 44, 68>(&w, a, nb, |x, y| {
        let ya = acts(
            sub::<2, 32, 68>(y),
            sub::<36, 32, 68>(y),
            16,
            f16_pair::<0, 34, 68>(y),
        );
        for (acc, x) in acc.iter_mut().zip(x) {
            let (lo, hi) = nibbles2(sub::<6, 16, 44>(x), sub::<28, 16, 44>(x));
            let (h_lo, h_hi) = fifth_bits2(u32_at::<2, 44>(x), u32_at::<24, 44>(x));
            let (lo, hi) = (_mm256_or_si256(lo, h_lo), _mm256_or_si256(hi, h_hi));
            let d = _mm_mul_ps(f16_pair::<0, 22, 44>(x), ya.scales);
            fold::<1>(acc, d, sum_pair(&ya, lo, hi));
        }
    });
    acc.map(|v| hsum_ps(v))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 20, a, 36);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut acc_m = [_mm_setzero_ps(); R];
    block_pairs::<R, 40, 72>(&w, a, nb, |x, y| {
        let ya = acts(
            sub::<4, 32, 72>(y),
            sub::<40, 32, 72>(y),
            0,
            f16_quad::<0, 36, 72>(y),
        );
        for ((acc, acc_m), x) in acc.iter_mut().zip(&mut acc_m).zip(x) {
            let (lo, hi) = nibbles2(sub::<4, 16, 40>(x), sub::<24, 16, 40>(x));
            let dm = _mm_mul_ps(f16_quad::<0, 20, 40>(x), ya.scales);
            fold::<2>(acc, dm, sum_pair(&ya, lo, hi));
            *acc_m = _mm_add_ps(*acc_m, dm);
        }
    });
    core::array::from_fn(|r| finish_mins(acc[r], acc_m[r]))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 24, a, 36);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut acc_m = [_mm_setzero_ps(); R];
    block_pairs::<R, 48, 72>(&w, a, nb, |x, y| {
        let ya = acts(
            sub::<4, 32, 72>(y),
            sub::<40, 32, 72>(y),
            0,
            f16_quad::<0, 36, 72>(y),
        );
        for ((acc, acc_m), x) in acc.iter_mut().zip(&mut acc_m).zip(x) {
            let (lo, hi) = nibbles2(sub::<8, 16, 48>(x), sub::<32, 16, 48>(x));
            let (h_lo, h_hi) = fifth_bits2(u32_at::<4, 48>(x), u32_at::<28, 48>(x));
            let (lo, hi) = (_mm256_or_si256(lo, h_lo), _mm256_or_si256(hi, h_hi));
            let dm = _mm_mul_ps(f16_quad::<0, 24, 48>(x), ya.scales);
            fold::<2>(acc, dm, sum_pair(&ya, lo, hi));
            *acc_m = _mm_add_ps(*acc_m, dm);
        }
    });
    core::array::from_fn(|r| finish_mins(acc[r], acc_m[r]))
}

/// The main lanes plus the min terms (lanes 1 and 3 of `acc_m`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn finish_mins(acc: __m256, acc_m: __m128) -> f32 {
    let m = _mm_shuffle_ps::<0b11_01_11_01>(acc_m, acc_m);
    hsum_ps(acc) + _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)))
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
