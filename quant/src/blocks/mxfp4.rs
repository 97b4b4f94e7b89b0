//! MXFP4 (ggml type 39, OCP microscaling FP4): 32 E2M1 values sharing one
//! E8M0 power-of-two exponent, 17 bytes (ggml-common.h `block_mxfp4`).
//!
//! ggml stores each element as a 4-bit code indexing [`KVALUES_MXFP4`], the
//! E2M1 values doubled so that they are integers (−12..=12), and halves the
//! scale to match: x = `KVALUES_MXFP4[code]` · 2^(e−128)
//! ([`crate::fp::e8m0_to_f32_half`]). The nibbles are laid out as in Q4_0:
//! the low nibbles of `qs[0..16]` are elements 0..15, the high nibbles
//! elements 16..31.

use super::block_struct;
use super::legacy::{pack_nibbles, unpack_nibbles};
use crate::QType;

/// Elements per MXFP4 block (ggml's `QK_MXFP4`, equal to Q8_0's).
pub const QK_MXFP4: usize = 32;

/// ggml's `kvalues_mxfp4`: the E2M1 value of each code, doubled. Codes 0..8
/// are 0, 0.5, 1, 1.5, 2, 3, 4, 6 (×2); codes 8..16 the same negated (code
/// 8 is −0, which is 0 here).
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

block_struct! {
    /// MXFP4: 17 bytes, x = KVALUES_MXFP4[code] · 2^(e−128).
    pub struct BlockMxfp4: QType::MXFP4 {
        /// E8M0 exponent: the shared scale is 2^(e−127) (byte 0).
        pub e: u8,
        /// `qs[j]` low nibble: element j's code; high nibble: element j+16's.
        pub qs: [u8; 16],
    }
}

impl BlockMxfp4 {
    /// Build from an exponent byte and 32 codes in 0..=15, element order.
    pub fn new(e: u8, codes: &[u8; 32]) -> Self {
        Self {
            e,
            qs: pack_nibbles(codes),
        }
    }

    /// The 4-bit codes (0..=15) in element order.
    pub fn codes(&self) -> [u8; 32] {
        unpack_nibbles(&self.qs)
    }

    /// The doubled E2M1 values (`KVALUES_MXFP4[code]`, −12..=12) in element
    /// order: what the dot products multiply the activations by.
    pub fn values(&self) -> [i8; 32] {
        self.codes().map(|c| KVALUES_MXFP4[usize::from(c)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::Block;

    #[test]
    fn layout_is_exponent_then_low_and_high_nibbles() {
        let mut raw = [0u8; 17];
        raw[0] = 130;
        raw[1] = 0x97; // element 0 -> code 7 (12), element 16 -> code 9 (-1)
        raw[16] = 0xf8; // element 15 -> code 8 (0), element 31 -> code 15 (-12)
        let b = BlockMxfp4::read(&raw);
        assert_eq!(b.e, 130);
        let v = b.values();
        assert_eq!((v[0], v[16], v[15], v[31], v[1]), (12, -1, 0, -12, 0));
        let mut back = [0u8; 17];
        BlockMxfp4::new(b.e, &b.codes()).write(&mut back);
        assert_eq!(back, raw);
    }

    #[test]
    fn kvalues_are_doubled_e2m1() {
        // E2M1: sign, 2 exponent bits (bias 1), 1 mantissa bit.
        for (code, &k) in KVALUES_MXFP4.iter().enumerate() {
            let (s, e, m) = ((code >> 3) & 1, (code >> 1) & 3, code & 1);
            let mag = if e == 0 { m as f32 * 0.5 } else { (1.0 + m as f32 * 0.5) * 2f32.powi(e as i32 - 1) };
            let want = if s == 1 { -mag } else { mag };
            assert_eq!(f32::from(k), 2.0 * want, "code {code}");
        }
    }
}
