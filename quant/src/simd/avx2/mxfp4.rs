//! MXFP4 · Q8_0, AVX2, in llama.cpp's x86 float order (bit-identical to
//! the scalar tier, see `crate::scalar::mxfp4`): block 2p's lanes into one
//! accumulator and block 2p+1's into a second, `hsum` of their sum, and an
//! odd last block added as one integer sum with a scalar FMA.
//!
//! Integer part: the nibbles index, by `pshufb`, a table of the doubled
//! E2M1 values plus 12 (unsigned 0..=24), so `maddubs` can take them as its
//! unsigned operand against the signed activation bytes (pairs at most
//! 2·24·128 = 6144); the offset's pairs `maddubs(12, a)`, made once per
//! activation block for all rows, are subtracted, and `madd` against ones
//! widens to i32: lane k is the exact Σ value·a over elements 4k..4k+3, for
//! any activation bytes. (ggml's kernel gets the same integers with the
//! sign trick on the signed values.) The scale of row r is the f32 product
//! `f16(d_a)·2^(e_r−128)`, as ggml's.
//!
//! Matmul tiles (4 rows × 4 activations) run each (row, activation) pair
//! through the one-row kernel's sequence of FMAs.

use core::arch::x86_64::*;

use super::util::{f16, hsum_i32, hsum_ps, ld128, nibbles, prefetch_next, sum_off, Act};
use crate::blocks::KVALUES_MXFP4;
use crate::fp::e8m0_to_f32_half;
use crate::simd::{block, block_pairs, common_blocks, row_pairs, sub, tile_blocks, u16_at, unroll, TILE};

/// What the code table adds to the values, making them unsigned.
pub(crate) const OFFSET: i8 = 12;
/// `KVALUES_MXFP4` plus [`OFFSET`], as unsigned bytes (0..=24).
pub(crate) const TABLE: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = (KVALUES_MXFP4[i] + OFFSET) as u8;
        i += 1;
    }
    t
};

/// [`TABLE`] in both 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn table() -> __m256i {
    _mm256_broadcastsi128_si256(ld128(&TABLE))
}

/// One block's 32 values plus [`OFFSET`] as unsigned bytes, element order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn codes(table: __m256i, x: &[u8; 17]) -> __m256i {
    _mm256_shuffle_epi8(table, nibbles(sub::<1, 16, 17>(x)))
}

/// One activation block: its quants with the i16 pairs `maddubs(12, a)`,
/// and its f16 scale as f32.
struct Block {
    act: Act,
    d: f32,
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn act(y: &[u8; 34]) -> Block {
    Block { act: Act::q8_0(y, OFFSET), d: f16(u16_at::<0, 34>(y)) }
}

/// `acc = fma(d_a·2^(e−128), f32(lanes), acc)` for one row's block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fma_block(acc: __m256, u: __m256i, e: u8, y: &Block) -> __m256 {
    let d = _mm256_set1_ps(y.d * e8m0_to_f32_half(e));
    _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum_off(u, &y.act)), acc)
}

/// The end of one row: `hsum(even + odd)`, then the odd last block (if
/// any: `tail` = its codes and activation) as `fma(d, f32(Σ), sum)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn finish(even: __m256, odd: __m256, tail: Option<(__m256i, u8, &Block)>) -> f32 {
    let s = hsum_ps(_mm256_add_ps(even, odd));
    match tail {
        Some((u, e, y)) => (y.d * e8m0_to_f32_half(e)).mul_add(hsum_i32(sum_off(u, &y.act)) as f32, s),
        None => s,
    }
}

/// R rows against one activation row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn mxfp4<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let nb = common_blocks(&w, 17, a, 34);
    let pairs = nb / 2;
    let wp = row_pairs::<R, 17>(&w, pairs);
    let ap = block_pairs::<34>(a, pairs);
    let t = table();
    let mut acc = [[_mm256_setzero_ps(); R]; 2];
    // Indexing below `pairs` (every slice's length) needs no bounds checks.
    for p in 0..pairs {
        unroll!(k in [0, 1] => {
            prefetch_next::<R, 17, _MM_HINT_T0>(&w, 2 * p + k, nb);
            let y = act(&ap[p][k]);
            for r in 0..R {
                let x = &wp[r][p][k];
                acc[k][r] = fma_block(acc[k][r], codes(t, x), x[0], &y);
            }
        });
    }
    let last = (nb % 2 == 1).then(|| act(block::<34>(a, nb - 1)));
    core::array::from_fn(|r| {
        let tail = last.as_ref().map(|y| {
            let x = block::<17>(w[r], nb - 1);
            (codes(t, x), x[0], y)
        });
        finish(acc[0][r], acc[1][r], tail)
    })
}

/// Tile kernel (4 rows × 4 activations): each block's codes made once for
/// the four activations, into 32 accumulators (`acc[k][c][r]`: blocks of
/// parity k, activation c, row r), which spill. Measured against running
/// the even blocks and then the odd ones with 16 live accumulators:
/// 26.3-26.9 -> 28.7-29.5 GMAC/s (`benches/kernels -- matmul mxfp4 avx2`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn tile(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> [[f32; TILE]; TILE] {
    let nb = tile_blocks(w, 17, a, 34);
    let pairs = nb / 2;
    let wp = row_pairs::<TILE, 17>(w, pairs);
    let ap = row_pairs::<TILE, 34>(a, pairs);
    let t = table();
    let mut acc = [[[_mm256_setzero_ps(); TILE]; TILE]; 2];
    for p in 0..pairs {
        unroll!(k in [0, 1] => {
            prefetch_next::<TILE, 17, _MM_HINT_T0>(w, 2 * p + k, nb);
            let x: [&[u8; 17]; TILE] = core::array::from_fn(|r| &wp[r][p][k]);
            let u: [__m256i; TILE] = core::array::from_fn(|r| codes(t, x[r]));
            for (c, acc) in acc[k].iter_mut().enumerate() {
                let y = act(&ap[c][p][k]);
                for r in 0..TILE {
                    acc[r] = fma_block(acc[r], u[r], x[r][0], &y);
                }
            }
        });
    }
    let [even, odd] = acc;
    core::array::from_fn(|c| {
        let last = (nb % 2 == 1).then(|| act(block::<34>(a[c], nb - 1)));
        core::array::from_fn(|r| {
            let tail = last.as_ref().map(|y| {
                let x = block::<17>(w[r], nb - 1);
                (codes(t, x), x[0], y)
            });
            finish(even[c][r], odd[c][r], tail)
        })
    })
}
