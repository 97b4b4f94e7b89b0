//! K-quant tile kernels (Q2_K..Q6_K; 4 rows × 4 activations, and for
//! Q4_K, Q5_K and Q6_K any number C of activations: Q4_K and Q5_K run as
//! 4 × 8 wide tiles too), AVX-512: the inner kernel of a prompt batch's
//! matrix product.
//!
//! Per super-block, each row's scales are unpacked and its codes made once
//! (the `and`/shift/fifth-bit work and the scale permutes of the one-row
//! kernels), then used against every activation of the tile. What stays per (row,
//! activation) pair is the integer product (`maddubs`, then `vpdpwssd`
//! with the scales: the `madd` and the add in one exact instruction) and
//! the float steps. Integer sums are exact in any order, and each pair's
//! i32 lanes hold the same elements as in the one-row kernels:
//!
//! - Q4_K, Q5_K, Q6_K put 32 elements of two rows in one vector (row 2p
//!   low, 2p + 1 high) against the activation broadcast to both halves, so
//!   each half already is that row's 8 lanes;
//! - Q2_K, Q3_K keep the one-row kernels' layout (64 elements of one row,
//!   halves 32 apart) and fold two rows' halves into one vector after.
//!
//! From there each pair runs exactly the one-row kernel's float sequence
//! (FMAs, min terms, final sums), two pairs per 512-bit vector (four for
//! the 128-bit min terms): float operations are lane-wise, so packing pairs
//! changes no rounding, and every output is bit-identical to the tier's
//! `vec_dot` (tested in `tests/matvec.rs`). Each super-block step
//! prefetches the same block of the next 4 rows (`prefetch_next`): the
//! matmul's next column block, whose weights come from memory.

use core::arch::x86_64::*;

use super::legacy::TILE;
use super::q2k_q3k_q6k::quad_scales;
use super::q4k_q5k::k4_codes;
use super::util::{bcast256, dpwssd, f16x4, hsum_half, join256, ld128, ld512, q3k_scales, scale_pairs_i8, HIGH_HALF_W};
use crate::simd::avx2::q4k_q5k::{bsums32, finish_mins};
use crate::simd::avx2::util::{f16_pair_rows, prefetch_next};
use crate::simd::{row_blocks, tile_blocks, sub, u16_at, u32_at, unroll};

/// A tile's output: `out[c][r]` = row r · activation c, for C activations
/// (4, or [`crate::simd::WIDE`] in the wide tiles).
type Out<const C: usize> = [[f32; TILE]; C];

