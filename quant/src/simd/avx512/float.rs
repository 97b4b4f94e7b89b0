//! F32·F32, F16·F16 and BF16·BF16, AVX-512: sixteen elements per vector.
//! F32 in llama.cpp's order (see `scalar::float::dot_f32`): one FMA
//! chain per row, `_mm512_reduce_add_ps`'s tree; other lengths than
//! multiples of 16 take the scalar reference. F16 and BF16: two FMA
//! chains per row, a scalar tail for the last n % 32.

use core::arch::x86_64::*;

use super::util::{ld_bf16, ld_ph, ld_ps};

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot<const R: usize, const VB: usize, const EB: usize>(
    w: [&[u8]; R],
    a: &[u8],
    load: impl Fn(&[u8; VB]) -> __m512,
    one: impl Fn(&[u8]) -> f32,
) -> [f32; R] {
    let n = w.iter().fold(a.len() / EB, |m, r| m.min(r.len() / EB));
    let nv = n / 16;
    let av = &a.as_chunks::<VB>().0[..nv];
    let wv: [&[[u8; VB]]; R] = core::array::from_fn(|r| &w[r].as_chunks::<VB>().0[..nv]);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut i = 0;
    while i + 1 < nv {
        let (a0, a1) = (load(&av[i]), load(&av[i + 1]));
        for r in 0..R {
            acc[r][0] = _mm512_fmadd_ps(load(&wv[r][i]), a0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(load(&wv[r][i + 1]), a1, acc[r][1]);
        }
        i += 2;
    }
    if i < nv {
        let a0 = load(&av[i]);
        for r in 0..R {
            acc[r][0] = _mm512_fmadd_ps(load(&wv[r][i]), a0, acc[r][0]);
        }
    }
    core::array::from_fn(|r| {
        let mut tail = 0.0f32;
        for e in 16 * nv..n {
            tail += one(&w[r][EB * e..EB * e + EB]) * one(&a[EB * e..EB * e + EB]);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1])) + tail
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn dot_f32<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    let n = w.iter().fold(a.len() / 4, |m, r| m.min(r.len() / 4));
    if !n.is_multiple_of(16) {
        return core::array::from_fn(|r| crate::scalar::dot_f32_bytes(&w[r][..4 * n], &a[..4 * n]));
    }
    let av = &a.as_chunks::<64>().0[..n / 16];
    let mut acc = [_mm512_setzero_ps(); R];
    for (i, x) in av.iter().enumerate() {
        let x = ld_ps(x);
        for r in 0..R {
            acc[r] = _mm512_fmadd_ps(ld_ps(&w[r].as_chunks::<64>().0[i]), x, acc[r]);
        }
    }
    core::array::from_fn(|r| {
        let mut lanes = [0.0f32; 16];
        // SAFETY: 16 f32 lanes into 16 floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r]) };
        crate::scalar::reduce16(&lanes)
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn dot_f16<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot::<R, 32, 2>(
        w,
        a,
        |b| ld_ph(b),
        |b| crate::simd::avx2::util::f16(u16::from_le_bytes([b[0], b[1]])),
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) fn dot_bf16<const R: usize>(w: [&[u8]; R], a: &[u8]) -> [f32; R] {
    dot::<R, 32, 2>(
        w,
        a,
        |b| ld_bf16(b),
        |b| crate::fp::bf16_to_f32(u16::from_le_bytes([b[0], b[1]])),
    )
}
