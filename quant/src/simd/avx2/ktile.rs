//! K-quant tile kernels (4 rows × 4 activations; Q4_K and Q5_K for any
//! number C of activations, run as 4 × 8 wide tiles too), AVX2: the inner
//! kernel of a prompt batch's matrix product.
//!
//! As the AVX-512 ones (`simd::avx512::ktile`): per super-block each row's
//! scales are unpacked, its scale words shuffled and its codes made once,
//! then used against the four activations; per (row, activation) pair stay
//! the `maddubs`/`madd` integer products (exact, the i32 lanes holding the
//! same elements as in the one-row kernels) and exactly the one-row
//! kernels' float sequence, so every output is bit-identical to the tier's
//! `vec_dot`. (Sixteen registers cannot hold a tile's 16 accumulators plus
//! the codes: the compiler keeps some in L1, which costs loads, not
//! rounding.) Q4_K/Q5_K unpack two rows' scales in one vector and finish a
//! block's floats two rows per vector (Q4_K 51-53 -> 53-57 GMAC/s on one
//! thread), and read activations whose sub-blocks the matmul paired once
//! ([`pair_subblocks`]), so that two sub-blocks' products share one
//! `madd` (pp512 bench, 2 threads: Q4_K 92-103 -> 102-116 GMAC/s, Q5_K
//! 84-88 -> 88-102).

use core::arch::x86_64::*;

use super::legacy::TILE;
use super::q2k_q3k_q6k::{half_scale_of, q6k_codes, q6k_offset, scale_halves};
use super::q4k_q5k::{bsums32, finish_mins, k4_codes};
use super::util::{f16, hsum_ps, ld128, ld256, prefetch_next};
use crate::simd::{row_blocks, tile_blocks, sub, u16_at, u32_at};

// The K-quant tiles pair rows and convert four rows' (d, dmin) in one
// vector: they are written for 4 × 4.
const _: () = assert!(TILE == 4);

/// The Q4_K/Q5_K scales and mins of two rows' blocks at once (`w[r]`: row
/// r's 16 bytes at block offset 4): 128-bit lane r holds row r's 8 scales
/// (bytes 0..8) and 8 mins (bytes 8..16), as
/// [`crate::simd::k4_scale_mins`] unpacks them, on the three 32-bit words
/// `a, b, c` of each lane: scales `a & 0x3f…`, `(c & 0x0f…) | ((a >> 6) &
/// 0x03…) << 4`, mins `b & 0x3f…`, `((c >> 4) & 0x0f…) | ((b >> 6) &
/// 0x03…) << 4`. The 4 bytes after the 12 scale bytes are ignored.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_scale_mins_x2(w: [&[u8; 16]; 2]) -> __m256i {
    let v = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(ld128(w[0])), ld128(w[1]));
    // Lanes (a, c, b, c) and (a, a, b, b) of each row's words (a, b, c).
    let x = _mm256_shuffle_epi32::<0b10_01_10_00>(v);
    let y = _mm256_shuffle_epi32::<0b01_01_00_00>(v);
    let per_lane = |a: i32, b: i32, c: i32, d: i32| _mm256_broadcastsi128_si256(_mm_set_epi32(a, b, c, d));
    let low = _mm256_and_si256(
        _mm256_srlv_epi32(x, per_lane(4, 0, 0, 0)),
        per_lane(0x0f0f_0f0f, 0x3f3f_3f3f, 0x0f0f_0f0f, 0x3f3f_3f3f),
    );
    let top = _mm256_slli_epi32::<4>(_mm256_and_si256(_mm256_srli_epi32::<6>(y), _mm256_set1_epi8(0x03)));
    _mm256_or_si256(low, _mm256_and_si256(top, per_lane(-1, 0, -1, 0)))
}

/// Scales `2j` and `2j + 1` (i16 words of `scales`, as
/// [`k4_scale_mins_x2`]'s lanes widen them) in every 32-bit unit.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_pair(scales: __m256i, j: usize) -> __m256i {
    match j {
        0 => _mm256_shuffle_epi32::<0x00>(scales),
        1 => _mm256_shuffle_epi32::<0x55>(scales),
        2 => _mm256_shuffle_epi32::<0xAA>(scales),
        _ => _mm256_shuffle_epi32::<0xFF>(scales),
    }
}

