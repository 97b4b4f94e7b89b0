//! K-quant tile kernels (4 rows × 4 activations), AVX-512: the inner
//! kernel of a prompt batch's matrix product.
//!
//! Per super-block, each row's scales are unpacked and its codes made once
//! (the `and`/shift/fifth-bit work and the scale permutes of the one-row
//! kernels), then used against the four activations. What stays per (row,
//! activation) pair is the integer product (`maddubs`, then `vpdpwssd`
//! with the scales: the `madd` and the add in one exact instruction) and
//! the float steps. Integer sums are exact in any order and each pair's i32
//! lanes hold the same elements as in the one-row kernels; from there each
//! pair runs exactly their float sequence (the AVX2 helpers: FMAs, min
//! terms, final sums), so every output is bit-identical to the tier's
//! `vec_dot` (tested in `tests/matvec.rs` and `tests/simd_vs_scalar.rs`).

use core::arch::x86_64::*;

use super::legacy::TILE;
use super::q2k_q3k_q6k::{fold, quad_scales};
use super::q4k_q5k::{acts_lo_hi, fold256, half_scales, scale_pairs_and_mins16};
use super::util::{bcast256, f16x4, hsum_ps, ld128, ld256, ld512, scale_pairs_i8, HIGH_HALF_W};
use crate::simd::avx2::q2k_q3k_q6k::q6k_offset;
use crate::simd::avx2::q4k_q5k::{bsums32, finish_block, finish_block_q5, finish_mins};
use crate::simd::{common_blocks, row_blocks, sub, u16_at, u32_at};

/// A tile's output: `out[c][r]` = row r · activation c.
type Out = [[f32; TILE]; TILE];

/// The number of whole super-blocks every row and activation holds.
#[inline(always)]
fn tile_blocks(w: &[&[u8]; TILE], wb: usize, a: &[&[u8]; TILE]) -> usize {
    a.iter().fold(common_blocks(w, wb, a[0], 292), |m, a| m.min(a.len() / 292))
}

