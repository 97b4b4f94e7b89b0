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
mod mxfp4;

pub use kquant::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};
pub use mxfp4::{BlockMxfp4, KVALUES_MXFP4, QK_MXFP4};

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

// ---- field-by-field parsing ----

/// A block field: read from / written to its little-endian bytes at a
/// running offset (fields are packed in declaration order).
pub(crate) trait Field: Sized {
    fn take(b: &[u8], off: &mut usize) -> Self;
    fn put(&self, out: &mut [u8], off: &mut usize);
}

impl Field for u16 {
    #[inline]
    fn take(b: &[u8], off: &mut usize) -> Self {
        let v = u16::from_le_bytes([b[*off], b[*off + 1]]);
        *off += 2;
        v
    }
    #[inline]
    fn put(&self, out: &mut [u8], off: &mut usize) {
        out[*off..*off + 2].copy_from_slice(&self.to_le_bytes());
        *off += 2;
    }
}

/// Arrays of a [`Field`] element, element by element.
impl<T: Field + Copy + Default, const N: usize> Field for [T; N] {
    #[inline]
    fn take(b: &[u8], off: &mut usize) -> Self {
        let mut a = [T::default(); N];
        for v in &mut a {
            *v = T::take(b, off);
        }
        a
    }
    #[inline]
    fn put(&self, out: &mut [u8], off: &mut usize) {
        for v in self {
            v.put(out, off);
        }
    }
}

macro_rules! byte_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            #[inline]
            fn take(b: &[u8], off: &mut usize) -> Self {
                let v = b[*off] as $t;
                *off += 1;
                v
            }
            #[inline]
            fn put(&self, out: &mut [u8], off: &mut usize) {
                out[*off] = *self as u8;
                *off += 1;
            }
        }
    )*};
}
byte_field!(u8, i8);

impl Field for i16 {
    #[inline]
    fn take(b: &[u8], off: &mut usize) -> Self {
        u16::take(b, off) as i16
    }
    #[inline]
    fn put(&self, out: &mut [u8], off: &mut usize) {
        (*self as u16).put(out, off);
    }
}

/// A block struct: `#[repr(C)]` with ggml's field order, a compile-time
/// check of its size (ggml's) and alignment (at most 2), and its [`Block`]
/// impl, which reads and writes the fields in declaration order.
macro_rules! block_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident: $qt:path {
            $( $(#[$fmeta:meta])* pub $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }
        const _: () = assert!(core::mem::size_of::<$name>() == $qt.block_bytes());
        const _: () = assert!(core::mem::align_of::<$name>() <= 2);
        impl $crate::blocks::Block for $name {
            const QTYPE: $crate::QType = $qt;
            fn read(b: &[u8]) -> Self {
                assert_eq!(b.len(), <Self as $crate::blocks::Block>::BYTES);
                let mut off = 0;
                Self { $( $field: $crate::blocks::Field::take(b, &mut off), )* }
            }
            fn write(&self, out: &mut [u8]) {
                assert_eq!(out.len(), <Self as $crate::blocks::Block>::BYTES);
                let mut off = 0;
                $( $crate::blocks::Field::put(&self.$field, out, &mut off); )*
            }
        }
    };
}
pub(crate) use block_struct;
