//! MXFP4 · Q8_0, AVX-512 + VNNI, in llama.cpp's x86 float order
//! (bit-identical to the scalar tier, see `crate::scalar::mxfp4`): block
//! 2p's lanes into one accumulator and block 2p+1's into a second, `hsum`
//! of their sum, an odd last block added as one integer sum with a scalar
//! FMA. (llama.cpp's AVX-512 build runs its AVX2 MXFP4 kernel, with this
//! order; ggml has no AVX-512 path for it.)
//!
//! The 32-element layout of `super::legacy` (its activation offsets, code
//! vectors and lane spreading), with MXFP4's codes: two rows per 512-bit
//! vector, the nibbles mapped by `vpshufb` to the doubled E2M1 values plus
//! 12 (unsigned), `vpdpbusd` against the activations from an accumulator
//! input of −12·Σa, so each i32 lane is the exact Σ value·a over its four
//! elements. Row r's scale is the f32 product `f16(d_a)·2^(e_r−128)`.

use core::arch::x86_64::*;

use super::legacy::{act, nibbles2, spread2, Act, Codes};
use super::util::{hsum_half, ld128};
use crate::fp::e8m0_to_f32_half;
use crate::simd::avx2::mxfp4::{OFFSET, TABLE};
use crate::simd::avx2::util::{f16, hsum_i32, hsum_ps, lane, nibbles, prefetch_next};
use crate::simd::{block, block_pairs, common_blocks, row_pairs, sub, tile_blocks, u16_at, unroll, TILE};

/// MXFP4's code vectors: the values plus [`OFFSET`], one row in 256 bits,
/// two rows in 512.
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

/// R rows against one activation row: rows 2q and 2q + 1 in the halves
/// of 512-bit vectors, an odd last row in 256 bits; accumulators `two[k]`
/// and `one[k]` for the blocks of parity k.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn mxfp4<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 17, a, 34);
    let pairs = nb / 2;
    let wp = row_pairs::<R, 17>(&w, pairs);
    let ap = block_pairs::<34>(a, pairs);
    let codes = mxfp4_codes!();
    // (Only the first R/2 of `two[k]` are used.)
    let mut two = [[_mm512_setzero_ps(); R]; 2];
    let mut one = [_mm256_setzero_ps(); 2];
    // Indexing below `pairs` (every slice's length) needs no bounds checks.
    for p in 0..pairs {
        unroll!(k in [0, 1] => {
            prefetch_next::<R, 17, _MM_HINT_T0>(&w, 2 * p + k, nb);
            let y = &ap[p][k];
            let ya = act(sub::<2, 32, 34>(y), OFFSET, R >= 2);
            let x: [&[u8; 17]; R] = core::array::from_fn(|r| &wp[r][p][k]);
            let d = _mm256_mul_ps(_mm256_set1_ps(f16(u16_at::<0, 34>(y))), e8m0_rows(&x));
            for q in 0..R / 2 {
                let sumi = _mm512_dpbusd_epi32(ya.neg_off2, (codes.two)(x[2 * q], x[2 * q + 1]), ya.q2);
                let dd = spread2(d, 2 * q, 2 * q + 1);
                two[k][q] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sumi), two[k][q]);
            }
            if R % 2 == 1 {
                let sumi = _mm256_dpbusd_epi32(ya.neg_off, (codes.one)(x[R - 1]), ya.q);
                one[k] = _mm256_fmadd_ps(lane(d, R - 1), _mm256_cvtepi32_ps(sumi), one[k]);
            }
        });
    }
    let mut out: [f32; R] = core::array::from_fn(|r| {
        if r < R / 2 * 2 {
            hsum_half(_mm512_add_ps(two[0][r / 2], two[1][r / 2]), r)
        } else {
            hsum_ps(_mm256_add_ps(one[0], one[1]))
        }
    });
    if nb % 2 == 1 {
        let y = block::<34>(a, nb - 1);
        let x: [&[u8; 17]; R] = core::array::from_fn(|r| block::<17>(w[r], nb - 1));
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
/// accumulators of the two row pairs: 16 vectors, in a plain array (in
/// `legacy`'s `Accs` structs, LLVM stored every one to the stack after
/// each FMA: 35 -> 40 GMAC/s in `benches/kernels -- matmul`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn tile(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> [[f32; TILE]; TILE] {
    let nb = tile_blocks(w, 17, a, 34);
    let pairs = nb / 2;
    let wp = row_pairs::<TILE, 17>(w, pairs);
    let ap = row_pairs::<TILE, 34>(a, pairs);
    let codes = mxfp4_codes!();
    // acc[c][k][q]: activation c, blocks of parity k, rows 2q (low half)
    // and 2q + 1 (high half).
    let mut acc = [[[_mm512_setzero_ps(); 2]; 2]; TILE];
    for p in 0..pairs {
        unroll!(k in [0, 1] => {
            prefetch_next::<TILE, 17, _MM_HINT_T0>(w, 2 * p + k, nb);
            let x: [&[u8; 17]; TILE] = core::array::from_fn(|r| &wp[r][p][k]);
            let u = [(codes.two)(x[0], x[1]), (codes.two)(x[2], x[3])];
            let ew = e8m0_rows(&x);
            for (c, acc) in acc.iter_mut().enumerate() {
                let y = &ap[c][p][k];
                let ya = act(sub::<2, 32, 34>(y), OFFSET, true);
                let d = _mm256_mul_ps(_mm256_set1_ps(f16(u16_at::<0, 34>(y))), ew);
                for (q, &u) in u.iter().enumerate() {
                    let sumi = _mm512_dpbusd_epi32(ya.neg_off2, u, ya.q2);
                    let dd = spread2(d, 2 * q, 2 * q + 1);
                    acc[k][q] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sumi), acc[k][q]);
                }
            }
        });
    }
    let x: Option<[&[u8; 17]; TILE]> = (nb % 2 == 1).then(|| core::array::from_fn(|r| block::<17>(w[r], nb - 1)));
    core::array::from_fn(|c| {
        let mut out: [f32; TILE] =
            core::array::from_fn(|r| hsum_half(_mm512_add_ps(acc[c][0][r / 2], acc[c][1][r / 2]), r));
        if let Some(x) = &x {
            let y = block::<34>(a[c], nb - 1);
            let sums = block_sums(x, &act(sub::<2, 32, 34>(y), OFFSET, true), &codes);
            let da = f16(u16_at::<0, 34>(y));
            for r in 0..TILE {
                out[r] = add_tail(out[r], da, x[r][0], sums[r]);
            }
        }
        out
    })
}
