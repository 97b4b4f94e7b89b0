//! The 32-element formats, AVX-512 + VNNI: two blocks per 512-bit vector.
//!
//! Per pair of blocks and row: the 64 codes become unsigned bytes (Q4_0:
//! u = q + 8, Q5_0: u = q + 16, Q8_0: u = q + 128, Q4_1/Q5_1: u = q) and
//! `vpdpbusd` sums four u·a products per i32 lane, exactly. The offset is
//! removed through the accumulator input: it starts at −offset·Σa over the
//! same four activations (one `vpdpbusd` of the activations per pair, shared
//! by all rows), so every lane is a true partial sum Σ q·a. Lanes 0..8 belong
//! to the first block and 8..16 to the second; one FMA per pair applies the
//! two blocks' scales. Q4_1/Q5_1 add the min terms `m·s` in a small side
//! accumulator. An odd last block is paired with a zero block.

use core::arch::x86_64::*;

use super::util::{f16x4, join256, ld128};
use crate::simd::{block, common_blocks, sub, u16_at, u32_at};

/// Lane index vector: f32 lane 0 to lanes 0..8, lane `HI` to lanes 8..16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn spread<const HI: i32>(v: __m128) -> __m512 {
    let idx = _mm512_set_epi32(HI, HI, HI, HI, HI, HI, HI, HI, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v))
}

/// Nibbles of two blocks (16 bytes each) as 64 code bytes ordered like the
/// two activation blocks: [low_0, high_0, low_1, high_1].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn nibbles2(q0: &[u8; 16], q1: &[u8; 16]) -> __m512i {
    let z0 = _mm512_broadcast_i32x4(ld128(q0));
    let z1 = _mm512_broadcast_i32x4(ld128(q1));
    let z = _mm512_mask_blend_epi64(0xF0, z0, z1);
    let z = _mm512_mask_srli_epi16(z, super::util::ODD_LANES_W, z, 4);
    _mm512_and_si512(z, _mm512_set1_epi8(0x0F))
}

/// Two blocks' fifth bits (bit j of each `qh` = element j) added as 16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn add_fifth_bits(u: __m512i, qh0: u32, qh1: u32) -> __m512i {
    let k = _cvtu64_mask64(u64::from(qh0) | (u64::from(qh1) << 32));
    _mm512_mask_add_epi8(u, k, u, _mm512_set1_epi8(16))
}

/// The activation pair: 64 quants, −offset·Σa per lane, and the f16 field
/// pair(s) at `F` (d, or d and s) of both blocks converted to f32.
struct Acts {
    q: __m512i,
    neg_off: __m512i,
    scales: __m128,
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn acts_q8_0(y: &[u8; 68], offset: i8) -> Acts {
    let q = join256(sub::<2, 32, 68>(y), sub::<36, 32, 68>(y));
    let off = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(offset), q);
    let d = u32::from(u16_at::<0, 68>(y)) | (u32::from(u16_at::<34, 68>(y)) << 16);
    Acts {
        q,
        neg_off: _mm512_sub_epi32(_mm512_setzero_si512(), off),
        scales: f16x4(u64::from(d)),
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn acts_q8_1(y: &[u8; 72]) -> Acts {
    let q = join256(sub::<4, 32, 72>(y), sub::<40, 32, 72>(y));
    let ds = u64::from(u32_at::<0, 72>(y)) | (u64::from(u32_at::<36, 72>(y)) << 32);
    Acts {
        q,
        neg_off: _mm512_setzero_si512(),
        scales: f16x4(ds),
    }
}

/// `acc += [d0·8, d1·8]·cvt(sumi)`, `d` holding d0, d1 in lanes 0, 1.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn fold0(acc: &mut __m512, d: __m128, sumi: __m512i) {
    *acc = _mm512_fmadd_ps(spread::<1>(d), _mm512_cvtepi32_ps(sumi), *acc);
}

/// Type-1: `dm` = (d0, m0·s0, d1, m1·s1); the min terms go to `acc_m`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn fold1(acc: &mut __m512, acc_m: &mut __m128, dm: __m128, sumi: __m512i) {
    *acc = _mm512_fmadd_ps(spread::<2>(dm), _mm512_cvtepi32_ps(sumi), *acc);
    *acc_m = _mm_add_ps(*acc_m, dm);
}

