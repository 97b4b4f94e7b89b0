//! K-quants against Q8_K activations.
//!
//! The integer part is exact, so only the float order matters. ggml's
//! generic kernels (except Q2_K) keep 8 i32 lanes per super-block, lane
//! `e % 8` collecting `sc·q·a` of element e; each lane is scaled into an f32
//! lane sum (`sums[l] += d·aux[l]`), and the 8 lane sums are added to the
//! result only at the very end. The min terms of Q4_K/Q5_K go straight into
//! the result per block (`sumf -= dmin·Σ bsums·m`). We keep all of that.

use crate::blocks::{iter_blocks, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::fp::f16_to_f32;

/// Per-lane integer sums: `aux[e % 8] += sc(e / group)·q[e]·a[e]`. Integer
/// sums are exact, so products are summed per group and lane first and then
/// scaled once.
#[inline]
fn lanes<T: Copy + Into<i32>, S: Copy + Into<i32>>(
    q: &[T; 256],
    a: &[i8; 256],
    sc: &[S],
    group: usize,
) -> [i32; 8] {
    let mut aux = [0i32; 8];
    for (g, (qg, ag)) in q.chunks_exact(group).zip(a.chunks_exact(group)).enumerate() {
        let mut t = [0i32; 8];
        for (q8, a8) in qg.chunks_exact(8).zip(ag.chunks_exact(8)) {
            for l in 0..8 {
                t[l] += q8[l].into() * i32::from(a8[l]);
            }
        }
        let s: i32 = sc[g].into();
        for (aux, t) in aux.iter_mut().zip(t) {
            *aux += s * t;
        }
    }
    aux
}

/// Σ_g bsums[g]·m[g / per], the activation-side sum for the min terms.
#[inline]
fn min_sum(bsums: &[i16; 16], m: &[u8], per: usize) -> i32 {
    bsums
        .iter()
        .enumerate()
        .map(|(g, &s)| i32::from(s) * i32::from(m[g / per]))
        .sum()
}

#[inline]
fn add_lanes(sums: &mut [f32; 8], d: f32, aux: &[i32; 8]) {
    for (s, &a) in sums.iter_mut().zip(aux) {
        *s += d * a as f32;
    }
}

#[inline]
fn finish(mut sumf: f32, sums: &[f32; 8]) -> f32 {
    for &s in sums {
        sumf += s;
    }
    sumf
}

/// Q2_K keeps one i32 per block: `sumf += (d_a·d)·isum − (d_a·dmin)·Σ bsums·m`.
pub(super) fn dot_q2_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in iter_blocks::<BlockQ2K>(w).zip(iter_blocks::<BlockQ8K>(a)) {
        let sc = x.scales.map(|s| s & 0xF);
        let m = x.scales.map(|s| s >> 4);
        let isum: i32 = lanes(&x.quants(), &y.qs, &sc, 16).iter().sum();
        let summs = min_sum(&y.bsums, &m, 1);
        let dall = y.d() * f16_to_f32(x.d);
        let dmin = y.d() * f16_to_f32(x.dmin);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

pub(super) fn dot_q3_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in iter_blocks::<BlockQ3K>(w).zip(iter_blocks::<BlockQ8K>(a)) {
        let aux = lanes(&x.quants(), &y.qs, &x.scales(), 16);
        add_lanes(&mut sums, f16_to_f32(x.d) * y.d(), &aux);
    }
    finish(0.0, &sums)
}

fn dot_k4_style<'a>(
    blocks: impl Iterator<Item = (u16, u16, [u8; 8], [u8; 8], [u8; 256])>,
    acts: impl Iterator<Item = BlockQ8K> + 'a,
) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for ((d, dmin, sc, m, q), y) in blocks.zip(acts) {
        let sumi = min_sum(&y.bsums, &m, 2);
        let aux = lanes(&q, &y.qs, &sc, 32);
        add_lanes(&mut sums, f16_to_f32(d) * y.d(), &aux);
        let dmin = f16_to_f32(dmin) * y.d();
        sumf -= dmin * sumi as f32;
    }
    finish(sumf, &sums)
}

pub(super) fn dot_q4_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let blocks = iter_blocks::<BlockQ4K>(w).map(|x| {
        let (sc, m) = x.scale_mins();
        (x.d, x.dmin, sc, m, x.quants())
    });
    dot_k4_style(blocks, iter_blocks::<BlockQ8K>(a))
}

pub(super) fn dot_q5_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let blocks = iter_blocks::<BlockQ5K>(w).map(|x| {
        let (sc, m) = x.scale_mins();
        (x.d, x.dmin, sc, m, x.quants())
    });
    dot_k4_style(blocks, iter_blocks::<BlockQ8K>(a))
}

pub(super) fn dot_q6_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in iter_blocks::<BlockQ6K>(w).zip(iter_blocks::<BlockQ8K>(a)) {
        let aux = lanes(&x.quants(), &y.qs, &x.scales, 16);
        add_lanes(&mut sums, f16_to_f32(x.d) * y.d(), &aux);
    }
    finish(0.0, &sums)
}
