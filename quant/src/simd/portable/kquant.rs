//! K-quants · Q8_K with `wide`, in llama.cpp's x86 float order
//! (bit-identical to the scalar tier, see `crate::scalar::kquant`).
//!
//! Per 32-element chunk, codes and activations are held as sixteen i16
//! lanes split into even and odd elements (as in `super::legacy`), so that
//! `dot(even) + dot(odd)` has lane k = the exact sum over elements
//! 4k..4k+3 of the chunk: llama.cpp's i32 lane k. The sub-block scale is
//! applied per lane (lanes 0..4 and 4..8 are different 16-element
//! sub-blocks for Q2_K, Q3_K and Q6_K) and summed over the super-block;
//! then per super-block one FMA per lane ([`super::util::fma8`]).

use wide::bytemuck::cast;
use wide::{f32x8, i16x16, i32x8, u16x16};

use super::util::fma8;
use crate::fp::f16_to_f32;
use crate::scalar::hsum8;
use crate::simd::{blocks, common_blocks, k4_scale_mins, sub, u16_at};

/// 32 bytes as sixteen u16 lanes (lane m = bytes 2m, 2m+1, little-endian).
#[inline(always)]
fn u16s(b: &[u8; 32]) -> u16x16 {
    cast::<[u8; 32], u16x16>(*b)
}

/// 32 bytes split into (even bytes, odd bytes), zero-extended.
#[inline(always)]
fn split_u8(v: u16x16) -> (u16x16, u16x16) {
    (v & u16x16::splat(0xFF), v >> 8)
}

/// 32 signed activation bytes split into (even, odd), sign-extended.
#[inline(always)]
fn split_i8(b: &[u8; 32]) -> (i16x16, i16x16) {
    let v = cast::<[u8; 32], i16x16>(*b);
    ((v << 8) >> 8, v >> 8)
}

/// The 8 exact i32 lanes of one 32-element chunk: Σ code·a over elements
/// 4k..4k+3 in lane k.
#[inline(always)]
fn chunk(codes: (u16x16, u16x16), act: &[u8; 32]) -> i32x8 {
    let (ae, ao) = split_i8(act);
    let e = cast::<u16x16, i16x16>(codes.0);
    let o = cast::<u16x16, i16x16>(codes.1);
    e.dot(ae) + o.dot(ao)
}

/// Lanes 0..4 scaled by `s0`, lanes 4..8 by `s1`.
#[inline(always)]
fn scale2(v: i32x8, s0: i32, s1: i32) -> i32x8 {
    v * i32x8::new([s0, s0, s0, s0, s1, s1, s1, s1])
}

/// `(e & m, o & m)`.
#[inline(always)]
fn and2((e, o): (u16x16, u16x16), m: u16) -> (u16x16, u16x16) {
    (e & u16x16::splat(m), o & u16x16::splat(m))
}

/// `(e >> n, o >> n)`.
#[inline(always)]
fn shr2((e, o): (u16x16, u16x16), n: i32) -> (u16x16, u16x16) {
    (e >> n, o >> n)
}

/// `(e | f, o | g)`.
#[inline(always)]
fn or2((e, o): (u16x16, u16x16), (f, g): (u16x16, u16x16)) -> (u16x16, u16x16) {
    (e | f, o | g)
}

fn dy(y: &[u8; 292]) -> f32 {
    f32::from_le_bytes(*sub::<0, 4, 292>(y))
}

fn bsums(y: &[u8; 292]) -> [i32; 16] {
    let (b, _) = sub::<260, 32, 292>(y).as_chunks::<2>();
    core::array::from_fn(|g| i32::from(i16::from_le_bytes(b[g])))
}

fn lanes_f32(l: i32x8) -> f32x8 {
    l.round_float()
}

pub(super) fn dot_q2_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 84, a, 292);
    let mut acc = f32x8::ZERO;
    for (x, y) in blocks::<84>(w, nb).iter().zip(blocks::<292>(a, nb)) {
        let s = sub::<0, 16, 84>(x);
        let (qs, _) = sub::<16, 64, 84>(x).as_chunks::<32>();
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<32>();
        let (sc, m) = (s.map(|b| i32::from(b & 0xF)), s.map(|b| i32::from(b >> 4)));
        let bs = bsums(y);
        let mut sumi = i32x8::ZERO;
        for h in 0..2 {
            let q = split_u8(u16s(&qs[h]));
            for j in 0..4 {
                let g = 8 * h + 2 * j;
                let codes = and2(shr2(q, 2 * j as i32), 3);
                sumi += scale2(chunk(codes, &aq[4 * h + j]), sc[g], sc[g + 1]);
            }
        }
        let prod: [i32; 8] = core::array::from_fn(|k| m[2 * k] * bs[2 * k] + m[2 * k + 1] * bs[2 * k + 1]);
        let d = dy(y) * f16_to_f32(u16_at::<80, 84>(x));
        let dmin = -(dy(y) * f16_to_f32(u16_at::<82, 84>(x)));
        acc = fma8(dmin, lanes_f32(i32x8::new(prod)), acc);
        acc = fma8(d, lanes_f32(sumi), acc);
    }
    hsum8(&acc.to_array())
}