/// Runs `step(pair_w, pair_a)` over block pairs, then over the last block
/// padded with a zero block if the count is odd. `W2`/`A2` are pair sizes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pairs<const R: usize, const W2: usize, const A2: usize>(
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

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q4_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 18, a, 34);
    let mut acc = [_mm512_setzero_ps(); R];
    pairs::<R, 36, 68>(&w, a, nb, |x, y| {
        let ya = acts_q8_0(y, 8);
        for r in 0..R {
            let u = nibbles2(sub::<2, 16, 36>(x[r]), sub::<20, 16, 36>(x[r]));
            let sumi = _mm512_dpbusd_epi32(ya.neg_off, u, ya.q);
            let dw = u32::from(u16_at::<0, 36>(x[r])) | (u32::from(u16_at::<18, 36>(x[r])) << 16);
            fold0(
                &mut acc[r],
                _mm_mul_ps(f16x4(u64::from(dw)), ya.scales),
                sumi,
            );
        }
    });
    acc.map(|v| _mm512_reduce_add_ps(v))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q5_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 22, a, 34);
    let mut acc = [_mm512_setzero_ps(); R];
    pairs::<R, 44, 68>(&w, a, nb, |x, y| {
        let ya = acts_q8_0(y, 16);
        for r in 0..R {
            let u = nibbles2(sub::<6, 16, 44>(x[r]), sub::<28, 16, 44>(x[r]));
            let u = add_fifth_bits(u, u32_at::<2, 44>(x[r]), u32_at::<24, 44>(x[r]));
            let sumi = _mm512_dpbusd_epi32(ya.neg_off, u, ya.q);
            let dw = u32::from(u16_at::<0, 44>(x[r])) | (u32::from(u16_at::<22, 44>(x[r])) << 16);
            fold0(
                &mut acc[r],
                _mm_mul_ps(f16x4(u64::from(dw)), ya.scales),
                sumi,
            );
        }
    });
    acc.map(|v| _mm512_reduce_add_ps(v))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q8_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 34, a, 34);
    let mut acc = [_mm512_setzero_ps(); R];
    let flip = _mm512_set1_epi8(-128);
    pairs::<R, 68, 68>(&w, a, nb, |x, y| {
        let ya = acts_q8_0(y, -128);
        for r in 0..R {
            let q = join256(sub::<2, 32, 68>(x[r]), sub::<36, 32, 68>(x[r]));
            let sumi = _mm512_dpbusd_epi32(ya.neg_off, _mm512_xor_si512(q, flip), ya.q);
            let dw = u32::from(u16_at::<0, 68>(x[r])) | (u32::from(u16_at::<34, 68>(x[r])) << 16);
            fold0(
                &mut acc[r],
                _mm_mul_ps(f16x4(u64::from(dw)), ya.scales),
                sumi,
            );
        }
    });
    acc.map(|v| _mm512_reduce_add_ps(v))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q4_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 20, a, 36);
    let mut acc = [_mm512_setzero_ps(); R];
    let mut acc_m = [_mm_setzero_ps(); R];
    pairs::<R, 40, 72>(&w, a, nb, |x, y| {
        let ya = acts_q8_1(y);
        for r in 0..R {
            let u = nibbles2(sub::<4, 16, 40>(x[r]), sub::<24, 16, 40>(x[r]));
            let sumi = _mm512_dpbusd_epi32(ya.neg_off, u, ya.q);
            let dm = u64::from(u32_at::<0, 40>(x[r])) | (u64::from(u32_at::<20, 40>(x[r])) << 32);
            fold1(
                &mut acc[r],
                &mut acc_m[r],
                _mm_mul_ps(f16x4(dm), ya.scales),
                sumi,
            );
        }
    });
    core::array::from_fn(|r| finish1(acc[r], acc_m[r]))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q5_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 24, a, 36);
    let mut acc = [_mm512_setzero_ps(); R];
    let mut acc_m = [_mm_setzero_ps(); R];
    pairs::<R, 48, 72>(&w, a, nb, |x, y| {
        let ya = acts_q8_1(y);
        for r in 0..R {
            let u = nibbles2(sub::<8, 16, 48>(x[r]), sub::<32, 16, 48>(x[r]));
            let u = add_fifth_bits(u, u32_at::<4, 48>(x[r]), u32_at::<28, 48>(x[r]));
            let sumi = _mm512_dpbusd_epi32(ya.neg_off, u, ya.q);
            let dm = u64::from(u32_at::<0, 48>(x[r])) | (u64::from(u32_at::<24, 48>(x[r])) << 32);
            fold1(
                &mut acc[r],
                &mut acc_m[r],
                _mm_mul_ps(f16x4(dm), ya.scales),
                sumi,
            );
        }
    });
    core::array::from_fn(|r| finish1(acc[r], acc_m[r]))
}

/// Sum of the main lanes plus the min terms (lanes 1 and 3 of `acc_m`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn finish1(acc: __m512, acc_m: __m128) -> f32 {
    let m1 = _mm_cvtss_f32(_mm_movehdup_ps(acc_m));
    let m3 = _mm_cvtss_f32(_mm_shuffle_ps::<0b11_11_11_11>(acc_m, acc_m));
    _mm512_reduce_add_ps(acc) + (m1 + m3)
}
