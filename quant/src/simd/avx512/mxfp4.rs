//! MXFP4 · Q8_0, AVX-512 + VNNI, in llama.cpp's x86 float order
//! (bit-identical to the scalar tier, see `crate::scalar::mxfp4`): block
//! 2p's lanes into one accumulator and block 2p+1's into a second, `hsum`
//! of their sum, an odd last block added as one integer sum with a scalar
//! FMA. (llama.cpp's AVX-512 build runs its AVX2 MXFP4 kernel, with this
//! order; ggml has no AVX-512 path for it.)
//!
//! The 32-element machinery of `super::legacy`, with MXFP4's codes: two
//! rows per 512-bit vector, the nibbles mapped by `vpshufb` to the doubled
//! E2M1 values plus 12 (unsigned), `vpdpbusd` against the activations from
//! an accumulator input of −12·Σa, so each i32 lane is the exact Σ value·a
//! over its four elements. Row r's scale is the f32 product
//! `f16(d_a)·2^(e_r−128)`.

use core::arch::x86_64::*;

use super::legacy::{act, nibbles2, Accs, Act, Codes};
use super::util::ld128;
use crate::fp::e8m0_to_f32_half;
use crate::simd::avx2::mxfp4::{OFFSET, TABLE};
use crate::simd::avx2::util::{f16, hsum_i32, nibbles, prefetch_next};
use crate::simd::{blocks, common_blocks, row_blocks, sub, tile_blocks, u16_at, TILE};

/// MXFP4's codes for [`Accs`]: the values plus [`OFFSET`], one row in 256
/// bits, two rows in 512.
macro_rules! mxfp4_codes {
    () => {
        Codes {
            one: |x: &[u8; 17]| {
                _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(ld128(&TABLE)), nibbles(sub::<1, 16, 17>(x)))
            },
            two: |x0: &[u8; 17], x1: &[u8; 17]| {
                let u = nibbles2(sub::<1, 16, 17>(x0), sub::<1, 16, 17>(x1));
                _mm512_shuffle_epi8(_mm512_broadcast_i32x4(ld128(&TABLE)), u)
            },
        }
    };
}

/// Up to eight rows' scales 2^(e−128) in lanes 0..R.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn e8m0_rows<const R: usize>(x: &[&[u8; 17]; R]) -> __m256 {
    const { assert!(R <= 8) };
    let mut v = [0.0f32; 8];
    for (v, x) in v.iter_mut().zip(x) {
        *v = e8m0_to_f32_half(x[0]);
    }
    _mm256_setr_ps(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])
}

/// The exact integer sums Σ value·a of one block of each of R rows (an odd
/// last block, which ggml adds as one integer).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn block_sums<const R: usize>(
    x: &[&[u8; 17]; R],
    y: &Act,
    codes: &Codes<impl Fn(&[u8; 17]) -> __m256i, impl Fn(&[u8; 17], &[u8; 17]) -> __m512i>,
) -> [i32; R] {
    let mut out = [0i32; R];
    for p in 0..R / 2 {
        let s = _mm512_dpbusd_epi32(y.neg_off2, (codes.two)(x[2 * p], x[2 * p + 1]), y.q2);
        out[2 * p] = hsum_i32(_mm512_castsi512_si256(s));
        out[2 * p + 1] = hsum_i32(_mm512_extracti64x4_epi64::<1>(s));
    }
    if R % 2 == 1 {
        out[R - 1] = hsum_i32(_mm256_dpbusd_epi32(y.neg_off, (codes.one)(x[R - 1]), y.q));
    }
    out
}

/// `s + d·sumi` with one rounding, d = `f16(d_a)·2^(e−128)` in ggml's order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn add_tail(s: f32, da: f32, e: u8, sumi: i32) -> f32 {
    (da * e8m0_to_f32_half(e)).mul_add(sumi as f32, s)
}

/// R rows against one activation row.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn mxfp4<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 17, a, 34);
    let wr = row_blocks::<R, 17>(&w, nb);
    let ab = blocks::<34>(a, nb);
    let codes = mxfp4_codes!();
    let mut acc = [Accs::<R>::new(), Accs::<R>::new()];
    // Indexing below `nb` (every slice's length) needs no bounds checks.
    for p in 0..nb / 2 {
        for (k, acc) in acc.iter_mut().enumerate() {
            let i = 2 * p + k;
            prefetch_next::<R, 17, _MM_HINT_T0>(&w, i, nb);
            let y = &ab[i];
            let ya = act(sub::<2, 32, 34>(y), OFFSET, R >= 2);
            let x: [&[u8; 17]; R] = core::array::from_fn(|r| &wr[r][i]);
            let d = _mm256_mul_ps(_mm256_set1_ps(f16(u16_at::<0, 34>(y))), e8m0_rows(&x));
            acc.step::<17, 1>(&x, &ya, d, &codes);
        }
    }
    let sum = acc[0].add(&acc[1]);
    let mut out: [f32; R] = core::array::from_fn(|r| sum.hsum(r));
    if nb % 2 == 1 {
        let y = &ab[nb - 1];
        let x: [&[u8; 17]; R] = core::array::from_fn(|r| &wr[r][nb - 1]);
        let sums = block_sums(&x, &act(sub::<2, 32, 34>(y), OFFSET, R >= 2), &codes);
        let da = f16(u16_at::<0, 34>(y));
        for r in 0..R {
            out[r] = add_tail(out[r], da, x[r][0], sums[r]);
        }
    }
    out
}

/// Tile kernel (4 rows × 4 activations): each block's codes made once for
/// the four activations; per activation, the even and odd blocks'
/// accumulators of the two row pairs (16 vectors).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn tile(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> [[f32; TILE]; TILE] {
    let nb = tile_blocks(w, 17, a, 34);
    let wr = row_blocks::<TILE, 17>(w, nb);
    let ab = row_blocks::<TILE, 34>(a, nb);
    let codes = mxfp4_codes!();
    let mut acc: [[Accs<TILE>; 2]; TILE] = core::array::from_fn(|_| [Accs::new(), Accs::new()]);
    for p in 0..nb / 2 {
        for k in 0..2 {
            let i = 2 * p + k;
            prefetch_next::<TILE, 17, _MM_HINT_T0>(w, i, nb);
            let x: [&[u8; 17]; TILE] = core::array::from_fn(|r| &wr[r][i]);
            let u = [(codes.two)(x[0], x[1]), (codes.two)(x[2], x[3])];
            let ew = e8m0_rows(&x);
            for (c, acc) in acc.iter_mut().enumerate() {
                let y = &ab[c][i];
                let ya = act(sub::<2, 32, 34>(y), OFFSET, true);
                let d = _mm256_mul_ps(_mm256_set1_ps(f16(u16_at::<0, 34>(y))), ew);
                acc[k].step_codes::<1>(&u, &ya, d);
            }
        }
    }
    let x: Option<[&[u8; 17]; TILE]> = (nb % 2 == 1).then(|| core::array::from_fn(|r| &wr[r][nb - 1]));
    core::array::from_fn(|c| {
        let sum = acc[c][0].add(&acc[c][1]);
        let mut out: [f32; TILE] = core::array::from_fn(|r| sum.hsum(r));
        if let Some(x) = &x {
            let y = &ab[c][nb - 1];
            let sums = block_sums(x, &act(sub::<2, 32, 34>(y), OFFSET, true), &codes);
            let da = f16(u16_at::<0, 34>(y));
            for r in 0..TILE {
                out[r] = add_tail(out[r], da, x[r][0], sums[r]);
            }
        }
        out
    })
}
