//! The 32-element "legacy" blocks: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the
//! activation-only Q8_1.
//!
//! Type-0 formats decode as `x = d·q`, type-1 as `x = d·q + m`. In the 4- and
//! 5-bit formats the low nibbles of `qs[0..16]` are elements 0..15 and the
//! high nibbles elements 16..31 (not interleaved pairs).

use super::block_struct;
use crate::QType;

/// Elements per legacy block.
pub const QK: usize = 32;

block_struct! {
    /// Q4_0: 18 bytes, x = d·(nibble − 8).
    pub struct BlockQ4_0: QType::Q4_0 {
        /// Scale, f16 bits (byte 0..2).
        pub d: u16,
        /// `qs[j]` low nibble: element j; high nibble: element j+16 (unsigned 0..15, bias 8).
        pub qs: [u8; 16],
    }
}

block_struct! {
    /// Q4_1: 20 bytes, x = d·nibble + m.
    pub struct BlockQ4_1: QType::Q4_1 {
        /// Scale, f16 bits.
        pub d: u16,
        /// Offset (the block minimum), f16 bits.
        pub m: u16,
        /// `qs[j]` low nibble: element j; high nibble: element j+16 (unsigned 0..15).
        pub qs: [u8; 16],
    }
}

block_struct! {
    /// Q5_0: 22 bytes, x = d·(5-bit code − 16).
    pub struct BlockQ5_0: QType::Q5_0 {
        /// Scale, f16 bits.
        pub d: u16,
        /// Fifth bits: bit j of the little-endian u32 is element j's bit 4.
        pub qh: [u8; 4],
        /// Low 4 bits: `qs[j]` low nibble element j, high nibble element j+16.
        pub qs: [u8; 16],
    }
}

block_struct! {
    /// Q5_1: 24 bytes, x = d·(5-bit code) + m.
    pub struct BlockQ5_1: QType::Q5_1 {
        /// Scale, f16 bits.
        pub d: u16,
        /// Offset (the block minimum), f16 bits.
        pub m: u16,
        /// Fifth bits: bit j of the little-endian u32 is element j's bit 4.
        pub qh: [u8; 4],
        /// Low 4 bits: `qs[j]` low nibble element j, high nibble element j+16.
        pub qs: [u8; 16],
    }
}

block_struct! {
    /// Q8_0: 34 bytes, x = d·q.
    pub struct BlockQ8_0: QType::Q8_0 {
        /// Scale, f16 bits.
        pub d: u16,
        /// Quants, signed 8-bit, element order.
        pub qs: [i8; 32],
    }
}

block_struct! {
    /// Q8_1: 36 bytes, x = d·q, activation-only (pairs with Q4_1/Q5_1).
    pub struct BlockQ8_1: QType::Q8_1 {
        /// Scale, f16 bits.
        pub d: u16,
        /// d·Σqs (computed in f32 from the unrounded d, then stored as f16 bits).
        pub s: u16,
        /// Quants, signed 8-bit, element order.
        pub qs: [i8; 32],
    }
}

/// Split 32 nibble codes into ggml's `qs[16]` (element j low, j+16 high).
pub(super) fn pack_nibbles(codes: &[u8; 32]) -> [u8; 16] {
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        debug_assert!(codes[j] < 16 && codes[j + 16] < 16);
        *q = (codes[j] & 0xF) | ((codes[j + 16] & 0xF) << 4);
    }
    qs
}

/// The inverse of [`pack_nibbles`].
pub(super) fn unpack_nibbles(qs: &[u8; 16]) -> [u8; 32] {
    let mut codes = [0u8; 32];
    for j in 0..16 {
        codes[j] = qs[j] & 0xF;
        codes[j + 16] = qs[j] >> 4;
    }
    codes
}