/// Q4_K (`FIVE` false) and Q5_K (`FIVE` true): as `q4k_q5k::k4`, per pair.
///
/// Two rows per vector: rows 2p and 2p + 1's codes of one sub-block of 32
/// fill the low and high halves, against the activation's 32 bytes in
/// both halves (a broadcast load) and the two rows' scales. Each half's
/// i32 lanes are then exactly that row's 8 lanes of the one-row kernel (no
/// fold), so the float steps run on two pairs per vector directly.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn k4_tile<const FIVE: bool, const BB: usize, const QS: usize, const C: usize>(
    w: &[&[u8]; TILE],
    a: &[&[u8]; C],
) -> Out<C> {
    let nb = tile_blocks(w, BB, a, 292);
    let mut acc = [Accs::new(); C];
    let wr = row_blocks::<TILE, BB>(w, nb);
    let ab = row_blocks::<C, 292>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, BB, _MM_HINT_T1>(w, i, nb);
        let x: [&[u8; BB]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; C] = core::array::from_fn(|c| &ab[c][i]);
        let sm = k4_scale_mins_x4(core::array::from_fn(|r| sub::<4, 16, BB>(x[r])));
        // Rows 2p, 2p, 2p + 1, 2p + 1 in the 128-bit lanes: pair p's
        // scales at hand for `pair_scales`.
        let sp = [_mm512_shuffle_i64x2::<0b01_01_00_00>(sm, sm), _mm512_shuffle_i64x2::<0b11_11_10_10>(sm, sm)];
        // Q5_K's qh byte l, bit g: fifth bit of element 32g + l; shifted
        // right by two per 64 elements, so bits 0 and 1 are the current pair.
        let mut qh: [__m512i; 2] = core::array::from_fn(|p| {
            if FIVE {
                join256(sub::<16, 32, BB>(x[2 * p]), sub::<16, 32, BB>(x[2 * p + 1]))
            } else {
                _mm512_setzero_si512()
            }
        });
        // sumi[c][p]: rows 2p (low half) and 2p + 1 (high) against act c.
        let mut sumi = [[_mm512_setzero_si512(); 2]; C];
        // Unrolled (LLVM kept the loop), so that each sub-block's scale
        // shuffle index is a constant.
        unroll!(j in [0, 1, 2, 3] => {
            // Sub-blocks 2j (low nibbles) and 2j + 1 (high) of each pair.
            let mut codes = [[_mm512_setzero_si512(); 2]; 2];
            let mut scales = [[_mm512_setzero_si512(); 2]; 2];
            for p in 0..2 {
                let (q0, _) = sub::<QS, 128, BB>(x[2 * p]).as_chunks::<32>();
                let (q1, _) = sub::<QS, 128, BB>(x[2 * p + 1]).as_chunks::<32>();
                let q = join256(&q0[j], &q1[j]);
                codes[p] = k4_codes::<FIVE, 2>(q, &mut qh[p]);
                scales[p] = [2 * j, 2 * j + 1].map(|s| pair_scales(sp[p], s));
            }
            for c in 0..C {
                let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<32>();
                let a = [bcast256(&aq[2 * j]), bcast256(&aq[2 * j + 1])];
                for p in 0..2 {
                    for h in 0..2 {
                        let prod = _mm512_maddubs_epi16(codes[p][h], a[h]);
                        sumi[c][p] = dpwssd(sumi[c][p], prod, scales[p][h]);
                    }
                }
            }
        });
        // Spread once per block to the accumulators' layouts; times dy
        // per activation (the same products as the one-row kernel's
        // `d_dmin · dy`, lane by lane).
        let d_dmin = _mm512_castps256_ps512(f16_pair_rows::<TILE, BB>(&x));
        let spread = |i: [i32; 4]| {
            let [a, b, c, d] = i;
            _mm512_permutexvar_ps(_mm512_set_epi32(d, d, d, d, c, c, c, c, b, b, b, b, a, a, a, a), d_dmin)
        };
        let d_rows = [spread([0, 0, 2, 2]), spread([4, 4, 6, 6])];
        let dmin_rows = spread([1, 3, 5, 7]);
        // Row r's 8 mins as i16 in 128-bit lane r.
        let m16 = _mm512_shuffle_epi8(sm, _mm512_broadcast_i32x4(_mm_set_epi16(
            0x800F_u16 as i16,
            0x800E_u16 as i16,
            0x800D_u16 as i16,
            0x800C_u16 as i16,
            0x800B_u16 as i16,
            0x800A_u16 as i16,
            0x8009_u16 as i16,
            0x8008_u16 as i16,
        )));
        for c in 0..C {
            let dy = _mm512_set1_ps(f32::from_le_bytes(*sub::<0, 4, 292>(y[c])));
            let d = d_rows.map(|d| _mm512_mul_ps(d, dy));
            let mins = _mm512_madd_epi16(m16, _mm512_broadcast_i32x4(bsums32(y[c])));
            acc[c].add_block::<FIVE>(&sumi[c], d, _mm512_mul_ps(dmin_rows, dy), mins);
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| acc[c].result::<FIVE>(r)))
}

