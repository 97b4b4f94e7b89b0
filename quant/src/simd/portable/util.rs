//! Byte-vector helpers for the `wide` kernels.

use wide::f32x8;

/// Whether `wide`'s `f32x8::mul_add` is a fused multiply-add on this target
/// (wide 1.7: x86 compiled with FMA, or aarch64 NEON; elsewhere it is a
/// multiply and an add, two roundings).
const WIDE_MUL_ADD_IS_FUSED: bool = cfg!(any(
    all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "fma"
    ),
    all(target_arch = "aarch64", target_feature = "neon")
));

/// `d·l + acc` per lane with one rounding (a true FMA on every target):
/// `wide`'s `mul_add` where it is fused, else `f32::mul_add` per lane
/// (the hardware instruction where the target has one, a correctly
/// rounded library `fmaf` otherwise).
///
/// Measured on x86-64 (benches/kernels.rs, L2 size, portable tier, GB/s):
/// the default build (SSE2 baseline, a library `fmaf` call per lane; glibc
/// runs the FMA instruction inside) gets Q4_0 0.57, Q8_0 1.07, Q4_K 1.48,
/// Q6_K 2.5; a build with `-C target-feature=+fma` (which also turns on
/// AVX for all of `wide`) 2.9, 6.3, 2.6, 4.1. The call is not what costs:
/// an exact FMA without the instruction (f64 product and sum rounded to
/// odd, then to f32) measured slower than the call (Q4_0 0.52, Q6_K 2.0),
/// so the gap is the SSE2 code of `wide`. The portable tier is the
/// fallback where no x86 tier runs; it stays exact rather than fast.
#[inline(always)]
pub(super) fn fma8(d: f32, l: f32x8, acc: f32x8) -> f32x8 {
    if WIDE_MUL_ADD_IS_FUSED {
        f32x8::splat(d).mul_add(l, acc)
    } else {
        let (l, a) = (l.to_array(), acc.to_array());
        f32x8::new(core::array::from_fn(|k| d.mul_add(l[k], a[k])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fma8_rounds_once() {
        // (1 + 2^-12)² = 1 + 2^-11 + 2^-24: the last term is lost when the
        // product is rounded before the add, and kept by a fused one.
        let x = 1.0 + f32::EPSILON * 2048.0;
        let l = f32x8::splat(x);
        let acc = f32x8::splat(-1.0);
        let fused = x.mul_add(x, -1.0);
        assert_ne!(
            fused,
            x * x - 1.0,
            "the test values must tell the two apart"
        );
        for v in fma8(x, l, acc).to_array() {
            assert_eq!(v.to_bits(), fused.to_bits());
        }
    }
}
