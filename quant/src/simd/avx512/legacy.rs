//! The 32-element formats, AVX-512 + VNNI, in llama.cpp's x86 float order
//! (bit-identical to the scalar tier, see `crate::scalar::legacy`).
//!
//! One block at a time, two rows per 512-bit vector: the low half holds
//! block i of row r, the high half block i of row r+1, against the
//! activation block broadcast to both halves (an odd last row goes through
//! the 256-bit form of the same steps). The codes become unsigned bytes in
//! element order (Q4_0: u = q + 8, Q5_0: u = q + 16, Q8_0: u = q + 128,
//! Q4_1/Q5_1: u = q) and `vpdpbusd` sums four u·a products per i32 lane,
//! exactly. The offset is removed through the accumulator input: it starts
//! at −offset·Σa over the same four activations (one `vpdpbusd` per block,
//! shared by all rows), so lane k is the exact Σ q·a over elements 4k..4k+3,
//! as in llama.cpp's lanes. Then per row and block, in block order:
//! `acc = fma(d_w·d_a, f32(lanes), acc)` (each row's 8 lanes see exactly
//! the scalar sequence of FMAs, the two halves being independent rows); at
//! the end `hsum_ps` per row (= ggml's `hsum_float_8`), plus for Q4_1/Q5_1
//! the min terms `m_w·s_a`, summed per row in block order in a side vector.

use core::arch::x86_64::*;

use crate::simd::avx2::util::prefetch_next;

use super::util::{ld128, ld256};
use crate::simd::avx2::util::{f16_pair_rows, f16_rows8, hsum_ps, lane, nibbles};
use crate::simd::{blocks, common_blocks, row_blocks, tile_blocks, sub, u16_at, u32_at};

/// [`nibbles`] of two rows' blocks: row r in the low half, r+1 in the high.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn nibbles2(q0: &[u8; 16], q1: &[u8; 16]) -> __m512i {
    let z0 = _mm512_broadcast_i32x4(ld128(q0));
    let z1 = _mm512_broadcast_i32x4(ld128(q1));
    let z = _mm512_mask_blend_epi64(0xF0, z0, z1);
    let z = _mm512_srlv_epi64(z, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(z, _mm512_set1_epi8(0x0F))
}

/// One row's fifth bits (bit j of `qh` = element j) added as 16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn add_fifth_bits(u: __m256i, qh: u32) -> __m256i {
    _mm256_mask_add_epi8(u, _cvtu32_mask32(qh), u, _mm256_set1_epi8(16))
}

/// Two rows' fifth bits added as 16 (row r's `qh0` to the low half).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn add_fifth_bits2(u: __m512i, qh0: u32, qh1: u32) -> __m512i {
    let k = _cvtu64_mask64(u64::from(qh0) | (u64::from(qh1) << 32));
    _mm512_mask_add_epi8(u, k, u, _mm512_set1_epi8(16))
}

/// One activation block: its quants, and −offset·Σa per lane of four, in
/// 256-bit form and broadcast to both 512-bit halves.
pub(super) struct Act {
    pub(super) q: __m256i,
    pub(super) neg_off: __m256i,
    pub(super) q2: __m512i,
    pub(super) neg_off2: __m512i,
}

/// `wide`: computes the offset term at 512 bits (for row pairs), else at
/// 256 bits (one row; the 512-bit fields are then unused).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn act(qs: &[u8; 32], offset: i8, wide: bool) -> Act {
    let q = ld256(qs);
    let q2 = _mm512_broadcast_i64x4(q);
    if offset == 0 {
        return Act {
            q,
            neg_off: _mm256_setzero_si256(),
            q2,
            neg_off2: _mm512_setzero_si512(),
        };
    }
    if wide {
        let off = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(offset), q2);
        let neg_off2 = _mm512_sub_epi32(_mm512_setzero_si512(), off);
        Act {
            q,
            neg_off: _mm512_castsi512_si256(neg_off2),
            q2,
            neg_off2,
        }
    } else {
        let off = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(offset), q);
        let neg_off = _mm256_sub_epi32(_mm256_setzero_si256(), off);
        Act {
            q,
            neg_off,
            q2,
            neg_off2: _mm512_broadcast_i64x4(neg_off),
        }
    }
}