/// The float accumulators of one activation against the tile's 4 rows,
/// two or four (row, activation) pairs per vector: every float operation
/// is lane-wise, so each pair's lanes see exactly the one-row kernel's
/// 256-bit (`finish_block`) or 128-bit (min terms) sequence.
#[derive(Clone, Copy)]
struct Accs {
    /// Rows 2p (low 256 bits) and 2p + 1 (high): `acc` of `finish_block`.
    two: [__m512; 2],
    /// Row r's min-term accumulator (`acc_m`) in 128-bit lane r.
    mins: __m512,
}

impl Accs {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn new() -> Self {
        Accs { two: [_mm512_setzero_ps(); 2], mins: _mm512_setzero_ps() }
    }

    /// One super-block: `sumi[p]` rows 2p and 2p + 1's integer lanes, `d[p]`
    /// d·dy of rows 2p and 2p + 1 in the halves, `dmin` row r's dmin·dy in
    /// 128-bit lane r, `mins` row r's four i32 min sums in 128-bit lane r.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn add_block<const FIVE: bool>(
        &mut self,
        sumi: &[__m512i; 2],
        d: [__m512; 2],
        dmin: __m512,
        mins: __m512i,
    ) {
        for p in 0..2 {
            self.two[p] = _mm512_fmadd_ps(d[p], _mm512_cvtepi32_ps(sumi[p]), self.two[p]);
        }
        // Q5_K keeps one f32 per row: the sum of its four i32 (in lane 0
        // of each 128-bit lane, as `hsum_epi32`), then lane 0's FMA.
        let mins = if FIVE {
            let v = _mm512_add_epi32(mins, _mm512_unpackhi_epi64(mins, mins));
            _mm512_add_epi32(v, _mm512_shuffle_epi32::<0b01>(v))
        } else {
            mins
        };
        self.mins = _mm512_fnmadd_ps(dmin, _mm512_cvtepi32_ps(mins), self.mins);
    }

    /// Row r's result: `hsum_ps(acc) + finish_mins(acc_m)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn result<const FIVE: bool>(&self, r: usize) -> f32 {
        let m: [__m128; 4] = [
            _mm512_castps512_ps128(self.mins),
            _mm512_extractf32x4_ps::<1>(self.mins),
            _mm512_extractf32x4_ps::<2>(self.mins),
            _mm512_extractf32x4_ps::<3>(self.mins),
        ];
        hsum_half(self.two[r / 2], r) + finish_mins::<FIVE>(m[r])
    }
}

/// The Q4_K/Q5_K scales and mins of 4 rows' blocks at once (`w[r]`: row
/// r's 16 bytes at block offset 4): 128-bit lane r holds row r's 8 scales
/// (bytes 0..8) and 8 mins (bytes 8..16): [`crate::simd::k4_scale_mins`]
/// on the three 32-bit words `a, b, c` of each lane, in vector registers
/// (the tiles run it next to 512-bit work): scales `a & 0x3f…`,
/// `(c & 0x0f…) | ((a >> 6) & 0x03…) << 4`, mins `b & 0x3f…`,
/// `((c >> 4) & 0x0f…) | ((b >> 6) & 0x03…) << 4`. The 4 bytes after the
/// 12 scale bytes are ignored. One vector for 4 rows, where a 128-bit
/// version per row cost ~4x the operations (Q4_K tile 80 -> 84 GMAC/s).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn k4_scale_mins_x4(w: [&[u8; 16]; 4]) -> __m512i {
    let lo = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(ld128(w[0])), ld128(w[1]));
    let hi = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(ld128(w[2])), ld128(w[3]));
    let v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
    // Lanes (a, c, b, c) and (a, a, b, b) of each row's words (a, b, c).
    let x = _mm512_shuffle_epi32::<0b10_01_10_00>(v);
    let y = _mm512_shuffle_epi32::<0b01_01_00_00>(v);
    let per_lane = |a: i32, b: i32, c: i32, d: i32| _mm512_broadcast_i32x4(_mm_set_epi32(a, b, c, d));
    let low = _mm512_and_si512(
        _mm512_srlv_epi32(x, per_lane(4, 0, 0, 0)),
        per_lane(0x0f0f_0f0f, 0x3f3f_3f3f, 0x0f0f_0f0f, 0x3f3f_3f3f),
    );
    let top = _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<6>(y), _mm512_set1_epi8(0x03)));
    _mm512_or_si512(low, _mm512_and_si512(top, per_lane(-1, 0, -1, 0)))
}

