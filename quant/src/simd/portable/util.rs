//! Byte-vector helpers for the `wide` kernels.

use wide::bytemuck::cast;
use wide::{i16x16, i32x8, i8x16, u16x8, u8x16};

#[inline(always)]
pub(super) fn u8s(b: &[u8; 16]) -> u8x16 {
    u8x16::new(*b)
}

#[inline(always)]
pub(super) fn i8s(b: &[u8; 16]) -> i8x16 {
    cast::<[u8; 16], i8x16>(*b)
}

/// Each byte shifted right by `n` (through 16-bit lanes, then masked).
#[inline(always)]
pub(super) fn shr_bytes(v: u8x16, n: u32) -> u8x16 {
    let mask = u8x16::splat(0xFF >> n);
    cast::<u16x8, u8x16>(cast::<u8x16, u16x8>(v) >> n) & mask
}

/// Low nibbles of 16 bytes.
#[inline(always)]
pub(super) fn low4(v: u8x16) -> u8x16 {
    v & u8x16::splat(0x0F)
}

/// Σ pairs of `u`·`a` (u unsigned bytes, a signed bytes) as eight i32, exact.
#[inline(always)]
pub(super) fn dot_u8_i8(u: u8x16, a: i8x16) -> i32x8 {
    i16x16::from(u).dot(i16x16::from_i8x16(a))
}

/// Σ pairs of `(u − off)`·`a` as eight i32, exact.
#[inline(always)]
pub(super) fn dot_off_i8(u: u8x16, off: i16, a: i8x16) -> i32x8 {
    (i16x16::from(u) - i16x16::splat(off)).dot(i16x16::from_i8x16(a))
}

/// Σ pairs of `q`·`a` for signed bytes, exact.
#[inline(always)]
pub(super) fn dot_i8_i8(q: i8x16, a: i8x16) -> i32x8 {
    i16x16::from_i8x16(q).dot(i16x16::from_i8x16(a))
}