/// The codes of two 32-element chunks paired as [`pair_subblocks`] pairs
/// activations: unit k of the first vector holds elements (4k, 4k + 1) of
/// `a`, then of `b`; of the second, elements (4k + 2, 4k + 3).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pair_codes(a: __m256i, b: __m256i) -> [__m256i; 2] {
    [
        _mm256_blend_epi16::<0xAA>(a, _mm256_slli_epi32::<16>(b)),
        _mm256_blend_epi16::<0xAA>(_mm256_srli_epi32::<16>(a), b),
    ]
}

/// The Q8_K activation order the Q4_K/Q5_K/Q6_K tiles read
/// ([`crate::dispatch::Kernels::tile_acts`]), in place on a row of 292-byte
/// blocks: in each 64 quants of sub-blocks (2j, 2j + 1), 32-bit unit k of
/// the first 32 bytes holds elements (4k, 4k + 1) of sub-block 2j, then
/// those of 2j + 1; unit k of the second 32 bytes elements (4k + 2, 4k +
/// 3) of each. The scale `d` and the bsums stay as they are.
pub(crate) fn pair_subblocks(row: &mut [u8]) {
    for block in row.chunks_exact_mut(292) {
        for pair in block[4..260].chunks_exact_mut(64) {
            let mut src = [0u8; 64];
            src.copy_from_slice(pair);
            let (first, second) = src.split_at(32);
            for k in 0..8 {
                let (l, h) = (&first[4 * k..4 * k + 4], &second[4 * k..4 * k + 4]);
                pair[4 * k..4 * k + 4].copy_from_slice(&[l[0], l[1], h[0], h[1]]);
                pair[32 + 4 * k..36 + 4 * k].copy_from_slice(&[l[2], l[3], h[2], h[3]]);
            }
        }
    }
}