/// Sub-block `s`'s scale of two rows as i16 words: row 2p's in the low
/// half, row 2p + 1's in the high, from `sp` (lanes 2p, 2p, 2p + 1, 2p + 1
/// of [`k4_scale_mins_x4`]). The words `vpdpwssd` multiplies each pair of
/// i16 products by.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pair_scales(sp: __m512i, s: usize) -> __m512i {
    // Byte s, then a zero byte (index bit 7), in every word.
    _mm512_shuffle_epi8(sp, _mm512_set1_epi16((0x8000 | s as u16) as i16))
}

/// `fold256` of two rows at once: `a`'s folded lanes low, `b`'s high.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn fold_two(a: __m512i, b: __m512i) -> __m512i {
    _mm512_add_epi32(
        _mm512_shuffle_i64x2::<0b01_00_01_00>(a, b),
        _mm512_shuffle_i64x2::<0b11_10_11_10>(a, b),
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q4_k<const C: usize>(w: &[&[u8]; TILE], a: &[&[u8]; C]) -> Out<C> {
    k4_tile::<false, 144, 16, C>(w, a)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q5_k<const C: usize>(w: &[&[u8]; TILE], a: &[&[u8]; C]) -> Out<C> {
    k4_tile::<true, 176, 48, C>(w, a)
}

/// The integer part of Q2_K and Q3_K (16-element sub-blocks, one row per
/// vector; Q6_K has its own two-row loop in [`q6_k`]): row r's
/// unsigned codes for half `h` of a block (`codes(x, h)`: elements
/// 128h..128h+64 and 128h+64..128h+128) against each activation, `maddubs`
/// (for Q3_K less `maddubs(4, a)`, its offset, per activation as in the
/// one-row kernel) and `vpdpwssd` with the sub-block scales `sc[r]`
/// (`scale_pairs_i8`). Returns `sumi[c][r]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn sixteens<const BB: usize, const OFFSET4: bool>(
    x: &[&[u8; BB]; TILE],
    y: &[&[u8; 292]; TILE],
    sc: &[__m512i; TILE],
    codes: impl Fn(&[u8; BB], usize) -> [__m512i; 2],
) -> [[__m512i; TILE]; TILE] {
    let mut sumi = [[_mm512_setzero_si512(); TILE]; TILE];
    for h in 0..2 {
        let u: [[__m512i; 2]; TILE] = core::array::from_fn(|r| codes(x[r], h));
        let s: [[__m512i; 2]; TILE] =
            core::array::from_fn(|r| [quad_scales(sc[r], 2 * h), quad_scales(sc[r], 2 * h + 1)]);
        for c in 0..TILE {
            let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<64>();
            let a = [ld512(&aq[2 * h]), ld512(&aq[2 * h + 1])];
            let off = a.map(|a| _mm512_maddubs_epi16(_mm512_set1_epi8(4), a));
            for r in 0..TILE {
                for q in 0..2 {
                    let p = _mm512_maddubs_epi16(u[r][q], a[q]);
                    let p = if OFFSET4 { _mm512_sub_epi16(p, off[q]) } else { p };
                    sumi[c][r] = dpwssd(sumi[c][r], p, s[r][q]);
                }
            }
        }
    }
    sumi
}

/// `a` in the low eight lanes, `b` in the high eight.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pair_bcast(a: f32, b: f32) -> __m512 {
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_set1_ps(a))),
        _mm256_castps_pd(_mm256_set1_ps(b)),
    ))
}