/// Lanes `i` (low half) and `j` (high half) of `v`, each spread over 8 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) fn spread2(v: __m256, i: usize, j: usize) -> __m512 {
    let (i, j) = (i as i32, j as i32);
    let idx = _mm512_set_epi32(j, j, j, j, j, j, j, j, i, i, i, i, i, i, i, i);
    _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(v))
}

/// The per-row integer step: the unsigned codes of one row (256-bit) and
/// of two rows (512-bit, first row low).
pub(super) struct Codes<One, Two> {
    pub(super) one: One,
    pub(super) two: Two,
}

/// The accumulators of R rows: `two[p]` holds rows 2p (low) and 2p+1
/// (high) for p < R/2, `one` the last row when R is odd.
struct Accs<const R: usize> {
    two: [__m512; R],
    one: __m256,
}

impl<const R: usize> Accs<R> {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn new() -> Self {
        Accs {
            two: [_mm512_setzero_ps(); R],
            one: _mm256_setzero_ps(),
        }
    }

    /// One block of every row: `acc = fma(d_r, f32(lanes_r), acc)` with
    /// d_r in lane `S·r` of `d`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn step<const WB: usize, const S: usize>(
        &mut self,
        x: &[&[u8; WB]; R],
        y: &Act,
        d: __m256,
        codes: &Codes<impl Fn(&[u8; WB]) -> __m256i, impl Fn(&[u8; WB], &[u8; WB]) -> __m512i>,
    ) {
        for p in 0..R / 2 {
            let u = (codes.two)(x[2 * p], x[2 * p + 1]);
            let sumi = _mm512_dpbusd_epi32(y.neg_off2, u, y.q2);
            let dd = spread2(d, S * 2 * p, S * (2 * p + 1));
            self.two[p] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sumi), self.two[p]);
        }
        if R % 2 == 1 {
            let u = (codes.one)(x[R - 1]);
            let sumi = _mm256_dpbusd_epi32(y.neg_off, u, y.q);
            self.one = _mm256_fmadd_ps(lane(d, S * (R - 1)), _mm256_cvtepi32_ps(sumi), self.one);
        }
    }

    /// [`Self::step`] with the row pairs' codes already made (`u[p]` for
    /// rows 2p, 2p+1; R even), so that one decode serves several
    /// activations.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn step_codes<const S: usize>(&mut self, u: &[__m512i], y: &Act, d: __m256) {
        for (p, &u) in u.iter().enumerate().take(R / 2) {
            let sumi = _mm512_dpbusd_epi32(y.neg_off2, u, y.q2);
            let dd = spread2(d, S * 2 * p, S * (2 * p + 1));
            self.two[p] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sumi), self.two[p]);
        }
    }

    /// Row `r`'s horizontal sum.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn hsum(&self, r: usize) -> f32 {
        if r >= 2 * (R / 2) {
            return hsum_ps(self.one);
        }
        let v = _mm512_castps_pd(self.two[r / 2]);
        let half = if r.is_multiple_of(2) {
            _mm512_castpd512_pd256(v)
        } else {
            _mm512_extractf64x4_pd::<1>(v)
        };
        hsum_ps(_mm256_castpd_ps(half))
    }
}

/// Type-0 driver (Q8_0 activations, weights starting with d).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot0<const R: usize, const WB: usize>(
    w: &[&[u8]; R],
    a: &[u8],
    offset: i8,
    codes: &Codes<impl Fn(&[u8; WB]) -> __m256i, impl Fn(&[u8; WB], &[u8; WB]) -> __m512i>,
) -> [f32; R] {
    let nb = common_blocks(w, WB, a, 34);
    let mut acc = Accs::<R>::new();
    let wr = row_blocks::<R, WB>(w, nb);
    let ab = blocks::<34>(a, nb);
    // Indexing below `nb` (every slice's length) needs no bounds checks.
    for i in 0..nb {
        prefetch_next::<R, WB, _MM_HINT_T0>(w, i, nb);
        let y = &ab[i];
        let ya = act(sub::<2, 32, 34>(y), offset, R >= 2);
        let x: [&[u8; WB]; R] = core::array::from_fn(|r| &wr[r][i]);
        let da = _mm256_cvtph_ps(_mm_set1_epi16(u16_at::<0, 34>(y) as i16));
        let d = _mm256_mul_ps(f16_rows8::<R, 0, WB>(&x), da);
        acc.step::<WB, 1>(&x, &ya, d, codes);
    }
    core::array::from_fn(|r| acc.hsum(r))
}

