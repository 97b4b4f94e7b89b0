//! ggml block formats as plain Rust structs.
//!
//! Each struct is `#[repr(C)]` with the exact field order and size of its
//! ggml counterpart (ggml-common.h), built only from byte arrays and `u16`/
//! `i16` fields so that its alignment is at most 2. Blocks are never viewed
//! in place: [`Block::read`] copies one out of a byte slice of any alignment
//! field by field (little-endian), and [`Block::write`] stores one back.
//! No `unsafe` is involved.
//!
//! Besides the raw fields, each type knows its own bit layout: `quants()`
//! unpacks the per-element integer codes in element order, and `pack_quants`
//! is its inverse. Kernels and quantizers go through these, so every layout
//! lives in exactly one place.

mod kquant;
mod legacy;

pub use kquant::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};

use crate::QType;

/// A ggml block of `LEN` elements stored in `BYTES` bytes.
pub trait Block: Sized + Copy + 'static {
    const QTYPE: QType;
    /// Elements per block.
    const LEN: usize = Self::QTYPE.block_len();
    /// Bytes per block.
    const BYTES: usize = Self::QTYPE.block_bytes();

    /// Parse one block from exactly `BYTES` bytes (any alignment).
    ///
    /// # Panics
    /// If `bytes.len() != BYTES`.
    fn read(bytes: &[u8]) -> Self;

    /// Store this block into exactly `BYTES` bytes.
    ///
    /// # Panics
    /// If `out.len() != BYTES`.
    fn write(&self, out: &mut [u8]);
}

/// Iterate over the blocks of a row, parsed.
///
/// # Panics
/// (While iterating) never; a trailing partial block is ignored, so callers
/// check the length first.
pub fn iter_blocks<B: Block>(row: &[u8]) -> impl Iterator<Item = B> + '_ {
    row.chunks_exact(B::BYTES).map(B::read)
}

// ---- little helpers for field-by-field parsing ----

#[inline]
pub(crate) fn rd_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

#[inline]
pub(crate) fn rd_arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[off..off + N]);
    a
}

#[inline]
pub(crate) fn rd_i8s<const N: usize>(b: &[u8], off: usize) -> [i8; N] {
    let mut a = [0i8; N];
    for (d, s) in a.iter_mut().zip(&b[off..off + N]) {
        *d = *s as i8;
    }
    a
}

#[inline]
pub(crate) fn wr_u16(out: &mut [u8], off: usize, v: u16) {
    out[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn wr_i8s(out: &mut [u8], off: usize, v: &[i8]) {
    for (d, s) in out[off..off + v.len()].iter_mut().zip(v) {
        *d = *s as u8;
    }
}

/// Compile-time check that a block struct has ggml's size and an alignment
/// of at most 2.
macro_rules! assert_block_layout {
    ($t:ty, $q:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $q.block_bytes());
        const _: () = assert!(core::mem::align_of::<$t>() <= 2);
    };
}
pub(crate) use assert_block_layout;