/// Two 256-bit integer vectors as one (`a` low).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn join256i(a: __m256i, b: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b)
}

/// Q6_K: as the AVX2 `q2k_q3k_q6k::q6_k`, per pair, with two rows per
/// vector as in [`k4_tile`]: 32 elements of rows 2p and 2p + 1 in the two
/// halves (the AVX2 kernel's code vectors), so each half's i32 lanes are
/// that row's 8 lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q6_k<const C: usize>(w: &[&[u8]; TILE], a: &[&[u8]; C]) -> Out<C> {
    let nb = tile_blocks(w, 210, a, 292);
    let m4 = _mm512_set1_epi8(0x0F);
    let bits = |b: i8| _mm512_set1_epi8(b);
    // acc[c][p]: rows 2p (low 256 bits) and 2p + 1 (high) against activation c.
    let mut acc = [[_mm512_setzero_ps(); 2]; C];
    let wr = row_blocks::<TILE, 210>(w, nb);
    let ab = row_blocks::<C, 292>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, 210, _MM_HINT_T1>(w, i, nb);
        let x: [&[u8; 210]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; C] = core::array::from_fn(|c| &ab[c][i]);
        let raw: [__m128i; TILE] = core::array::from_fn(|r| ld128(sub::<192, 16, 210>(x[r])));
        let sc = raw.map(|s| scale_pairs_i8(s));
        let mut sumi = [[_mm512_setzero_si512(); 2]; C];
        // Unrolled, so that the scale permutes' indices are constants.
        unroll!(h in [0, 1] => {
            // codes[p][q]: elements 128h + 32q.. of rows 2p, 2p + 1.
            let mut codes = [[_mm512_setzero_si512(); 4]; 2];
            let mut scales = [[_mm512_setzero_si512(); 4]; 2];
            for p in 0..2 {
                let (r0, r1) = (x[2 * p], x[2 * p + 1]);
                let (ql0, _) = sub::<0, 128, 210>(r0).as_chunks::<32>();
                let (ql1, _) = sub::<0, 128, 210>(r1).as_chunks::<32>();
                let (qh0, _) = sub::<128, 64, 210>(r0).as_chunks::<32>();
                let (qh1, _) = sub::<128, 64, 210>(r1).as_chunks::<32>();
                let l0 = join256(&ql0[2 * h], &ql1[2 * h]);
                let l1 = join256(&ql0[2 * h + 1], &ql1[2 * h + 1]);
                let hb = join256(&qh0[h], &qh1[h]);
                codes[p] = [
                    _mm512_or_si512(
                        _mm512_and_si512(l0, m4),
                        _mm512_slli_epi16::<4>(_mm512_and_si512(hb, bits(0x03))),
                    ),
                    _mm512_or_si512(
                        _mm512_and_si512(l1, m4),
                        _mm512_slli_epi16::<2>(_mm512_and_si512(hb, bits(0x0C))),
                    ),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(l0), m4),
                        _mm512_and_si512(hb, bits(0x30)),
                    ),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(l1), m4),
                        _mm512_srli_epi16::<2>(_mm512_and_si512(hb, bits(-64))),
                    ),
                ];
                scales[p] = core::array::from_fn(|q| pair_scales16(sc[2 * p], sc[2 * p + 1], 8 * h + 2 * q));
            }
            for c in 0..C {
                let (aq, _) = sub::<4, 256, 292>(y[c]).as_chunks::<32>();
                for q in 0..4 {
                    let a = bcast256(&aq[4 * h + q]);
                    for p in 0..2 {
                        let prod = _mm512_maddubs_epi16(codes[p][q], a);
                        sumi[c][p] = dpwssd(sumi[c][p], prod, scales[p][q]);
                    }
                }
            }
        });
        let d: [f32; TILE] =
            core::array::from_fn(|r| _mm_cvtss_f32(f16x4(u64::from(u16_at::<208, 210>(x[r])))));
        // Rows 2p and 2p + 1's scales as i16, for the offsets of a pair.
        let sc16: [__m512i; 2] = core::array::from_fn(|p| {
            join256i(_mm256_cvtepi8_epi16(raw[2 * p]), _mm256_cvtepi8_epi16(raw[2 * p + 1]))
        });
        for c in 0..C {
            let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y[c]));
            let bsums = bcast256(sub::<260, 32, 292>(y[c]));
            // Lane-wise as the one-row kernel's 256-bit steps (`q6k_offset`,
            // then the FMA).
            for p in 0..2 {
                let offset = _mm512_slli_epi32::<5>(_mm512_madd_epi16(bsums, sc16[p]));
                let lanes = _mm512_sub_epi32(sumi[c][p], offset);
                let dd = pair_bcast(d[2 * p] * dy, d[2 * p + 1] * dy);
                acc[c][p] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(lanes), acc[c][p]);
            }
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| hsum_half(acc[c][r / 2], r)))
}

