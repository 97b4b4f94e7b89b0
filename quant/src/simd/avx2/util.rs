//! Loads, reductions and conversions shared by the AVX2 kernels.
//!
//! The loads take fixed-size byte arrays, so a load can never leave the
//! borrowed memory: the array type proves the bytes exist.

use core::arch::x86_64::*;

use crate::simd::{u16_at, u32_at};

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn ld128(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn ld256(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Eight little-endian f32 from 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn ld_ps(b: &[u8; 32]) -> __m256 {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement
    // and x86 is little-endian.
    unsafe { _mm256_loadu_ps(b.as_ptr().cast()) }
}

/// Eight f16 (16 little-endian bytes) to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn ld_ph(b: &[u8; 16]) -> __m256 {
    _mm256_cvtph_ps(ld128(b))
}

/// Eight bf16 (16 little-endian bytes) to f32: the bits go to the top half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn ld_bf16(b: &[u8; 16]) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(ld128(b))))
}

/// Up to four f16 (bits in the low lanes of `bits`) to f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16x4(bits: u64) -> __m128 {
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
}

/// One f16 to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16(bits: u16) -> f32 {
    _mm_cvtss_f32(f16x4(u64::from(bits)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_ps128(v: __m128) -> f32 {
    let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_ps(v: __m256) -> f32 {
    hsum_ps128(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps::<1>(v),
    ))
}

/// The sum of eight i32 lanes (wrapping; exact where the kernels use it).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s)))
}

/// i16 pairs summed into i32 lanes (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn pairs(p16: __m256i) -> __m256i {
    _mm256_madd_epi16(p16, _mm256_set1_epi16(1))
}

/// One activation block's quants and, for weight codes stored as value +
/// offset, the i16 pairs `maddubs(offset, a)` ([`sum_off`]).
pub(crate) struct Act {
    pub(crate) q: __m256i,
    pub(crate) off: __m256i,
}

impl Act {
    /// Q8_0 block `y`, against codes stored with `offset`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn q8_0(y: &[u8; 34], offset: i8) -> Act {
        let q = ld256(crate::simd::sub::<2, 32, 34>(y));
        Act { q, off: _mm256_maddubs_epi16(_mm256_set1_epi8(offset), q) }
    }
}

/// Exact i32 lanes Σ (u − offset)·a over elements 4k..4k+3.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn sum_off(u: __m256i, y: &Act) -> __m256i {
    pairs(_mm256_sub_epi16(_mm256_maddubs_epi16(u, y.q), y.off))
}

/// Q3_K's 16 sub-block scales as signed bytes (-32..=31), from the 16 block
/// bytes 94..110 (the 12 scale bytes are bytes 2..14 of that window).
/// Low 4 bits: bytes 0..8, low nibble for sub-blocks 0..8, high nibble for
/// 8..16; top 2 bits: sub-block i in byte 8 + i%4 at bits 2·(i/4).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q3k_scales(window: &[u8; 16]) -> __m128i {
    let s = _mm_srli_si128::<2>(ld128(window));
    let m4 = _mm_set1_epi8(0x0F);
    let low = _mm_unpacklo_epi64(
        _mm_and_si128(s, m4),
        _mm_and_si128(_mm_srli_epi16::<4>(s), m4),
    );
    let top = _mm_shuffle_epi32::<0b10_10_10_10>(s);
    let top = _mm_and_si128(
        _mm_srlv_epi32(top, _mm_set_epi32(6, 4, 2, 0)),
        _mm_set1_epi8(3),
    );
    _mm_sub_epi8(
        _mm_or_si128(low, _mm_slli_epi16::<4>(top)),
        _mm_set1_epi8(32),
    )
}

/// 16 packed nibbles as 32 code bytes in element order (low nibbles are
/// elements 0..16, high nibbles 16..32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn nibbles(qs: &[u8; 16]) -> __m256i {
    let q = _mm256_broadcastsi128_si256(ld128(qs));
    let q = _mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0));
    _mm256_and_si256(q, _mm256_set1_epi8(0x0F))
}

