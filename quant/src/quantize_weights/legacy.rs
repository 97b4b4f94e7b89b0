//! ggml's reference quantizers for the legacy formats (`quantize_row_*_ref`
//! in ggml-quants.c): same scans, same constants, same float order, same
//! truncating casts, so the bytes are identical to ggml's.

use crate::blocks::{Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK};
use crate::fp::f32_to_f16;

fn per_block<B: Block>(src: &[f32], out: &mut [u8], f: impl Fn(&[f32]) -> B) {
    for (x, o) in src.chunks_exact(QK).zip(out.chunks_exact_mut(B::BYTES)) {
        f(x).write(o);
    }
}

/// The signed value of the first element with the largest |x| (strict `<`
/// scan, as ggml's type-0 quantizers do).
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline]
fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Q4_0: d = max/−8; code = min(15, trunc(x/d + 8.5)).
pub(super) fn q4_0(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let d = signed_absmax(x) / -8.0;
        let id = inv(d);
        let q: [i8; 32] = core::array::from_fn(|j| ((x[j] * id + 8.5) as i8).min(15) - 8);
        BlockQ4_0::new(f32_to_f16(d), &q)
    });
}

/// Q4_1: d = (max−min)/15, m = min; code = min(15, trunc((x−min)/d + 0.5)).
pub(super) fn q4_1(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inv(d);
        let q: [u8; 32] = core::array::from_fn(|j| (((x[j] - min) * id + 0.5) as i8).min(15) as u8);
        BlockQ4_1::new(f32_to_f16(d), f32_to_f16(min), &q)
    });
}

/// Q5_0: d = max/−16; code = min(31, trunc(x/d + 16.5)).
pub(super) fn q5_0(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let d = signed_absmax(x) / -16.0;
        let id = inv(d);
        let q: [i8; 32] = core::array::from_fn(|j| ((x[j] * id + 16.5) as i8).min(31) - 16);
        BlockQ5_0::new(f32_to_f16(d), &q)
    });
}

/// Q5_1: d = (max−min)/31, m = min; code = trunc((x−min)/d + 0.5). ggml does
/// not clamp here (the code cannot exceed 31 for finite input); we clamp to
/// keep the block valid regardless.
pub(super) fn q5_1(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inv(d);
        let q: [u8; 32] = core::array::from_fn(|j| (((x[j] - min) * id + 0.5) as u8).min(31));
        BlockQ5_1::new(f32_to_f16(d), f32_to_f16(min), &q)
    });
}

/// Q8_0 reference: d = amax/127, id = 1/d, q = roundf(x·id) (half away from
/// zero). Note this differs from the x86 activation path (see quantize_act).
pub(super) fn q8_0(src: &[f32], out: &mut [u8]) {
    per_block(src, out, |x| {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = inv(d);
        let qs: [i8; 32] = core::array::from_fn(|j| (x[j] * id).round() as i8);
        BlockQ8_0 {
            d: f32_to_f16(d),
            qs,
        }
    });
}
