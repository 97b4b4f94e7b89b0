//! The 32-element formats with `wide`, in llama.cpp's x86 float order
//! (bit-identical to the scalar tier, see `crate::scalar::legacy`).
//!
//! Per block, the 32 codes and the 32 activations are held as sixteen i16
//! lanes each, split into even elements (lane m = element 2m) and odd ones
//! (lane m = element 2m+1). `dot` (pairwise i16 products summed into i32)
//! of the even vectors gives lane j = e[4j]·a[4j] + e[4j+2]·a[4j+2], of the
//! odd ones the other two terms, so their sum has lane j = the exact sum
//! over elements 4j..4j+3, as llama.cpp's `maddubs`+`madd` lanes. Then per
//! block `acc = fma(d_w·d_a, f32(lanes), acc)` ([`super::util::fma8`], a
//! true fused multiply-add everywhere), the 8-lane sum in ggml's
//! `hsum_float_8` order, and for Q4_1/Q5_1 the min terms `m_w·s_a` summed
//! in block order in a scalar.

use wide::bytemuck::cast;
use wide::{f32x8, i16x16, u16x16};

use super::util::fma8;
use crate::fp::f16_to_f32;
use crate::scalar::hsum8;
use crate::simd::{blocks, common_blocks, sub, u16_at, u32_at};

/// 32 bytes as sixteen i16 lanes (lane m = bytes 2m, 2m+1, little-endian).
#[inline(always)]
fn i16s(b: &[u8; 32]) -> i16x16 {
    cast::<[u8; 32], i16x16>(*b)
}

/// Signed bytes split into (even elements, odd elements), sign-extended.
#[inline(always)]
fn split_i8(b: &[u8; 32]) -> (i16x16, i16x16) {
    let v = i16s(b);
    ((v << 8) >> 8, v >> 8)
}

/// 16 packed nibbles (low nibbles elements 0..16, high nibbles 16..32) as
/// (even elements, odd elements), unsigned.
#[inline(always)]
fn split_nibbles(qs: &[u8; 16]) -> (u16x16, u16x16) {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(qs);
    b[16..].copy_from_slice(qs);
    // Lanes 0..8 hold the byte pairs of elements (2m, 2m+1) in their low
    // nibbles, lanes 8..16 the same bytes for elements (16+2m, 17+2m) in
    // their high nibbles. ×16 in the low lanes moves the low nibbles up, so
    // that in every lane bits 4..8 are the even element, bits 12..16 the
    // odd one.
    let v = cast::<[u8; 32], u16x16>(b) * u16x16::new(LOW16_HIGH1);
    ((v >> 4) & u16x16::splat(0x0F), v >> 12)
}
const LOW16_HIGH1: [u16; 16] = [16, 16, 16, 16, 16, 16, 16, 16, 1, 1, 1, 1, 1, 1, 1, 1];

/// The fifth bits (bit e of `qh` = element e) as 16 or 0, split like
/// [`split_nibbles`]: even lane m gets bit 2m, odd lane m bit 2m+1.
#[inline(always)]
fn split_fifth_bits(qh: u32) -> (u16x16, u16x16) {
    let (lo, hi) = (qh as u16, (qh >> 16) as u16);
    let h = u16x16::new([
        lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi,
    ]);
    // Lane m needs bit 2(m mod 8) (even) or 2(m mod 8)+1 (odd) of its half;
    // the multiplier moves that bit to bit 15, then down to bit 4.
    let sixteen = u16x16::splat(0x10);
    (
        ((h * u16x16::new(TO_BIT15_EVEN)) >> 11) & sixteen,
        ((h * u16x16::new(TO_BIT15_ODD)) >> 11) & sixteen,
    )
}
const TO_BIT15_EVEN: [u16; 16] = {
    let mut m = [0u16; 16];
    let mut i = 0;
    while i < 16 {
        m[i] = 1 << (15 - 2 * (i % 8));
        i += 1;
    }
    m
};
const TO_BIT15_ODD: [u16; 16] = {
    let mut m = [0u16; 16];
    let mut i = 0;
    while i < 16 {
        m[i] = 1 << (14 - 2 * (i % 8));
        i += 1;
    }
    m
};