/// Type-1 driver (Q8_1 activations, weights starting with d, m): as
/// [`dot0`], plus `mins += m_w·s_a` per row and block; result
/// `hsum(acc) + mins`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot1<const R: usize, const WB: usize>(
    w: &[&[u8]; R],
    a: &[u8],
    codes: &Codes<impl Fn(&[u8; WB]) -> __m256i, impl Fn(&[u8; WB], &[u8; WB]) -> __m512i>,
) -> [f32; R] {
    let nb = common_blocks(w, WB, a, 36);
    let mut acc = Accs::<R>::new();
    // Lane 2r+1: row r's min terms (lanes 2r: unused sums of d products).
    let mut mins = _mm256_setzero_ps();
    let wr = row_blocks::<R, WB>(w, nb);
    let ab = blocks::<36>(a, nb);
    // Indexing below `nb` (every slice's length) needs no bounds checks.
    for i in 0..nb {
        prefetch_next::<R, WB, _MM_HINT_T0>(w, i, nb);
        let y = &ab[i];
        let ya = act(sub::<4, 32, 36>(y), 0, R >= 2);
        let x: [&[u8; WB]; R] = core::array::from_fn(|r| &wr[r][i]);
        let ds = _mm256_cvtph_ps(_mm_set1_epi32(u32_at::<0, 36>(y) as i32));
        // (d_w·d_a, m_w·s_a) of row r in lanes (2r, 2r+1).
        let dm = _mm256_mul_ps(f16_pair_rows::<R, WB>(&x), ds);
        mins = _mm256_add_ps(mins, dm);
        acc.step::<WB, 2>(&x, &ya, dm, codes);
    }
    core::array::from_fn(|r| acc.hsum(r) + _mm256_cvtss_f32(lane(mins, 2 * r + 1)))
}

pub(crate) use crate::simd::TILE;

/// [`dot0`] for a tile of 4 rows × 4 activations: each block's codes are
/// made once and used against the four activations; every (row,
/// activation) pair sees exactly [`dot0`]'s sequence of operations.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot0_tile<const WB: usize>(
    w: &[&[u8]; TILE],
    a: &[&[u8]; TILE],
    offset: i8,
    codes: &Codes<impl Fn(&[u8; WB]) -> __m256i, impl Fn(&[u8; WB], &[u8; WB]) -> __m512i>,
) -> [[f32; TILE]; TILE] {
    let nb = tile_blocks(w, WB, a, 34);
    let mut acc: [Accs<TILE>; TILE] = core::array::from_fn(|_| Accs::new());
    let wr = row_blocks::<TILE, WB>(w, nb);
    let ab = row_blocks::<TILE, 34>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, WB, _MM_HINT_T0>(w, i, nb);
        let x: [&[u8; WB]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let u = [(codes.two)(x[0], x[1]), (codes.two)(x[2], x[3])];
        let dw = f16_rows8::<TILE, 0, WB>(&x);
        for (c, acc) in acc.iter_mut().enumerate() {
            let y = &ab[c][i];
            let ya = act(sub::<2, 32, 34>(y), offset, true);
            let da = _mm256_cvtph_ps(_mm_set1_epi16(u16_at::<0, 34>(y) as i16));
            acc.step_codes::<1>(&u, &ya, _mm256_mul_ps(dw, da));
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| acc[c].hsum(r)))
}

/// [`dot1`] for a tile of 4 rows × 4 activations (see [`dot0_tile`]).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot1_tile<const WB: usize>(
    w: &[&[u8]; TILE],
    a: &[&[u8]; TILE],
    codes: &Codes<impl Fn(&[u8; WB]) -> __m256i, impl Fn(&[u8; WB], &[u8; WB]) -> __m512i>,
) -> [[f32; TILE]; TILE] {
    let nb = tile_blocks(w, WB, a, 36);
    let mut acc: [Accs<TILE>; TILE] = core::array::from_fn(|_| Accs::new());
    let mut mins = [_mm256_setzero_ps(); TILE];
    let wr = row_blocks::<TILE, WB>(w, nb);
    let ab = row_blocks::<TILE, 36>(a, nb);
    for i in 0..nb {
        prefetch_next::<TILE, WB, _MM_HINT_T0>(w, i, nb);
        let x: [&[u8; WB]; TILE] = core::array::from_fn(|r| &wr[r][i]);
        let u = [(codes.two)(x[0], x[1]), (codes.two)(x[2], x[3])];
        let dmw = f16_pair_rows::<TILE, WB>(&x);
        for c in 0..TILE {
            let y = &ab[c][i];
            let ya = act(sub::<4, 32, 36>(y), 0, true);
            let ds = _mm256_cvtph_ps(_mm_set1_epi32(u32_at::<0, 36>(y) as i32));
            let dm = _mm256_mul_ps(dmw, ds);
            mins[c] = _mm256_add_ps(mins[c], dm);
            acc[c].step_codes::<2>(&u, &ya, dm);
        }
    }
    core::array::from_fn(|c| core::array::from_fn(|r| acc[c].hsum(r) + _mm256_cvtss_f32(lane(mins[c], 2 * r + 1))))
}

