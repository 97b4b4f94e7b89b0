//! F32·F32 and F16·F16 with `wide`: f32 lanes, two FMA chains, a scalar
//! tail; F16 is converted to f32 in vector lanes with integer operations.

use wide::bytemuck::cast;
use wide::{f32x8, i32x8};

use crate::fp::f16_to_f32;

fn f32s(b: &[u8; 32]) -> f32x8 {
    f32x8::new(core::array::from_fn(|k| {
        f32::from_le_bytes([b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]])
    }))
}

pub(super) fn dot_f32(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let n = w.len().min(a.len()) / 4;
    if !n.is_multiple_of(16) || !cfg!(target_feature = "fma") {
        // llama.cpp's order needs fused multiply-adds (see
        // `scalar::float::dot_f32`).
        return crate::scalar::dot_f32_bytes(&w[..4 * n], &a[..4 * n]);
    }
    let nv = n / 8;
    let (wv, av) = (&w.as_chunks::<32>().0[..nv], &a.as_chunks::<32>().0[..nv]);
    let mut acc = [f32x8::ZERO; 2];
    for (k, (x, y)) in wv.iter().zip(av).enumerate() {
        acc[k % 2] = f32s(x).mul_add(f32s(y), acc[k % 2]);
    }
    // hsum8's tree (the rest of `_mm512_reduce_add_ps`'s).
    let t = (acc[0] + acc[1]).to_array();
    let q = [t[0] + t[4], t[1] + t[5], t[2] + t[6], t[3] + t[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// Eight f16 (16 little-endian bytes) to f32, exactly, for every bit
/// pattern: the 15 exponent+mantissa bits shifted into f32 position give
/// the value times 2^-112 (also for subnormals), so one multiply rescales;
/// inf/NaN (exponent 31) get exponent 255 instead.
fn f16s(b: &[u8; 16]) -> f32x8 {
    let h = i32x8::new(core::array::from_fn(|k| {
        i32::from(u16::from_le_bytes([b[2 * k], b[2 * k + 1]]))
    }));
    let em: i32x8 = h & i32x8::splat(0x7fff);
    let sign: i32x8 = (h & i32x8::splat(0x8000)) << 16_u32;
    let two_112 = f32x8::splat(f32::from_bits((127 + 112) << 23));
    let scaled = cast::<i32x8, f32x8>(em << 13_u32) * two_112;
    // All ones where the exponent is 31 (em + 0x400 reaches bit 15).
    let special: i32x8 = ((em + i32x8::splat(0x400)) << 16_u32) >> 31_u32;
    let infnan: i32x8 = (em << 13_u32) | i32x8::splat(0x7f80_0000);
    let bits = (cast::<f32x8, i32x8>(scaled) & !special) | (infnan & special);
    cast::<i32x8, f32x8>(bits | sign)
}

pub(super) fn dot_f16(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let n = w.len().min(a.len()) / 2;
    let nv = n / 8;
    let (wv, av) = (&w.as_chunks::<16>().0[..nv], &a.as_chunks::<16>().0[..nv]);
    let mut acc = [f32x8::ZERO; 2];
    for (k, (x, y)) in wv.iter().zip(av).enumerate() {
        acc[k % 2] = f16s(x).mul_add(f16s(y), acc[k % 2]);
    }
    let mut tail = 0.0f32;
    for e in 8 * nv..n {
        let v = |b: &[u8]| f16_to_f32(u16::from_le_bytes([b[2 * e], b[2 * e + 1]]));
        tail += v(w) * v(a);
    }
    // hsum8's tree (the rest of `_mm512_reduce_add_ps`'s).
    let t = (acc[0] + acc[1]).to_array();
    let q = [t[0] + t[4], t[1] + t[5], t[2] + t[6], t[3] + t[7]];
    (q[0] + q[2]) + (q[1] + q[3]) + tail
}

#[cfg(test)]
mod tests {
    #[test]
    fn f16_conversion_is_exact_for_every_bit_pattern() {
        for hi in 0..=255u8 {
            let mut b = [0u8; 16];
            for lo in (0..=255u8).step_by(8) {
                for k in 0..8 {
                    b[2 * k] = lo + k as u8;
                    b[2 * k + 1] = hi;
                }
                let got = super::f16s(&b).to_array();
                for (k, g) in got.iter().enumerate() {
                    let want = crate::fp::f16_to_f32(u16::from_le_bytes([b[2 * k], hi]));
                    assert!(
                        g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                        "{:#06x}: {g} vs {want}",
                        u16::from_le_bytes([b[2 * k], hi])
                    );
                }
            }
        }
    }
}
