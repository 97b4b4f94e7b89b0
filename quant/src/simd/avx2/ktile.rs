//! K-quant tile kernels (4 rows × 4 activations), AVX2: the inner kernel
//! of a prompt batch's matrix product.
//!
//! As the AVX-512 ones (`simd::avx512::ktile`): per super-block each row's
//! scales are unpacked, its scale words shuffled and its codes made once,
//! then used against the four activations; per (row, activation) pair stay
//! the `maddubs`/`madd` integer products (exact, the i32 lanes holding the
//! same elements as in the one-row kernels) and exactly the one-row
//! kernels' float sequence, so every output is bit-identical to the tier's
//! `vec_dot`. (Sixteen registers cannot hold a tile's 16 accumulators plus
//! the codes: the compiler keeps some in L1, which costs loads, not
//! rounding.)

use core::arch::x86_64::*;

use super::legacy::TILE;
use super::q2k_q3k_q6k::{half_scale_of, q6k_codes, q6k_offset, scale_halves};
use super::q4k_q5k::{
    bsums32, finish_block, finish_block_q5, finish_mins, k4_codes, scale_of, scales_and_mins16,
};
use super::util::{f16, f16x4, hsum_ps, ld128, ld256, prefetch_next};
use crate::simd::{row_blocks, tile_blocks, sub, u16_at, u32_at};

/// A tile's output: `out[c][r]` = row r · activation c.
type Out = [[f32; TILE]; TILE];

/// Q4_K (`FIVE` false) and Q5_K (`FIVE` true): as `q4k_q5k::k4`, per pair.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_tile<const FIVE: bool, const BB: usize, const QS: usize>(
    w: &[&[u8]; TILE],
    a: &[&[u8]; TILE],
) -> Out {
    let nb = tile_blocks(w, BB, a, 292);
    let mut acc = [[_mm256_setzero_ps(); TILE]; TILE];
    let mut acc_m = [[_mm_setzero_ps(); TILE]; TILE];
    let wr = row_blocks::<TILE, BB>(w, nb);
    let ab = row_blocks::<TILE, 292>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, BB, _MM_HINT_T1>(w, i, nb);
        let x: [&[u8; BB]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; TILE] = core::array::from_fn(|c| &ab[c][i]);
        let sm: [(__m256i, __m128i); TILE] =
            core::array::from_fn(|r| scales_and_mins16(sub::<4, 12, BB>(x[r])));
        let mut qh: [__m256i; TILE] = core::array::from_fn(|r| {
            if FIVE {
                ld256(sub::<16, 32, BB>(x[r]))
            } else {
                _mm256_setzero_si256()
            }
        });
        // Two rows at a time (8 sums, 4 code and 4 scale vectors live: what
        // 16 registers hold), the four activations against each pair.
        let mut sumi = [[_mm256_setzero_si256(); TILE]; TILE];
        for p in 0..TILE / 2 {
            for j in 0..4 {
                let mut codes = [[_mm256_setzero_si256(); 2]; 2];
                let mut scales = [[_mm256_setzero_si256(); 2]; 2];
                for (k, r) in [2 * p, 2 * p + 1].into_iter().enumerate() {
                    let (qc, _) = sub::<QS, 128, BB>(x[r]).as_chunks::<32>();
                    codes[k] = k4_codes::<FIVE>(ld256(&qc[j]), &mut qh[r]);
                    scales[k] = [scale_of(sm[r].0, 2 * j), scale_of(sm[r].0, 2 * j + 1)];
                }
                for c in 0..TILE {
                    let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<32>();
                    let (a_lo, a_hi) = (ld256(&aq[2 * j]), ld256(&aq[2 * j + 1]));
                    for k in 0..2 {
                        let s = _mm256_add_epi32(
                            _mm256_madd_epi16(_mm256_maddubs_epi16(codes[k][0], a_lo), scales[k][0]),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(codes[k][1], a_hi), scales[k][1]),
                        );
                        sumi[c][2 * p + k] = _mm256_add_epi32(sumi[c][2 * p + k], s);
                    }
                }
            }
        }
        let d_dmin: [__m128; TILE] = core::array::from_fn(|r| f16x4(u64::from(u32_at::<0, BB>(x[r]))));
        for c in 0..TILE {
            let dy = _mm_set1_ps(f32::from_le_bytes(*sub::<0, 4, 292>(y[c])));
            let bs = bsums32(y[c]);
            for r in 0..TILE {
                let dd = _mm_mul_ps(d_dmin[r], dy);
                let mins = _mm_madd_epi16(sm[r].1, bs);
                if FIVE {
                    finish_block_q5(&mut acc[c][r], &mut acc_m[c][r], dd, sumi[c][r], mins);
                } else {
                    finish_block(&mut acc[c][r], &mut acc_m[c][r], dd, sumi[c][r], mins);
                }
            }
        }
    }
    core::array::from_fn(|c| {
        core::array::from_fn(|r| hsum_ps(acc[c][r]) + finish_mins::<FIVE>(acc_m[c][r]))
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_k(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
    k4_tile::<false, 144, 16>(w, a)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_k(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
    k4_tile::<true, 176, 48>(w, a)
}

/// Q6_K: as `q2k_q3k_q6k::q6_k`, per pair.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
    let nb = tile_blocks(w, 210, a, 292);
    let mut acc = [[_mm256_setzero_ps(); TILE]; TILE];
    let wr = row_blocks::<TILE, 210>(w, nb);
    let ab = row_blocks::<TILE, 292>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, 210, _MM_HINT_T1>(w, i, nb);
        let x: [&[u8; 210]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; TILE] = core::array::from_fn(|c| &ab[c][i]);
        let raw: [__m128i; TILE] = core::array::from_fn(|r| ld128(sub::<192, 16, 210>(x[r])));
        let halves = raw.map(|s| scale_halves(s));
        let mut sumi = [[_mm256_setzero_si256(); TILE]; TILE];
        // One row at a time (4 sums, 4 code and 4 scale vectors live).
        for r in 0..TILE {
            for h in 0..2 {
                let codes = q6k_codes(x[r], h);
                let scales: [__m256i; 4] = core::array::from_fn(|q| half_scale_of(halves[r][h], q));
                for c in 0..TILE {
                    let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<32>();
                    for q in 0..4 {
                        let p = _mm256_maddubs_epi16(codes[q], ld256(&aq[4 * h + q]));
                        sumi[c][r] = _mm256_add_epi32(sumi[c][r], _mm256_madd_epi16(p, scales[q]));
                    }
                }
            }
        }
        let d: [f32; TILE] = core::array::from_fn(|r| f16(u16_at::<208, 210>(x[r])));
        for c in 0..TILE {
            let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y[c]));
            let bsums = ld256(sub::<260, 32, 292>(y[c]));
            for r in 0..TILE {
                let s = _mm256_sub_epi32(sumi[c][r], q6k_offset(raw[r], bsums));
                let dr = _mm256_set1_ps(d[r] * dy);
                acc[c][r] = _mm256_fmadd_ps(dr, _mm256_cvtepi32_ps(s), acc[c][r]);
            }
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| hsum_ps(acc[c][r])))
}
