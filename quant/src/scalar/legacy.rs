//! Legacy 32-element formats against Q8_0 / Q8_1 activations.
//!
//! Per block: an exact i32 sum of code·activation products, then one float
//! update. The float expressions keep ggml's generic order, which differs
//! per type (see each function).

use crate::blocks::{
    iter_blocks, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1,
};
use crate::fp::f16_to_f32;

#[inline]
fn isum<T: Copy + Into<i32>>(q: &[T; 32], a: &[i8; 32]) -> i32 {
    q.iter()
        .zip(a)
        .map(|(&q, &a)| q.into() * i32::from(a))
        .sum()
}

/// `sumf += sumi·d_w·d_a`, evaluated left to right.
pub(super) fn dot_q4_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in iter_blocks::<BlockQ4_0>(w).zip(iter_blocks::<BlockQ8_0>(a)) {
        let sumi = isum(&x.quants(), &y.qs);
        sumf += sumi as f32 * f16_to_f32(x.d) * f16_to_f32(y.d);
    }
    sumf
}

/// `sumf += (d_w·d_a)·sumi + m_w·s_a`.
pub(super) fn dot_q4_1(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in iter_blocks::<BlockQ4_1>(w).zip(iter_blocks::<BlockQ8_1>(a)) {
        let sumi = isum(&x.quants(), &y.qs);
        sumf +=
            (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32 + f16_to_f32(x.m) * f16_to_f32(y.s);
    }
    sumf
}

/// `sumf += (d_w·d_a)·sumi`.
pub(super) fn dot_q5_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in iter_blocks::<BlockQ5_0>(w).zip(iter_blocks::<BlockQ8_0>(a)) {
        let sumi = isum(&x.quants(), &y.qs);
        sumf += (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32;
    }
    sumf
}

/// `sumf += (d_w·d_a)·sumi + m_w·s_a`.
pub(super) fn dot_q5_1(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in iter_blocks::<BlockQ5_1>(w).zip(iter_blocks::<BlockQ8_1>(a)) {
        let sumi = isum(&x.quants(), &y.qs);
        sumf +=
            (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32 + f16_to_f32(x.m) * f16_to_f32(y.s);
    }
    sumf
}

/// `sumf += sumi·(d_w·d_a)`.
pub(super) fn dot_q8_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in iter_blocks::<BlockQ8_0>(w).zip(iter_blocks::<BlockQ8_0>(a)) {
        let sumi = isum(&x.qs, &y.qs);
        sumf += sumi as f32 * (f16_to_f32(x.d) * f16_to_f32(y.d));
    }
    sumf
}