/// Lane `i` of `v` in all eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn lane(v: __m256, i: usize) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(i as i32))
}

/// Up to four rows' f16 fields at byte `O` as f32 lanes 0..R.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16_rows<const R: usize, const O: usize, const N: usize>(
    x: &[&[u8; N]; R],
) -> __m128 {
    const { assert!(R <= 4) };
    let bits = x.iter().enumerate().fold(0u64, |b, (r, x)| {
        b | (u64::from(u16_at::<O, N>(x)) << (16 * r))
    });
    f16x4(bits)
}

/// Up to eight rows' f16 fields at byte `O` as f32 lanes 0..R.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16_rows8<const R: usize, const O: usize, const N: usize>(
    x: &[&[u8; N]; R],
) -> __m256 {
    const { assert!(R <= 8) };
    let mut half = [0u64; 2];
    for (r, x) in x.iter().enumerate() {
        half[r / 4] |= u64::from(u16_at::<O, N>(x)) << (16 * (r % 4));
    }
    _mm256_cvtph_ps(_mm_set_epi64x(half[1] as i64, half[0] as i64))
}

/// Up to four rows' f16 field pairs (d, m) at byte 0 as f32 lanes (2r, 2r+1).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16_pair_rows<const R: usize, const N: usize>(x: &[&[u8; N]; R]) -> __m256 {
    const { assert!(R <= 4) };
    let mut half = [0u64; 2];
    for (r, x) in x.iter().enumerate() {
        half[r / 2] |= u64::from(u32_at::<0, N>(x)) << (32 * (r % 2));
    }
    _mm256_cvtph_ps(_mm_set_epi64x(half[1] as i64, half[0] as i64))
}

/// Prefetches block `i` (of `BB` bytes) of every row of the *next* pass:
/// a kernel over R rows of `nb` blocks asks for the same block `R` rows
/// further on, `R·nb·BB` bytes ahead, which is where the next R rows of a
/// matrix are (its rows are contiguous; elsewhere the hint is about some
/// other address, harmless: a prefetch never faults). One hint per 64
/// bytes of the block, so with contiguous blocks every cache line of those
/// rows is asked for one pass before it is read. `HINT` is an
/// `_MM_HINT_*` level: T0 suits the 32-element formats, T1 (L2 only) the
/// K-quants.
///
/// Measured with benches/kernels.rs, one thread, AVX-512 tier, GB/s
/// (medians of 3 runs; the machine is shared, ±5 %). DRAM size: no
/// software prefetch Q4_0 8.7, Q4_K 8.4, Q6_K 8.1, Q8_0 11.1; 2 KiB ahead
/// in the same row 9.0, 9.4, 10.8, 11.9; next pass (this) 10.3, 10.9,
/// 11.6, 11.9 (Q4_0 with T1: 9.4; K-quants with T0: 9.5-10.1, 10.7-10.9).
/// Within a row, the first kilobytes of every row were never prefetched,
/// and the Q4_0 rows of a Mixtral expert are only 8 KiB. At L2 size this
/// version measured slower than the 2 KiB one (Q4_0 14.0 -> 11.6, Q8_0
/// 25.3 -> 21-22, Q4_K 15.2 -> 14.0), the hint level making no difference
/// there; weights stream from DRAM in inference, so DRAM wins.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn prefetch_next<const R: usize, const BB: usize, const HINT: i32>(
    w: &[&[u8]; R],
    i: usize,
    nb: usize,
) {
    let ahead = R * nb * BB;
    for row in w {
        for l in 0..BB.div_ceil(64) {
            // `wrapping_add` keeps the pointer arithmetic defined.
            let p = row.as_ptr().wrapping_add(i * BB + ahead + 64 * l);
            _mm_prefetch::<HINT>(p.cast());
        }
    }
}