/// The scale words of 16-element sub-blocks `s` and `s + 1` of two rows
/// (`scale_pairs_i8` vectors): `lo`'s in 128-bit lanes 0 and 1, `hi`'s in
/// lanes 2 and 3, as the one-row AVX2 kernel multiplies 32 elements.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pair_scales16(lo: __m512i, hi: __m512i, s: usize) -> __m512i {
    let (a, b) = (s as i32, s as i32 + 1);
    let (c, d) = (16 + a, 16 + b);
    let idx = _mm512_set_epi32(d, d, d, d, c, c, c, c, b, b, b, b, a, a, a, a);
    _mm512_permutex2var_epi32(lo, idx, hi)
}

/// Q3_K: as `q2k_q3k_q6k::q3_k`, per pair; two pairs per float vector.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q3_k(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out<TILE> {
    let nb = tile_blocks(w, 110, a, 292);
    let (m3, m4) = (_mm512_set1_epi8(3), _mm512_set1_epi8(4));
    let mut acc = [[_mm512_setzero_ps(); 2]; TILE];
    let wr = row_blocks::<TILE, 110>(w, nb);
    let ab = row_blocks::<TILE, 292>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, 110, _MM_HINT_T1>(w, i, nb);
        let x: [&[u8; 110]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; TILE] = core::array::from_fn(|c| &ab[c][i]);
        let sc: [__m512i; TILE] =
            core::array::from_fn(|r| scale_pairs_i8(q3k_scales(sub::<94, 16, 110>(x[r]))));
        let sumi = sixteens::<110, true>(&x, &y, &sc, |x, h| {
            // hmask byte l, bit g: high bit of element 32g + l (low half
            // at the even group, high half at the odd one), 4 bits per half.
            let hm = bcast256(sub::<0, 32, 110>(x));
            let hm = _mm512_mask_srli_epi16(hm, HIGH_HALF_W, hm, 1);
            let hm = if h == 0 { hm } else { _mm512_srli_epi16::<4>(hm) };
            let (qs, _) = sub::<32, 64, 110>(x).as_chunks::<32>();
            let q = bcast256(&qs[h]);
            let q = _mm512_mask_srli_epi16(q, HIGH_HALF_W, q, 2);
            let h01 = _mm512_and_si512(_mm512_slli_epi16::<2>(hm), m4);
            let h23 = _mm512_and_si512(hm, m4);
            [
                _mm512_or_si512(_mm512_and_si512(q, m3), h01),
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(q), m3), h23),
            ]
        });
        let d: [f32; TILE] =
            core::array::from_fn(|r| _mm_cvtss_f32(f16x4(u64::from(u16_at::<108, 110>(x[r])))));
        for c in 0..TILE {
            let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y[c]));
            for p in 0..2 {
                let lanes = fold_two(sumi[c][2 * p], sumi[c][2 * p + 1]);
                let dd = pair_bcast(d[2 * p] * dy, d[2 * p + 1] * dy);
                acc[c][p] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(lanes), acc[c][p]);
            }
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| hsum_half(acc[c][r / 2], r)))
}