pub(super) fn dot_q3_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 110, a, 292);
    let mut acc = f32x8::ZERO;
    for (x, y) in blocks::<110>(w, nb).iter().zip(blocks::<292>(a, nb)) {
        let sc = crate::blocks::BlockQ3K::unpack_scales(sub::<96, 12, 110>(x)).map(i32::from);
        let hm = split_u8(u16s(sub::<0, 32, 110>(x)));
        let (qs, _) = sub::<32, 64, 110>(x).as_chunks::<32>();
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<32>();
        let mut sumi = i32x8::ZERO;
        for h in 0..2 {
            let q = split_u8(u16s(&qs[h]));
            for j in 0..4 {
                let g = 8 * h + 2 * j;
                // Code q + 4: the low two bits, plus 4 where the hmask bit
                // is set; the offset 4 comes off through Σa below.
                let high = and2(shr2(hm, (4 * h + j) as i32), 1);
                let codes = or2(and2(shr2(q, 2 * j as i32), 3), (high.0 << 2, high.1 << 2));
                let off = (u16x16::splat(4), u16x16::splat(4));
                let act = &aq[4 * h + j];
                let p = chunk(codes, act) - chunk(off, act);
                sumi += scale2(p, sc[g], sc[g + 1]);
            }
        }
        let d = dy(y) * f16_to_f32(u16_at::<108, 110>(x));
        acc = fma8(d, lanes_f32(sumi), acc);
    }
    hsum8(&acc.to_array())
}

/// Q4_K and Q5_K: `q5` adds the fifth bits from `qh`.
#[inline(always)]
fn k4_style<const WB: usize, const QS: usize>(w: &[u8], a: &[u8], five: bool) -> f32 {
    let nb = common_blocks(&[w], WB, a, 292);
    let mut acc = f32x8::ZERO;
    let mut acc_m = [0.0f32; 4];
    let mut summs = 0.0f32;
    for (x, y) in blocks::<WB>(w, nb).iter().zip(blocks::<292>(a, nb)) {
        let (sc, m) = k4_scale_mins(sub::<4, 12, WB>(x));
        let (sc, m) = (sc.to_le_bytes().map(i32::from), m.to_le_bytes().map(i32::from));
        let qh = split_u8(u16s(sub::<16, 32, WB>(x)));
        let (qs, _) = sub::<QS, 128, WB>(x).as_chunks::<32>();
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<32>();
        let mut sumi = i32x8::ZERO;
        for (j, q) in qs.iter().enumerate() {
            let q = split_u8(u16s(q));
            let (mut lo, mut hi) = (and2(q, 0xF), shr2(q, 4));
            if five {
                let b = |k: usize| {
                    let v = and2(shr2(qh, k as i32), 1);
                    (v.0 << 4, v.1 << 4)
                };
                lo = or2(lo, b(2 * j));
                hi = or2(hi, b(2 * j + 1));
            }
            let s = chunk(lo, &aq[2 * j]) * i32x8::splat(sc[2 * j])
                + chunk(hi, &aq[2 * j + 1]) * i32x8::splat(sc[2 * j + 1]);
            sumi += s;
        }
        let bs = bsums(y);
        let s32: [i32; 8] = core::array::from_fn(|j| bs[2 * j] + bs[2 * j + 1]);
        let d = dy(y) * f16_to_f32(u16_at::<0, WB>(x));
        let dmin = -(dy(y) * f16_to_f32(u16_at::<2, WB>(x)));
        if five {
            let msum: i32 = m.iter().zip(s32).map(|(&m, s)| m * s).sum();
            summs = dmin.mul_add(msum as f32, summs);
        } else {
            for (k, acc_m) in acc_m.iter_mut().enumerate() {
                let p = m[2 * k] * s32[2 * k] + m[2 * k + 1] * s32[2 * k + 1];
                *acc_m = dmin.mul_add(p as f32, *acc_m);
            }
        }
        acc = fma8(d, lanes_f32(sumi), acc);
    }
    let mins = if five {
        summs
    } else {
        (acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3])
    };
    hsum8(&acc.to_array()) + mins
}

pub(super) fn dot_q4_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    k4_style::<144, 16>(w, a, false)
}

pub(super) fn dot_q5_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    k4_style::<176, 48>(w, a, true)
}

pub(super) fn dot_q6_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 210, a, 292);
    let mut acc = f32x8::ZERO;
    for (x, y) in blocks::<210>(w, nb).iter().zip(blocks::<292>(a, nb)) {
        let (ql, _) = sub::<0, 128, 210>(x).as_chunks::<32>();
        let (qh, _) = sub::<128, 64, 210>(x).as_chunks::<32>();
        let sc = sub::<192, 16, 210>(x).map(|s| i32::from(s as i8));
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<32>();
        let mut sumi = i32x8::ZERO;
        for h in 0..2 {
            let hb = split_u8(u16s(&qh[h]));
            for k in 0..4 {
                // Quarter k of half h: elements 128h + 32k + l.
                let l = split_u8(u16s(&ql[2 * h + k % 2]));
                let low = if k < 2 { and2(l, 0xF) } else { shr2(l, 4) };
                let high = and2(shr2(hb, 2 * k as i32), 3);
                let codes = or2(low, (high.0 << 4, high.1 << 4));
                let g = 8 * h + 2 * k;
                sumi += scale2(chunk(codes, &aq[4 * h + k]), sc[g], sc[g + 1]);
            }
        }
        // The code offset 32, per lane as llama.cpp subtracts it.
        let bs = bsums(y);
        let off: [i32; 8] =
            core::array::from_fn(|k| 32 * (bs[2 * k] * sc[2 * k] + bs[2 * k + 1] * sc[2 * k + 1]));
        let d = dy(y) * f16_to_f32(u16_at::<208, 210>(x));
        acc = fma8(d, lanes_f32(sumi - i32x8::new(off)), acc);
    }
    hsum8(&acc.to_array())
}
