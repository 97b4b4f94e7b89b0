//! F32·F32, F16·F16 and BF16·BF16, AVX2 + FMA + F16C: eight elements per
//! vector, two FMA chains per row (even and odd vectors), a scalar tail
//! for the last n % 16. For F32 the two chains are the low and high halves
//! of llama.cpp's 16-lane chain and `hsum_ps` of their sum finishes its
//! reduction, so it gives `scalar::float::dot_f32`'s bits; other
//! lengths than multiples of 16 take that scalar reference.

use core::arch::x86_64::*;

use super::util::{f16, hsum_ps, ld_bf16, ld_ph, ld_ps};

/// The shared loop. `VB` bytes hold eight elements of `EB` bytes; `load`
/// converts them to f32 lanes and `one` converts a single element.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot<const R: usize, const VB: usize, const EB: usize>(
    w: [&[u8]; R],
    a: &[u8],
    load: impl Fn(&[u8; VB]) -> __m256,
    one: impl Fn(&[u8]) -> f32,
) -> [f32; R] {
    let n = w.iter().fold(a.len() / EB, |m, r| m.min(r.len() / EB));
    let nv = n / 8;
    let av = &a.as_chunks::<VB>().0[..nv];
    let wv: [&[[u8; VB]]; R] = core::array::from_fn(|r| &w[r].as_chunks::<VB>().0[..nv]);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let mut i = 0;
    while i + 1 < nv {
        let (a0, a1) = (load(&av[i]), load(&av[i + 1]));
        for r in 0..R {
            acc[r][0] = _mm256_fmadd_ps(load(&wv[r][i]), a0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(load(&wv[r][i + 1]), a1, acc[r][1]);
        }
        i += 2;
    }
    if i < nv {
        let a0 = load(&av[i]);
        for r in 0..R {
            acc[r][0] = _mm256_fmadd_ps(load(&wv[r][i]), a0, acc[r][0]);
        }
    }
    core::array::from_fn(|r| {
        let mut tail = 0.0f32;
        for e in 8 * nv..n {
            tail += one(&w[r][EB * e..EB * e + EB]) * one(&a[EB * e..EB * e + EB]);
        }
        hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1])) + tail
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_f32<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let n = w.iter().fold(a.len() / 4, |m, r| m.min(r.len() / 4));
    if !n.is_multiple_of(16) {
        return core::array::from_fn(|r| crate::scalar::dot_f32_bytes(&w[r][..4 * n], &a[..4 * n]));
    }
    dot::<R, 32, 4>(
        w,
        a,
        |b| ld_ps(b),
        |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_f16<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot::<R, 16, 2>(
        w,
        a,
        |b| ld_ph(b),
        |b| f16(u16::from_le_bytes([b[0], b[1]])),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_bf16<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot::<R, 16, 2>(
        w,
        a,
        |b| ld_bf16(b),
        |b| crate::fp::bf16_to_f32(u16::from_le_bytes([b[0], b[1]])),
    )
}