/// The block's 8 lanes as f32: Σ (code − offset)·a over elements 4k..4k+3.
#[inline(always)]
fn lanes(codes: (u16x16, u16x16), offset: i16, act: &[u8; 32]) -> f32x8 {
    let (ae, ao) = split_i8(act);
    let off = i16x16::splat(offset);
    let e = cast::<u16x16, i16x16>(codes.0) - off;
    let o = cast::<u16x16, i16x16>(codes.1) - off;
    (e.dot(ae) + o.dot(ao)).round_float()
}

/// Type-0 loop (Q8_0 activations): `lanes(x, a_qs)` per block.
#[inline(always)]
fn dot0<const WB: usize>(
    w: &[u8],
    a: &[u8],
    block_lanes: impl Fn(&[u8; WB], &[u8; 32]) -> f32x8,
) -> f32 {
    let nb = common_blocks(&[w], WB, a, 34);
    let mut acc = f32x8::ZERO;
    let (wb, ab) = (blocks::<WB>(w, nb), blocks::<34>(a, nb));
    for (x, y) in wb.iter().zip(ab) {
        let d = f16_to_f32(u16_at::<0, WB>(x)) * f16_to_f32(u16_at::<0, 34>(y));
        acc = fma8(d, block_lanes(x, sub::<2, 32, 34>(y)), acc);
    }
    hsum8(&acc.to_array())
}

/// Type-1 loop (Q8_1 activations, weights starting with d, m).
#[inline(always)]
fn dot1<const WB: usize>(
    w: &[u8],
    a: &[u8],
    block_lanes: impl Fn(&[u8; WB], &[u8; 32]) -> f32x8,
) -> f32 {
    let nb = common_blocks(&[w], WB, a, 36);
    let mut acc = f32x8::ZERO;
    let mut mins = 0.0f32;
    let (wb, ab) = (blocks::<WB>(w, nb), blocks::<36>(a, nb));
    for (x, y) in wb.iter().zip(ab) {
        mins += f16_to_f32(u16_at::<2, WB>(x)) * f16_to_f32(u16_at::<2, 36>(y));
        let d = f16_to_f32(u16_at::<0, WB>(x)) * f16_to_f32(u16_at::<0, 36>(y));
        acc = fma8(d, block_lanes(x, sub::<4, 32, 36>(y)), acc);
    }
    hsum8(&acc.to_array()) + mins
}

/// Nibbles plus fifth bits.
#[inline(always)]
fn five_bits(qs: &[u8; 16], qh: u32) -> (u16x16, u16x16) {
    let (e, o) = split_nibbles(qs);
    let (he, ho) = split_fifth_bits(qh);
    (e | he, o | ho)
}

pub(super) fn dot_q4_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    dot0::<18>(w, a, |x, y| lanes(split_nibbles(sub::<2, 16, 18>(x)), 8, y))
}

pub(super) fn dot_q5_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    dot0::<22>(w, a, |x, y| {
        lanes(five_bits(sub::<6, 16, 22>(x), u32_at::<2, 22>(x)), 16, y)
    })
}

/// The 8 lanes of two rows of 32 signed bytes: Σ x·y over elements
/// 4k..4k+3, exact, as f32.
#[inline(always)]
pub(super) fn q8_lanes(x: &[u8; 32], y: &[u8; 32]) -> f32x8 {
    let ((xe, xo), (ye, yo)) = (split_i8(x), split_i8(y));
    (xe.dot(ye) + xo.dot(yo)).round_float()
}

pub(super) fn dot_q8_0(w: &[u8], a: &[u8], _n: usize) -> f32 {
    dot0::<34>(w, a, |x, y| q8_lanes(sub::<2, 32, 34>(x), y))
}

pub(super) fn dot_q4_1(w: &[u8], a: &[u8], _n: usize) -> f32 {
    dot1::<20>(w, a, |x, y| lanes(split_nibbles(sub::<4, 16, 20>(x)), 0, y))
}

pub(super) fn dot_q5_1(w: &[u8], a: &[u8], _n: usize) -> f32 {
    dot1::<24>(w, a, |x, y| {
        lanes(five_bits(sub::<8, 16, 24>(x), u32_at::<4, 24>(x)), 0, y)
    })
}