/// Split 32 five-bit codes into (`qh`, `qs`).
fn pack_5bit(codes: &[u8; 32]) -> ([u8; 4], [u8; 16]) {
    let mut low = [0u8; 32];
    let mut h = 0u32;
    for (j, &c) in codes.iter().enumerate() {
        debug_assert!(c < 32);
        low[j] = c & 0xF;
        h |= u32::from((c >> 4) & 1) << j;
    }
    (h.to_le_bytes(), pack_nibbles(&low))
}

fn unpack_5bit(qh: &[u8; 4], qs: &[u8; 16]) -> [u8; 32] {
    let h = u32::from_le_bytes(*qh);
    let mut codes = unpack_nibbles(qs);
    for (j, c) in codes.iter_mut().enumerate() {
        *c |= (((h >> j) & 1) as u8) << 4;
    }
    codes
}

impl BlockQ4_0 {
    /// Build from a scale (f16 bits) and signed quants in -8..=7.
    pub fn new(d: u16, q: &[i8; 32]) -> Self {
        Self {
            d,
            qs: pack_nibbles(&q.map(|v| (v + 8) as u8)),
        }
    }
    /// Signed quants (-8..=7) in element order.
    pub fn quants(&self) -> [i8; 32] {
        unpack_nibbles(&self.qs).map(|c| c as i8 - 8)
    }
}

impl BlockQ4_1 {
    /// Build from scale and min (f16 bits) and unsigned quants in 0..=15.
    pub fn new(d: u16, m: u16, q: &[u8; 32]) -> Self {
        Self {
            d,
            m,
            qs: pack_nibbles(q),
        }
    }
    /// Unsigned quants (0..=15) in element order.
    pub fn quants(&self) -> [u8; 32] {
        unpack_nibbles(&self.qs)
    }
}

impl BlockQ5_0 {
    /// Build from a scale (f16 bits) and signed quants in -16..=15.
    pub fn new(d: u16, q: &[i8; 32]) -> Self {
        let (qh, qs) = pack_5bit(&q.map(|v| (v + 16) as u8));
        Self { d, qh, qs }
    }
    /// Signed quants (-16..=15) in element order.
    pub fn quants(&self) -> [i8; 32] {
        unpack_5bit(&self.qh, &self.qs).map(|c| c as i8 - 16)
    }
}

impl BlockQ5_1 {
    /// Build from scale and min (f16 bits) and unsigned quants in 0..=31.
    pub fn new(d: u16, m: u16, q: &[u8; 32]) -> Self {
        let (qh, qs) = pack_5bit(q);
        Self { d, m, qh, qs }
    }
    /// Unsigned quants (0..=31) in element order.
    pub fn quants(&self) -> [u8; 32] {
        unpack_5bit(&self.qh, &self.qs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::Block;

    #[test]
    fn nibble_order_is_low_then_high() {
        let mut raw = [0u8; 18];
        raw[2] = 0x21; // element 0 -> 1, element 16 -> 2
        raw[17] = 0xf3; // element 15 -> 3, element 31 -> 15
        let b = BlockQ4_0::read(&raw);
        let q = b.quants();
        assert_eq!((q[0], q[16], q[15], q[31]), (1 - 8, 2 - 8, 3 - 8, 15 - 8));
        let mut back = [0u8; 18];
        BlockQ4_0::new(b.d, &q).write(&mut back);
        assert_eq!(back, raw);
    }

    #[test]
    fn q5_high_bit_j_is_element_j() {
        let mut raw = [0u8; 22];
        raw[2..6].copy_from_slice(&(1u32 << 3 | 1u32 << 20).to_le_bytes());
        let q = BlockQ5_0::read(&raw).quants();
        for (j, &v) in q.iter().enumerate() {
            let want = if j == 3 || j == 20 { 0 } else { -16 };
            assert_eq!(v, want, "element {j}");
        }
        let codes: [u8; 32] = core::array::from_fn(|j| (j as u8 * 7) % 32);
        assert_eq!(BlockQ5_1::new(0, 0, &codes).quants(), codes);
    }
}