/// Q2_K: as `q2k_q3k_q6k::q2_k`, per pair; two pairs per float vector.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q2_k(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> Out<TILE> {
    let nb = tile_blocks(w, 84, a, 292);
    let m3 = _mm512_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0F);
    let mut acc = [[_mm512_setzero_ps(); 2]; TILE];
    let wr = row_blocks::<TILE, 84>(w, nb);
    let ab = row_blocks::<TILE, 292>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, 84, _MM_HINT_T1>(w, i, nb);
        let x: [&[u8; 84]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let y: [&[u8; 292]; TILE] = core::array::from_fn(|c| &ab[c][i]);
        let raw: [__m128i; TILE] = core::array::from_fn(|r| ld128(sub::<0, 16, 84>(x[r])));
        let sc = raw.map(|s| scale_pairs_i8(_mm_and_si128(s, m4)));
        let sumi = sixteens::<84, false>(&x, &y, &sc, |x, h| {
            let (qs, _) = sub::<16, 64, 84>(x).as_chunks::<32>();
            let q = bcast256(&qs[h]);
            let q = _mm512_mask_srli_epi16(q, HIGH_HALF_W, q, 2);
            [_mm512_and_si512(q, m3), _mm512_and_si512(_mm512_srli_epi16::<4>(q), m3)]
        });
        // Rows 2p and 2p + 1's mins as i16; (d, dmin) per row.
        let mins: [__m512i; 2] = core::array::from_fn(|p| {
            let m = |r: usize| _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(raw[r]), m4));
            join256i(m(2 * p), m(2 * p + 1))
        });
        let dm: [__m128; TILE] = core::array::from_fn(|r| f16x4(u64::from(u32_at::<80, 84>(x[r]))));
        let (d, dmin): ([f32; TILE], [f32; TILE]) = (
            core::array::from_fn(|r| _mm_cvtss_f32(dm[r])),
            core::array::from_fn(|r| _mm_cvtss_f32(_mm_movehdup_ps(dm[r]))),
        );
        for c in 0..TILE {
            let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y[c]));
            let bsums = bcast256(sub::<260, 32, 292>(y[c]));
            for p in 0..2 {
                let msum = _mm512_madd_epi16(mins[p], bsums);
                let dmin2 = pair_bcast(dmin[2 * p] * dy, dmin[2 * p + 1] * dy);
                acc[c][p] = _mm512_fnmadd_ps(dmin2, _mm512_cvtepi32_ps(msum), acc[c][p]);
                let lanes = fold_two(sumi[c][2 * p], sumi[c][2 * p + 1]);
                let d2 = pair_bcast(d[2 * p] * dy, d[2 * p + 1] * dy);
                acc[c][p] = _mm512_fmadd_ps(d2, _mm512_cvtepi32_ps(lanes), acc[c][p]);
            }
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| hsum_half(acc[c][r / 2], r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scale_mins_x4_matches_the_scalar_unpacking() {
        if !super::super::available() {
            eprintln!("k4_scale_mins_x4: no AVX-512 VNNI on this CPU, skipped");
            return;
        }
        crate::simd::check_k4_scale_mins_xn::<4>(|w| {
            // SAFETY: the tier's features were detected above.
            let v = unsafe { k4_scale_mins_x4(core::array::from_fn(|r| &w[r])) };
            let mut got = [0u8; 64];
            // SAFETY: `got` is 64 writable bytes; `storeu` is unaligned.
            unsafe { _mm512_storeu_si512(got.as_mut_ptr().cast(), v) };
            got.to_vec()
        });
    }
}
