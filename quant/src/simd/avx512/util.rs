//! Loads, reductions and conversions shared by the AVX-512 kernels. As in
//! the AVX2 module, loads take fixed-size byte arrays, so they cannot leave
//! the borrowed memory.

use core::arch::x86_64::*;

pub(crate) use crate::simd::avx2::util::{f16x4, hsum_ps, ld128, ld256, q3k_scales};

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn ld512(b: &[u8; 64]) -> __m512i {
    // SAFETY: `b` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

/// Sixteen little-endian f32 from 64 bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn ld_ps(b: &[u8; 64]) -> __m512 {
    // SAFETY: `b` is 64 readable bytes; `loadu` has no alignment requirement
    // and x86 is little-endian.
    unsafe { _mm512_loadu_ps(b.as_ptr().cast()) }
}

/// Sixteen f16 (32 bytes) to f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn ld_ph(b: &[u8; 32]) -> __m512 {
    _mm512_cvtph_ps(ld256(b))
}

/// Sixteen bf16 (32 bytes) to f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn ld_bf16(b: &[u8; 32]) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(ld256(b))))
}

/// 32 bytes in both 256-bit halves.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn bcast256(b: &[u8; 32]) -> __m512i {
    _mm512_broadcast_i64x4(ld256(b))
}

/// Two 32-byte arrays as the low and high halves.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn join256(lo: &[u8; 32], hi: &[u8; 32]) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(ld256(lo)), ld256(hi))
}

/// `hsum_ps` of row r's half of a two-row accumulator (rows r − r%2 low,
/// r − r%2 + 1 high).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn hsum_half(two: __m512, r: usize) -> f32 {
    let two = _mm512_castps_pd(two);
    let half = if r.is_multiple_of(2) {
        _mm512_castpd512_pd256(two)
    } else {
        _mm512_extractf64x4_pd::<1>(two)
    };
    hsum_ps(_mm256_castpd_ps(half))
}

/// Mask of the 16-bit elements in the high 256-bit half.
pub(crate) const HIGH_HALF_W: __mmask32 = 0xFFFF_0000;

/// Sixteen signed bytes (scales) as i32 lanes holding the scale in both
/// 16-bit halves, ready for `madd_epi16` after a `permutexvar_epi32`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn scale_pairs_i8(sc: __m128i) -> __m512i {
    let s = _mm512_cvtepi8_epi32(sc);
    _mm512_or_si512(
        _mm512_and_si512(s, _mm512_set1_epi32(0xFFFF)),
        _mm512_slli_epi32::<16>(s),
    )
}

/// `_mm512_dpwssd_epi32(acc, a, b)` as one `vpdpwssd` instruction: LLVM
/// otherwise splits most of them into `vpmaddwd` + `vpaddd` (its generic
/// tuning takes VNNI accumulation as slow), two vector ops instead of one
/// on the ports the K-quant kernels are bound by (measured: ~48 of a tile's
/// 64 per super-block were split). Exact, as the intrinsic.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn dpwssd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    let mut acc = acc;
    // SAFETY: `vpdpwssd` only reads and writes the three vector registers
    // (no memory, no stack, no flags); the target feature avx512vnni is
    // enabled on this function, so the instruction exists on the CPU.
    unsafe {
        core::arch::asm!(
            "vpdpwssd {acc}, {a}, {b}",
            acc = inout(zmm_reg) acc,
            a = in(zmm_reg) a,
            b = in(zmm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}
