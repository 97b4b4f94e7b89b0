//! K-quants against Q8_K activations, in the float order of llama.cpp's x86
//! kernels (`ggml_vec_dot_q{2..6}_K_q8_K`, `__AVX2__` branch; the
//! `-march=native` AVX-512 build compiles that same branch, the K-quants
//! having no AVX-512 path), so that results are bit-identical to
//! llama.cpp's on x86-64.
//!
//! The integer part is exact; what has to match is which integers are
//! converted to f32 together and how the floats are accumulated:
//!
//! - Per super-block, 8 i32 lanes: the AVX2 kernels work on 32 consecutive
//!   elements per vector (`maddubs` then `madd` with the sub-block scale),
//!   so lane k holds `Σ sc·q·a` over the elements e with `(e mod 32) / 4 =
//!   k`. One FMA per lane and block: `acc_k = fma(d_a·d_w, lane_k, acc_k)`,
//!   then [`hsum8`] (ggml's `hsum_float_8`).
//! - Q6_K works on the unsigned codes `q + 32` and subtracts the offset per
//!   lane with the activation block sums: lane k minus
//!   `32·(bsums[2k]·sc[2k] + bsums[2k+1]·sc[2k+1])`. The integer total is
//!   the same, the lane split is not.
//! - The min terms of the type-1 formats (all with `dmin' = −d_a·dmin_w`):
//!   Q2_K puts `m[2k]·bsums[2k] + m[2k+1]·bsums[2k+1]` into the same 8
//!   lanes, *before* the scale FMA of the block; Q4_K keeps a separate
//!   4-lane accumulator of `m[2k]·s[2k] + m[2k+1]·s[2k+1]` (s = the bsums of
//!   32 elements), summed `(l0 + l2) + (l1 + l3)` and added after
//!   [`hsum8`]; Q5_K keeps one f32 `summs = fma(dmin', Σ m_j·s_j, summs)`
//!   (GCC contracts that line into an FMA), added after [`hsum8`].

use crate::blocks::{iter_blocks, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::fp::f16_to_f32;

use super::hsum8;

/// The 8 i32 lanes of one super-block: `lane[(e % 32) / 4] += sc[e / group]
/// · q[e] · a[e]`.
#[inline]
fn lanes<T: Copy + Into<i32>, S: Copy + Into<i32>>(
    q: &[T; 256],
    a: &[i8; 256],
    sc: &[S],
    group: usize,
) -> [i32; 8] {
    let mut lane = [0i32; 8];
    for (e, (&q, &a)) in q.iter().zip(a).enumerate() {
        lane[(e % 32) / 4] += sc[e / group].into() * q.into() * i32::from(a);
    }
    lane
}

/// `acc_k = fma(d, lane_k, acc_k)` for the 8 lanes.
#[inline]
fn fma_lanes<const L: usize>(acc: &mut [f32; L], d: f32, lane: &[i32; L]) {
    for (acc, &l) in acc.iter_mut().zip(lane) {
        *acc = d.mul_add(l as f32, *acc);
    }
}

/// `x[2k]·y[2k] + x[2k+1]·y[2k+1]` in lane k (`madd_epi16`).
#[inline]
fn madd<const L: usize>(x: &[i32], y: &[i32]) -> [i32; L] {
    core::array::from_fn(|k| x[2 * k] * y[2 * k] + x[2 * k + 1] * y[2 * k + 1])
}

fn bsums(y: &BlockQ8K) -> [i32; 16] {
    y.bsums.map(i32::from)
}

/// The bsums of 32 elements: `bsums[2j] + bsums[2j+1]`.
fn bsums32(y: &BlockQ8K) -> [i32; 8] {
    core::array::from_fn(|j| i32::from(y.bsums[2 * j]) + i32::from(y.bsums[2 * j + 1]))
}

pub(super) fn dot_q2_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in iter_blocks::<BlockQ2K>(w).zip(iter_blocks::<BlockQ8K>(a)) {
        let sc = x.scales.map(|s| s & 0xF);
        let m = x.scales.map(|s| i32::from(s >> 4));
        let d = y.d() * f16_to_f32(x.d);
        let dmin = -(y.d() * f16_to_f32(x.dmin));
        fma_lanes(&mut acc, dmin, &madd::<8>(&m, &bsums(&y)));
        fma_lanes(&mut acc, d, &lanes(&x.quants(), &y.qs, &sc, 16));
    }
    hsum8(&acc)
}

pub(super) fn dot_q3_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in iter_blocks::<BlockQ3K>(w).zip(iter_blocks::<BlockQ8K>(a)) {
        let d = y.d() * f16_to_f32(x.d);
        fma_lanes(&mut acc, d, &lanes(&x.quants(), &y.qs, &x.scales(), 16));
    }
    hsum8(&acc)
}

pub(super) fn dot_q4_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut acc_m = [0.0f32; 4];
    for (x, y) in iter_blocks::<BlockQ4K>(w).zip(iter_blocks::<BlockQ8K>(a)) {
        let (sc, m) = x.scale_mins();
        let d = y.d() * f16_to_f32(x.d);
        let dmin = -(y.d() * f16_to_f32(x.dmin));
        fma_lanes(&mut acc_m, dmin, &madd::<4>(&m.map(i32::from), &bsums32(&y)));
        fma_lanes(&mut acc, d, &lanes(&x.quants(), &y.qs, &sc, 32));
    }
    hsum8(&acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]))
}

pub(super) fn dot_q5_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (x, y) in iter_blocks::<BlockQ5K>(w).zip(iter_blocks::<BlockQ8K>(a)) {
        let (sc, m) = x.scale_mins();
        let d = y.d() * f16_to_f32(x.d);
        let dmin = -(y.d() * f16_to_f32(x.dmin));
        let msum: i32 = m.iter().zip(bsums32(&y)).map(|(&m, s)| i32::from(m) * s).sum();
        summs = dmin.mul_add(msum as f32, summs);
        fma_lanes(&mut acc, d, &lanes(&x.quants(), &y.qs, &sc, 32));
    }
    hsum8(&acc) + summs
}

pub(super) fn dot_q6_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in iter_blocks::<BlockQ6K>(w).zip(iter_blocks::<BlockQ8K>(a)) {
        let codes = x.quants().map(|q| i32::from(q) + 32);
        let sc = x.scales.map(i32::from);
        let mut lane = lanes(&codes, &y.qs, &sc, 16);
        for (l, off) in lane.iter_mut().zip(madd::<8>(&bsums(&y), &sc)) {
            *l -= off << 5;
        }
        let d = y.d() * f16_to_f32(x.d);
        fma_lanes(&mut acc, d, &lane);
    }
    hsum8(&acc)
}