/// Q4_0 (offset 8) and Q4_1: nibbles at byte `Q`.
macro_rules! nibble_codes {
    ($q:literal, $wb:literal) => {
        Codes {
            one: |x: &[u8; $wb]| nibbles(sub::<$q, 16, $wb>(x)),
            two: |x0: &[u8; $wb], x1: &[u8; $wb]| {
                nibbles2(sub::<$q, 16, $wb>(x0), sub::<$q, 16, $wb>(x1))
            },
        }
    };
}

/// Q5_0 (offset 16) and Q5_1: fifth bits at byte `h`, nibbles at `q`.
macro_rules! five_bit_codes {
    ($h:literal, $q:literal, $wb:literal) => {
        Codes {
            one: |x: &[u8; $wb]| {
                add_fifth_bits(nibbles(sub::<$q, 16, $wb>(x)), u32_at::<$h, $wb>(x))
            },
            two: |x0: &[u8; $wb], x1: &[u8; $wb]| {
                let u = nibbles2(sub::<$q, 16, $wb>(x0), sub::<$q, 16, $wb>(x1));
                add_fifth_bits2(u, u32_at::<$h, $wb>(x0), u32_at::<$h, $wb>(x1))
            },
        }
    };
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q4_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot0::<R, 18>(&w, a, 8, &nibble_codes!(2, 18))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q5_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot0::<R, 22>(&w, a, 16, &five_bit_codes!(2, 6, 22))
}

/// Q8_0's codes: the signed quants with the sign bit flipped.
macro_rules! q8_0_codes {
    () => {
        Codes {
            one: |x: &[u8; 34]| _mm256_xor_si256(ld256(sub::<2, 32, 34>(x)), _mm256_set1_epi8(-128)),
            two: |x0: &[u8; 34], x1: &[u8; 34]| {
                let q = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(ld256(sub::<2, 32, 34>(x0))),
                    ld256(sub::<2, 32, 34>(x1)),
                );
                _mm512_xor_si512(q, _mm512_set1_epi8(-128))
            },
        }
    };
}

/// Q8_0: the signed codes with the sign bit flipped (u = q + 128), against
/// the offset −128 (the unsigned byte 128).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q8_0<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot0::<R, 34>(&w, a, -128, &q8_0_codes!())
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q4_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot1::<R, 20>(&w, a, &nibble_codes!(4, 20))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn q5_1<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot1::<R, 24>(&w, a, &five_bit_codes!(4, 8, 24))
}

/// Tile kernels (4 rows × 4 activations) of the 32-element formats.
pub(crate) mod tile {
    use super::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(crate) fn q4_0(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> [[f32; TILE]; TILE] {
        dot0_tile::<18>(w, a, 8, &nibble_codes!(2, 18))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(crate) fn q5_0(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> [[f32; TILE]; TILE] {
        dot0_tile::<22>(w, a, 16, &five_bit_codes!(2, 6, 22))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(crate) fn q8_0(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> [[f32; TILE]; TILE] {
        dot0_tile::<34>(w, a, -128, &q8_0_codes!())
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(crate) fn q4_1(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> [[f32; TILE]; TILE] {
        dot1_tile::<20>(w, a, &nibble_codes!(4, 20))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(crate) fn q5_1(w: &[&[u8]; TILE], a: &[&[u8]; TILE]) -> [[f32; TILE]; TILE] {
        dot1_tile::<24>(w, a, &five_bit_codes!(4, 8, 24))
    }
}
