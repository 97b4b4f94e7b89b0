//! Q4_0, Q8_0 · Q8_0 and Q4_1 · Q8_1 with `wide`: per block two exact
//! 16-element i16 dot products into eight i32 lanes, then one
//! `acc = d·sumi + acc` in f32 lanes (the min term of Q4_1 in a scalar).

use wide::f32x8;

use super::util::{dot_i8_i8, dot_off_i8, dot_u8_i8, i8s, low4, shr_bytes, u8s};
use crate::fp::f16_to_f32;
use crate::simd::{block, common_blocks, sub, u16_at};

pub(super) fn dot_q4_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 18, a, 34);
    let mut acc = f32x8::ZERO;
    for i in 0..nb {
        let (x, y) = (block::<18>(w, i), block::<34>(a, i));
        let qs = u8s(sub::<2, 16, 18>(x));
        let sumi = dot_off_i8(low4(qs), 8, i8s(sub::<2, 16, 34>(y)))
            + dot_off_i8(shr_bytes(qs, 4), 8, i8s(sub::<18, 16, 34>(y)));
        let d = f16_to_f32(u16_at::<0, 18>(x)) * f16_to_f32(u16_at::<0, 34>(y));
        acc = f32x8::splat(d).mul_add(sumi.round_float(), acc);
    }
    acc.reduce_add()
}

pub(super) fn dot_q8_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 34, a, 34);
    let mut acc = f32x8::ZERO;
    for i in 0..nb {
        let (x, y) = (block::<34>(w, i), block::<34>(a, i));
        let sumi = dot_i8_i8(i8s(sub::<2, 16, 34>(x)), i8s(sub::<2, 16, 34>(y)))
            + dot_i8_i8(i8s(sub::<18, 16, 34>(x)), i8s(sub::<18, 16, 34>(y)));
        let d = f16_to_f32(u16_at::<0, 34>(x)) * f16_to_f32(u16_at::<0, 34>(y));
        acc = f32x8::splat(d).mul_add(sumi.round_float(), acc);
    }
    acc.reduce_add()
}

pub(super) fn dot_q4_1(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 20, a, 36);
    let mut acc = f32x8::ZERO;
    let mut mins = 0.0f32;
    for i in 0..nb {
        let (x, y) = (block::<20>(w, i), block::<36>(a, i));
        let qs = u8s(sub::<4, 16, 20>(x));
        let sumi = dot_u8_i8(low4(qs), i8s(sub::<4, 16, 36>(y)))
            + dot_u8_i8(shr_bytes(qs, 4), i8s(sub::<20, 16, 36>(y)));
        let d = f16_to_f32(u16_at::<0, 20>(x)) * f16_to_f32(u16_at::<0, 36>(y));
        acc = f32x8::splat(d).mul_add(sumi.round_float(), acc);
        mins += f16_to_f32(u16_at::<2, 20>(x)) * f16_to_f32(u16_at::<2, 36>(y));
    }
    acc.reduce_add() + mins
}