/// Q4_K (`FIVE` false) and Q5_K (`FIVE` true): as `q4k_q5k::k4`, per pair.
/// The per-block float work runs two rows per vector where the one-row
/// kernel uses 128-bit lanes: each lane sees the same operations, so the
/// bits are the same.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_tile<const FIVE: bool, const BB: usize, const QS: usize, const C: usize>(
    w: &[&[u8]; TILE],
    a: &[&[u8]; C],
) -> [[f32; TILE]; C] {
    let nb = tile_blocks(w, BB, a, 292);
    let mut acc = [[_mm256_setzero_ps(); TILE]; C];
    // Min terms of rows (2p, 2p + 1): 128-bit halves of `acc_m[c][p]`.
    let mut acc_m = [[_mm256_setzero_ps(); TILE / 2]; C];
    let wr = row_blocks::<TILE, BB>(w, nb);
    let ab = row_blocks::<C, 292>(a, nb);
    // Lane indices of dmin·dy of rows (2p, 2p + 1), for the broadcasts.
    let dmin_of: [__m256i; TILE / 2] = core::array::from_fn(|p| {
        let (lo, hi) = (4 * p as i32 + 1, 4 * p as i32 + 3);
        _mm256_setr_epi32(lo, lo, lo, lo, hi, hi, hi, hi)
    });
    for i in 0..nb {
        prefetch_next::<TILE, BB, _MM_HINT_T1>(w, i, nb);
        let x: [&[u8; BB]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; C] = core::array::from_fn(|c| &ab[c][i]);
        let sm: [__m256i; TILE / 2] =
            core::array::from_fn(|p| k4_scale_mins_x2([sub::<4, 16, BB>(x[2 * p]), sub::<4, 16, BB>(x[2 * p + 1])]));
        // Each row's scales as i16 in both lanes (as `scale_pair` takes them);
        // each pair's mins as i16.
        let sc: [__m256i; TILE] = core::array::from_fn(|r| {
            let v = sm[r / 2];
            let lane = if r % 2 == 0 { _mm256_castsi256_si128(v) } else { _mm256_extracti128_si256::<1>(v) };
            _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(lane))
        });
        let mins16: [__m256i; TILE / 2] =
            core::array::from_fn(|p| _mm256_cvtepu8_epi16(_mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b11_01>(sm[p]))));
        let mut qh: [__m256i; TILE] = core::array::from_fn(|r| {
            if FIVE {
                ld256(sub::<16, 32, BB>(x[r]))
            } else {
                _mm256_setzero_si256()
            }
        });
        // (d, dmin) of the four rows, as the one-row kernel converts them,
        // times each activation's scale: lanes 2r and 2r + 1 of `dd[c]`;
        // the d products also as floats `d_f` (the same products, broadcast
        // from memory by a load alone).
        let d_dmin = _mm256_cvtph_ps(_mm_setr_epi32(
            u32_at::<0, BB>(x[0]) as i32,
            u32_at::<0, BB>(x[1]) as i32,
            u32_at::<0, BB>(x[2]) as i32,
            u32_at::<0, BB>(x[3]) as i32,
        ));
        let dy: [f32; C] = core::array::from_fn(|c| f32::from_le_bytes(*sub::<0, 4, 292>(y[c])));
        let dd: [__m256; C] = core::array::from_fn(|c| _mm256_mul_ps(d_dmin, _mm256_set1_ps(dy[c])));
        let d_row: [f32; TILE] = core::array::from_fn(|r| f16(u16_at::<0, BB>(x[r])));
        let d_f: [[f32; TILE]; C] = core::array::from_fn(|c| core::array::from_fn(|r| d_row[r] * dy[c]));
        // One row at a time (C sums, the row's two code vectors and scale
        // pair live), every activation against it. The codes of sub-blocks
        // (2j, 2j + 1) are paired as the activations are
        // ([`pair_subblocks`]): 32-bit unit k of `wa` holds elements (4k,
        // 4k + 1) of each sub-block, of `wb` elements (4k + 2, 4k + 3). So
        // `maddubs(wa) + maddubs(wb)` has word 2k = sub-block 2j's four
        // products of `vec_dot`'s lane k, word 2k + 1 = sub-block 2j + 1's
        // (|·| ≤ 4·31·128, no overflow), and one `madd` with the scale pair
        // gives `vec_dot`'s i32 lane k of both sub-blocks: a third fewer
        // multiplies for the same integers.
        for r in 0..TILE {
            let mut s = [_mm256_setzero_si256(); C];
            for j in 0..4 {
                let (qc, _) = sub::<QS, 128, BB>(x[r]).as_chunks::<32>();
                let [lo, hi] = k4_codes::<FIVE>(ld256(&qc[j]), &mut qh[r]);
                let [wa, wb] = pair_codes(lo, hi);
                let scale = scale_pair(sc[r], j);
                for c in 0..C {
                    let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<32>();
                    let p = _mm256_add_epi16(
                        _mm256_maddubs_epi16(wa, ld256(&aq[2 * j])),
                        _mm256_maddubs_epi16(wb, ld256(&aq[2 * j + 1])),
                    );
                    s[c] = _mm256_add_epi32(s[c], _mm256_madd_epi16(p, scale));
                }
            }
            for c in 0..C {
                let d = _mm256_broadcast_ss(&d_f[c][r]);
                acc[c][r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s[c]), acc[c][r]);
            }
        }
        for c in 0..C {
            let bs = _mm256_broadcastsi128_si256(bsums32(y[c]));
            for p in 0..TILE / 2 {
                let mut mins = _mm256_madd_epi16(mins16[p], bs);
                if FIVE {
                    // Q5_K: one f32 per row (lane 0 of each half), of the
                    // four i32 summed, as `finish_block_q5`.
                    mins = _mm256_add_epi32(mins, _mm256_unpackhi_epi64(mins, mins));
                    mins = _mm256_add_epi32(mins, _mm256_shuffle_epi32::<0b01>(mins));
                }
                let dmin = _mm256_permutevar8x32_ps(dd[c], dmin_of[p]);
                acc_m[c][p] = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(mins), acc_m[c][p]);
            }
        }
    }
    core::array::from_fn(|c| {
        core::array::from_fn(|r| {
            let m = acc_m[c][r / 2];
            let half = if r % 2 == 0 { _mm256_castps256_ps128(m) } else { _mm256_extractf128_ps::<1>(m) };
            hsum_ps(acc[c][r]) + finish_mins::<FIVE>(half)
        })
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_k<const C: usize>(w: &[&[u8]; TILE], a: &[&[u8]; C]) -> [[f32; TILE]; C] {
    k4_tile::<false, 144, 16, C>(w, a)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_k<const C: usize>(w: &[&[u8]; TILE], a: &[&[u8]; C]) -> [[f32; TILE]; C] {
    k4_tile::<true, 176, 48, C>(w, a)
}

/// Q6_K: as `q2k_q3k_q6k::q6_k`, per pair, on paired activations
/// ([`pair_subblocks`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k<const C: usize>(w: &[&[u8]; TILE], a: &[&[u8]; C]) -> [[f32; TILE]; C] {
    let nb = tile_blocks(w, 210, a, 292);
    let mut acc = [[_mm256_setzero_ps(); TILE]; C];
    let wr = row_blocks::<TILE, 210>(w, nb);
    let ab = row_blocks::<C, 292>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, 210, _MM_HINT_T1>(w, i, nb);
        let x: [&[u8; 210]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; C] = core::array::from_fn(|c| &ab[c][i]);
        let raw: [__m128i; TILE] = core::array::from_fn(|r| ld128(sub::<192, 16, 210>(x[r])));
        let halves = raw.map(|s| scale_halves(s));
        // d·dy of each (row, activation), broadcast from memory below.
        let d: [f32; TILE] = core::array::from_fn(|r| f16(u16_at::<208, 210>(x[r])));
        let d_f: [[f32; TILE]; C] =
            core::array::from_fn(|c| core::array::from_fn(|r| d[r] * f32::from_le_bytes(*sub::<0, 4, 292>(y[c]))));
        // One row at a time (C sums, 4 code and 2 scale vectors live). As
        // in `k4_tile`, chunks (2t, 2t + 1) of a half are paired as the
        // activations are, and share one `madd`: word 2k of the i16 sum is
        // chunk 2t's four products of `vec_dot`'s lane k, 2k + 1 chunk 2t +
        // 1's (|·| ≤ 4·63·128 < 2^15), and the scale pair has each
        // chunk's scale of lane k in those words.
        for r in 0..TILE {
            let mut sumi = [_mm256_setzero_si256(); C];
            for h in 0..2 {
                let codes = q6k_codes(x[r], h);
                let scales: [__m256i; 4] = core::array::from_fn(|q| half_scale_of(halves[r][h], q));
                let pairs = [pair_codes(codes[0], codes[1]), pair_codes(codes[2], codes[3])];
                let scale_pairs = [
                    _mm256_blend_epi16::<0xAA>(scales[0], scales[1]),
                    _mm256_blend_epi16::<0xAA>(scales[2], scales[3]),
                ];
                for c in 0..C {
                    let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<32>();
                    for t in 0..2 {
                        let p = _mm256_add_epi16(
                            _mm256_maddubs_epi16(pairs[t][0], ld256(&aq[4 * h + 2 * t])),
                            _mm256_maddubs_epi16(pairs[t][1], ld256(&aq[4 * h + 2 * t + 1])),
                        );
                        sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, scale_pairs[t]));
                    }
                }
            }
            for c in 0..C {
                let s = _mm256_sub_epi32(sumi[c], q6k_offset(raw[r], ld256(sub::<260, 32, 292>(y[c]))));
                acc[c][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&d_f[c][r]), _mm256_cvtepi32_ps(s), acc[c][r]);
            }
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| hsum_ps(acc[c][r])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scale_mins_x2_matches_the_scalar_unpacking() {
        if !super::super::available() {
            eprintln!("k4_scale_mins_x2: no AVX2 on this CPU, skipped");
            return;
        }
        crate::simd::check_k4_scale_mins_xn::<2>(|w| {
            // SAFETY: the tier's features were detected above.
            let v = unsafe { k4_scale_mins_x2([&w[0], &w[1]]) };
            let mut got = [0u8; 32];
            // SAFETY: `got` is 32 writable bytes; `storeu` is unaligned.
            unsafe { _mm256_storeu_si256(got.as_mut_ptr().cast(), v) };
            got.to_vec()
        });
    }
}