/// Q4_K (`FIVE` false) and Q5_K (`FIVE` true): as `q4k_q5k::k4`, per pair.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn k4_tile<const FIVE: bool, const BB: usize, const QS: usize>(
    w: &[&[u8]; TILE],
    a: &[&[u8]; TILE],
) -> Out {
    let nb = tile_blocks(w, BB, a);
    let (mask, bit4) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x10));
    let mut acc = [[_mm256_setzero_ps(); TILE]; TILE];
    let mut acc_m = [[_mm_setzero_ps(); TILE]; TILE];
    let wr = row_blocks::<TILE, BB>(w, nb);
    let ab = row_blocks::<TILE, 292>(a, nb);
    for i in 0..nb {
        let x: [&[u8; BB]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; TILE] = core::array::from_fn(|c| &ab[c][i]);
        let sm: [(__m512i, __m128i); TILE] =
            core::array::from_fn(|r| scale_pairs_and_mins16(sub::<4, 12, BB>(x[r])));
        let mut qh: [__m512i; TILE] = core::array::from_fn(|r| {
            if FIVE {
                let h = bcast256(sub::<16, 32, BB>(x[r]));
                _mm512_mask_srli_epi16(h, HIGH_HALF_W, h, 2)
            } else {
                _mm512_setzero_si512()
            }
        });
        let mut sumi = [[_mm512_setzero_si512(); TILE]; TILE];
        for k in 0..2 {
            // Row r's codes and scales for these 128 elements: (lo, hi)
            // against the activation halves of `acts_lo_hi`.
            let mut codes = [[_mm512_setzero_si512(); 2]; TILE];
            let mut scales = [[_mm512_setzero_si512(); 2]; TILE];
            for r in 0..TILE {
                let (qc, _) = sub::<QS, 128, BB>(x[r]).as_chunks::<64>();
                let q = ld512(&qc[k]);
                let mut lo = _mm512_and_si512(q, mask);
                let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), mask);
                if FIVE {
                    let h_lo = _mm512_and_si512(_mm512_slli_epi16::<4>(qh[r]), bit4);
                    let h_hi = _mm512_and_si512(_mm512_slli_epi16::<3>(qh[r]), bit4);
                    qh[r] = _mm512_srli_epi16::<4>(qh[r]);
                    lo = _mm512_or_si512(lo, h_lo);
                    hi = _mm512_or_si512(hi, h_hi);
                }
                codes[r] = [lo, hi];
                scales[r] = [half_scales(sm[r].0, 4 * k), half_scales(sm[r].0, 4 * k + 1)];
            }
            for c in 0..TILE {
                let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<32>();
                let (a_lo, a_hi) = acts_lo_hi(aq, k);
                for r in 0..TILE {
                    let s = _mm512_dpwssd_epi32(
                        sumi[c][r],
                        _mm512_maddubs_epi16(codes[r][0], a_lo),
                        scales[r][0],
                    );
                    sumi[c][r] =
                        _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(codes[r][1], a_hi), scales[r][1]);
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
                let lanes = fold256(sumi[c][r]);
                if FIVE {
                    finish_block_q5(&mut acc[c][r], &mut acc_m[c][r], dd, lanes, mins);
                } else {
                    finish_block(&mut acc[c][r], &mut acc_m[c][r], dd, lanes, mins);
                }
            }
        }
    }
    core::array::from_fn(|c| {
        core::array::from_fn(|r| hsum_ps(acc[c][r]) + finish_mins::<FIVE>(acc_m[c][r]))
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q4_k(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
    k4_tile::<false, 144, 16>(w, a)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q5_k(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
    k4_tile::<true, 176, 48>(w, a)
}

/// Q6_K: as `q2k_q3k_q6k::q6_k`, per pair.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q6_k(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out {
    let nb = tile_blocks(w, 210, a);
    let m4 = _mm512_set1_epi8(0x0F);
    let mut acc = [[_mm256_setzero_ps(); TILE]; TILE];
    let wr = row_blocks::<TILE, 210>(w, nb);
    let ab = row_blocks::<TILE, 292>(a, nb);
    for i in 0..nb {
        let x: [&[u8; 210]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; TILE] = core::array::from_fn(|c| &ab[c][i]);
        let raw: [__m128i; TILE] = core::array::from_fn(|r| ld128(sub::<192, 16, 210>(x[r])));
        let sc = raw.map(|s| scale_pairs_i8(s));
        let mut sumi = [[_mm512_setzero_si512(); TILE]; TILE];
        for h in 0..2 {
            let mut codes = [[_mm512_setzero_si512(); 2]; TILE];
            let mut scales = [[_mm512_setzero_si512(); 2]; TILE];
            for r in 0..TILE {
                let (ql, _) = sub::<0, 128, 210>(x[r]).as_chunks::<64>();
                let (qh, _) = sub::<128, 64, 210>(x[r]).as_chunks::<32>();
                let l = ld512(&ql[h]);
                let hb = bcast256(&qh[h]);
                let hb = _mm512_mask_srli_epi16(hb, HIGH_HALF_W, hb, 2);
                let u01 = _mm512_or_si512(
                    _mm512_and_si512(l, m4),
                    _mm512_slli_epi16::<4>(_mm512_and_si512(hb, _mm512_set1_epi8(0x03))),
                );
                let u23 = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(l), m4),
                    _mm512_and_si512(hb, _mm512_set1_epi8(0x30)),
                );
                codes[r] = [u01, u23];
                scales[r] = [quad_scales(sc[r], 2 * h), quad_scales(sc[r], 2 * h + 1)];
            }
            for c in 0..TILE {
                let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<64>();
                let (a01, a23) = (ld512(&aq[2 * h]), ld512(&aq[2 * h + 1]));
                for r in 0..TILE {
                    let s = _mm512_dpwssd_epi32(
                        sumi[c][r],
                        _mm512_maddubs_epi16(codes[r][0], a01),
                        scales[r][0],
                    );
                    sumi[c][r] =
                        _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(codes[r][1], a23), scales[r][1]);
                }
            }
        }
        let d: [f32; TILE] =
            core::array::from_fn(|r| _mm_cvtss_f32(f16x4(u64::from(u16_at::<208, 210>(x[r])))));
        for c in 0..TILE {
            let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y[c]));
            let bsums = ld256(sub::<260, 32, 292>(y[c]));
            for r in 0..TILE {
                let lanes = _mm256_sub_epi32(fold256(sumi[c][r]), q6k_offset(raw[r], bsums));
                fold(&mut acc[c][r], d[r] * dy, lanes);
            }
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| hsum_ps(acc[c][r])))
}
