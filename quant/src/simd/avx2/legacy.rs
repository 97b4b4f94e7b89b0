//! The 32-element formats, AVX2: Q4_0, Q5_0, Q8_0 · Q8_0 and Q4_1, Q5_1 · Q8_1,
//! in llama.cpp's x86 float order (bit-identical to the scalar tier, see
//! `crate::scalar::legacy`).
//!
//! One block at a time, one 256-bit vector per block and row: the 32 codes
//! become unsigned bytes in element order (Q4_0: u = q + 8, Q5_0: u = q + 16,
//! Q4_1/Q5_1: u = q), `maddubs` multiplies them with the activation bytes
//! into i16 pairs (at most 31·127·2 = 7874), the offset's pairs
//! `maddubs(offset, a)` (computed once per block for all rows) are
//! subtracted, and `madd` against ones widens to i32: lane k is the exact
//! sum Σ q·a over elements 4k..4k+3. Q8_0 uses the sign trick (|x| times a
//! with x's sign), exact for activations in -127..=127. Then per row and
//! block, in block order: `acc = fma(d_w·d_a, f32(lanes), acc)`; at the end
//! `hsum_ps` (= ggml's `hsum_float_8`), plus for Q4_1/Q5_1 the min terms
//! `m_w·s_a`, summed per row in block order in a side vector.

use core::arch::x86_64::*;

use super::util::prefetch_next;

use super::util::{f16_pair_rows, f16_rows, hsum_ps, lane, ld256, nibbles, pairs, sum_off, Act};
use crate::simd::{blocks, common_blocks, row_blocks, tile_blocks, sub, u16_at, u32_at};

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

/// Type-0 driver (Q8_0 activations): per block, `lanes(x, act)` gives each
/// row's exact i32 lanes; `acc = fma(d_w·d_a, f32(lanes), acc)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot0<const R: usize, const WB: usize>(
    w: &[&[u8]; R],
    a: &[u8],
    offset: i8,
    lanes: impl Fn(&[u8; WB], &Act) -> __m256i,
) -> [f32; R] {
    let nb = common_blocks(w, WB, a, 34);
    let mut acc = [_mm256_setzero_ps(); R];
    let wr = row_blocks::<R, WB>(w, nb);
    let ab = blocks::<34>(a, nb);
    // Indexing below `nb` (every slice's length) needs no bounds checks.
    for i in 0..nb {
        prefetch_next::<R, WB, _MM_HINT_T0>(w, i, nb);
        let y = &ab[i];
        let act = Act::q8_0(y, offset);
        let x: [&[u8; WB]; R] = core::array::from_fn(|r| &wr[r][i]);
        let da = _mm_cvtph_ps(_mm_set1_epi16(u16_at::<0, 34>(y) as i16));
        let d = _mm256_castps128_ps256(_mm_mul_ps(f16_rows::<R, 0, WB>(&x), da));
        for r in 0..R {
            let l = _mm256_cvtepi32_ps(lanes(x[r], &act));
            acc[r] = _mm256_fmadd_ps(lane(d, r), l, acc[r]);
        }
    }
    acc.map(|v| hsum_ps(v))
}

