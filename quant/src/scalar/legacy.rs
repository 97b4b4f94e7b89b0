//! Legacy 32-element formats against Q8_0 / Q8_1 activations, in the float
//! order of llama.cpp's x86 (AVX2; AVX-512 builds use the same code)
//! kernels, so that results are bit-identical to llama.cpp's on x86-64:
//! per block, 8 lanes of exact 4-element integer sums, one FMA per lane
//! with the block's scale product, a fixed horizontal sum at the end, and
//! for type-1 formats the min terms summed separately in block order.
//! (ggml's portable `_generic` kernels use a different order; they do not
//! run on x86.)

use crate::blocks::{
    iter_blocks, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1,
};
use crate::fp::f16_to_f32;

/// The 8 lanes of one block's products as llama.cpp's x86 kernels hold them
/// (`maddubs`+`madd`, or `vpdpbusd`): lane k is the exact integer sum of
/// elements 4k..4k+3, converted to f32.
#[inline]
pub(super) fn lanes<T: Copy + Into<i32>>(q: &[T; 32], a: &[i8; 32]) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    for (k, o) in out.iter_mut().enumerate() {
        let s: i32 = (4 * k..4 * k + 4)
            .map(|i| q[i].into() * i32::from(a[i]))
            .sum();
        *o = s as f32;
    }
    out
}

/// `acc_k = fma(d, lane_k, acc_k)` for the 8 lanes of one block.
#[inline]
pub(super) fn fma_lanes(acc: &mut [f32; 8], d: f32, lanes: &[f32; 8]) {
    for (a, &l) in acc.iter_mut().zip(lanes) {
        *a = d.mul_add(l, *a);
    }
}

/// Horizontal sum of 8 lanes in the order of ggml's `hsum_float_8`.
pub(crate) fn hsum8(v: &[f32; 8]) -> f32 {
    let r = [v[4] + v[0], v[5] + v[1], v[6] + v[2], v[7] + v[3]];
    let r = [r[0] + r[2], r[1] + r[3]];
    r[0] + r[1]
}

/// Type-0 formats (x = d·q): per block `acc = fma(d_w·d_a, lanes, acc)`,
/// then [`hsum8`].
macro_rules! type0 {
    ($name:ident, $block:ty, $act:ty) => {
        pub(super) fn $name(w: &[u8], a: &[u8], _n: usize) -> f32 {
            let mut acc = [0.0f32; 8];
            for (x, y) in iter_blocks::<$block>(w).zip(iter_blocks::<$act>(a)) {
                let d = f16_to_f32(x.d) * f16_to_f32(y.d);
                fma_lanes(&mut acc, d, &lanes(&x.quants(), &y.qs));
            }
            hsum8(&acc)
        }
    };
}

/// Type-1 formats (x = d·q + m): as type 0, plus the min terms `m_w·s_a`
/// summed in block order; result `hsum8(acc) + mins`.
macro_rules! type1 {
    ($name:ident, $block:ty) => {
        pub(super) fn $name(w: &[u8], a: &[u8], _n: usize) -> f32 {
            let mut acc = [0.0f32; 8];
            let mut mins = 0.0f32;
            for (x, y) in iter_blocks::<$block>(w).zip(iter_blocks::<BlockQ8_1>(a)) {
                mins += f16_to_f32(x.m) * f16_to_f32(y.s);
                let d = f16_to_f32(x.d) * f16_to_f32(y.d);
                fma_lanes(&mut acc, d, &lanes(&x.quants(), &y.qs));
            }
            hsum8(&acc) + mins
        }
    };
}

type0!(dot_q4_0, BlockQ4_0, BlockQ8_0);
type0!(dot_q5_0, BlockQ5_0, BlockQ8_0);

type1!(dot_q4_1, BlockQ4_1);

/// Q8_0 · Q8_0: as the type-0 formats, the codes being the stored bytes.
pub(super) fn dot_q8_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in iter_blocks::<BlockQ8_0>(w).zip(iter_blocks::<BlockQ8_0>(a)) {
        let d = f16_to_f32(x.d) * f16_to_f32(y.d);
        fma_lanes(&mut acc, d, &lanes(&x.qs, &y.qs));
    }
    hsum8(&acc)
}
type1!(dot_q5_1, BlockQ5_1);
