//! MXFP4 · Q8_0 in the float order of llama.cpp's x86 kernel
//! (`ggml_vec_dot_mxfp4_q8_0` in ggml-cpu/arch/x86/quants.c, its
//! `__AVX2__` branch, which AVX-512 builds compile too), so that results
//! are bit-identical to llama.cpp's on x86-64:
//!
//! - blocks in pairs: the 8 lanes of exact 4-element integer sums of block
//!   2p go into one accumulator, those of block 2p+1 into a second, each
//!   with one FMA by its scale product `f16(d_a)·2^(e−128)`;
//! - then the two accumulators added lane by lane and summed horizontally
//!   in `hsum_float_8`'s order;
//! - an odd last block is added after that as one integer sum:
//!   `fma(d, f32(Σ q·a), sum)` (GCC contracts `sumf += d * sumi` into
//!   `vfmadd231ss`; checked in the disassembly of both llama.cpp builds).
//!
//! ggml's portable `_generic` kernel sums block by block instead; it does
//! not run on x86 (the fixtures compare with it within rounding).

use super::legacy::{fma_lanes, hsum8, lanes};
use crate::blocks::{Block, BlockMxfp4, BlockQ8_0};
use crate::fp::{e8m0_to_f32_half, f16_to_f32};

/// One block's scale product, in ggml's operand order.
fn scale(x: &BlockMxfp4, y: &BlockQ8_0) -> f32 {
    f16_to_f32(y.d) * e8m0_to_f32_half(x.e)
}

pub(super) fn dot_mxfp4(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = (w.len() / BlockMxfp4::BYTES).min(a.len() / BlockQ8_0::BYTES);
    let block = |i: usize| {
        let x = BlockMxfp4::read(&w[i * BlockMxfp4::BYTES..(i + 1) * BlockMxfp4::BYTES]);
        let y = BlockQ8_0::read(&a[i * BlockQ8_0::BYTES..(i + 1) * BlockQ8_0::BYTES]);
        (x, y)
    };
    let mut acc = [[0.0f32; 8]; 2];
    for i in 0..nb / 2 * 2 {
        let (x, y) = block(i);
        fma_lanes(&mut acc[i % 2], scale(&x, &y), &lanes(&x.values(), &y.qs));
    }
    let sum: [f32; 8] = core::array::from_fn(|k| acc[0][k] + acc[1][k]);
    let mut s = hsum8(&sum);
    if nb % 2 == 1 {
        let (x, y) = block(nb - 1);
        let sumi: i32 = x.values().iter().zip(&y.qs).map(|(&q, &a)| i32::from(q) * i32::from(a)).sum();
        s = scale(&x, &y).mul_add(sumi as f32, s);
    }
    s
}