/// Type-1 driver (Q8_1 activations, weights starting with d, m): as
/// [`dot0`], plus `mins += m_w·s_a` per row and block; result
/// `hsum(acc) + mins`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot1<const R: usize, const WB: usize>(
    w: &[&[u8]; R],
    a: &[u8],
    codes: impl Fn(&[u8; WB]) -> __m256i,
) -> [f32; R] {
    let nb = common_blocks(w, WB, a, 36);
    let mut acc = [_mm256_setzero_ps(); R];
    // Lane 2r+1: row r's min terms (lanes 2r: unused sums of d products).
    let mut mins = _mm256_setzero_ps();
    let wr = row_blocks::<R, WB>(w, nb);
    let ab = blocks::<36>(a, nb);
    // Indexing below `nb` (every slice's length) needs no bounds checks.
    for i in 0..nb {
        prefetch_next::<R, WB, _MM_HINT_T0>(w, i, nb);
        let y = &ab[i];
        let act = Act {
            q: ld256(sub::<4, 32, 36>(y)),
            off: _mm256_setzero_si256(),
        };
        let x: [&[u8; WB]; R] = core::array::from_fn(|r| &wr[r][i]);
        let ds = _mm256_cvtph_ps(_mm_set1_epi32(u32_at::<0, 36>(y) as i32));
        // (d_w·d_a, m_w·s_a) of row r in lanes (2r, 2r+1).
        let dm = _mm256_mul_ps(f16_pair_rows::<R, WB>(&x), ds);
        mins = _mm256_add_ps(mins, dm);
        for r in 0..R {
            let l = _mm256_cvtepi32_ps(sum_off(codes(x[r]), &act));
            acc[r] = _mm256_fmadd_ps(lane(dm, 2 * r), l, acc[r]);
        }
    }
    core::array::from_fn(|r| hsum_ps(acc[r]) + _mm256_cvtss_f32(lane(mins, 2 * r + 1)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot0::<R, 18>(&w, a, 8, |x, y| sum_off(nibbles(sub::<2, 16, 18>(x)), y))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot0::<R, 22>(&w, a, 16, |x, y| {
        let u = _mm256_or_si256(
            nibbles(sub::<6, 16, 22>(x)),
            bits_to_0x10(u32_at::<2, 22>(x)),
        );
        sum_off(u, y)
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q8_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot0::<R, 34>(&w, a, 0, |x, y| {
        let q = ld256(sub::<2, 32, 34>(x));
        pairs(_mm256_maddubs_epi16(
            _mm256_sign_epi8(q, q),
            _mm256_sign_epi8(y.q, q),
        ))
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot1::<R, 20>(&w, a, |x| nibbles(sub::<4, 16, 20>(x)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot1::<R, 24>(&w, a, |x| {
        _mm256_or_si256(
            nibbles(sub::<8, 16, 24>(x)),
            bits_to_0x10(u32_at::<4, 24>(x)),
        )
    })
}

pub(crate) use crate::simd::TILE;

/// [`dot0`] for a tile of 4 rows × 4 activations: each row's block is
/// prepared once (`prep`: its codes, or for Q8_0 its loaded quants) and
/// `lanes` runs per (row, activation) pair; every pair sees exactly
/// [`dot0`]'s sequence of float operations.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot0_tile<const WB: usize>(
    w: &[&[u8]; TILE],
    a: &[&[u8]; TILE],
    offset: i8,
    prep: impl Fn(&[u8; WB]) -> __m256i,
    lanes: impl Fn(__m256i, &Act) -> __m256i,
) -> [[f32; TILE]; TILE] {
    let nb = tile_blocks(w, WB, a, 34);
    let mut acc = [[_mm256_setzero_ps(); TILE]; TILE];
    let wr = row_blocks::<TILE, WB>(w, nb);
    let ab = row_blocks::<TILE, 34>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, WB, _MM_HINT_T0>(w, i, nb);
        let x: [&[u8; WB]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let u: [__m256i; TILE] = core::array::from_fn(|r| prep(x[r]));
        let dw = f16_rows::<TILE, 0, WB>(&x);
        for c in 0..TILE {
            let y = &ab[c][i];
            let act = Act::q8_0(y, offset);
            let da = _mm_cvtph_ps(_mm_set1_epi16(u16_at::<0, 34>(y) as i16));
            let d = _mm256_castps128_ps256(_mm_mul_ps(dw, da));
            for r in 0..TILE {
                let l = _mm256_cvtepi32_ps(lanes(u[r], &act));
                acc[c][r] = _mm256_fmadd_ps(lane(d, r), l, acc[c][r]);
            }
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| hsum_ps(acc[c][r])))
}

/// [`dot1`] for a tile of 4 rows × 4 activations (see [`dot0_tile`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot1_tile<const WB: usize>(
    w: &[&[u8]; TILE],
    a: &[&[u8]; TILE],
    codes: impl Fn(&[u8; WB]) -> __m256i,
) -> [[f32; TILE]; TILE] {
    let nb = tile_blocks(w, WB, a, 36);
    let mut acc = [[_mm256_setzero_ps(); TILE]; TILE];
    let mut mins = [_mm256_setzero_ps(); TILE];
    let wr = row_blocks::<TILE, WB>(w, nb);
    let ab = row_blocks::<TILE, 36>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, WB, _MM_HINT_T0>(w, i, nb);
        let x: [&[u8; WB]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let u: [__m256i; TILE] = core::array::from_fn(|r| codes(x[r]));
        let dmw = f16_pair_rows::<TILE, WB>(&x);
        for c in 0..TILE {
            let y = &ab[c][i];
            let act = Act {
                q: ld256(sub::<4, 32, 36>(y)),
                off: _mm256_setzero_si256(),
            };
            let ds = _mm256_cvtph_ps(_mm_set1_epi32(u32_at::<0, 36>(y) as i32));
            let dm = _mm256_mul_ps(dmw, ds);
            mins[c] = _mm256_add_ps(mins[c], dm);
            for r in 0..TILE {
                let l = _mm256_cvtepi32_ps(sum_off(u[r], &act));
                acc[c][r] = _mm256_fmadd_ps(lane(dm, 2 * r), l, acc[c][r]);
            }
        }
    }
    core::array::from_fn(|c| {
        core::array::from_fn(|r| hsum_ps(acc[c][r]) + _mm256_cvtss_f32(lane(mins[c], 2 * r + 1)))
    })
}

/// Tile kernels (4 rows × 4 activations) of the 32-element formats.
pub(crate) mod tile {
    use super::*;

    type Out = [[f32; TILE]; TILE];

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q4_0(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
        dot0_tile::<18>(w, a, 8, |x| nibbles(sub::<2, 16, 18>(x)), |u, y| sum_off(u, y))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q5_0(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
        let codes = |x: &[u8; 22]| {
            _mm256_or_si256(nibbles(sub::<6, 16, 22>(x)), bits_to_0x10(u32_at::<2, 22>(x)))
        };
        dot0_tile::<22>(w, a, 16, codes, |u, y| sum_off(u, y))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q8_0(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
        dot0_tile::<34>(
            w,
            a,
            0,
            |x| ld256(sub::<2, 32, 34>(x)),
            |q, y| pairs(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y.q, q))),
        )
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q4_1(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
        dot1_tile::<20>(w, a, |x| nibbles(sub::<4, 16, 20>(x)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q5_1(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
        dot1_tile::<24>(w, a, |x| {
            _mm256_or_si256(nibbles(sub::<8, 16, 24>(x)), bits_to_0x10(u32_at::<4, 24>(x)))
        })
    }
}
