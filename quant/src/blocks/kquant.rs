//! The 256-element K-quant super-blocks: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and
//! the activation-only Q8_K.
//!
//! Bit layouts (see docs/gguf-mixtral-spec.md §2.3), with e the element
//! index 0..256 inside the super-block:
//! - 2-bit codes (Q2_K `qs`, Q3_K low bits): byte `qs[32·(e/128) + e%32]`,
//!   bits `2·((e/32)%4)`.
//! - high-bit masks (Q3_K `hmask`, Q5_K `qh`): byte `[e%32]`, bit `e/32`.
//! - 4-bit codes (Q4_K/Q5_K `qs`): byte `qs[32·(e/64) + e%32]`, low nibble if
//!   `e%64 < 32`, else high nibble.
//! - Q6_K: low 4 bits in `ql[64·(e/128) + e%32 + 32·((e/32)%2)]`, low nibble
//!   for quarters 0,1 of a half and high nibble for quarters 2,3; high 2 bits
//!   in `qh[32·(e/128) + e%32]` at bits `2·((e/32)%4)`.

use super::block_struct;
use crate::QType;

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

block_struct! {
    /// Q2_K: 84 bytes, type-1, 16 sub-blocks of 16.
    /// x = d·(scales[e/16] & 0xF)·q − dmin·(scales[e/16] >> 4), q in 0..=3.
    pub struct BlockQ2K: QType::Q2_K {
        /// Per sub-block: low nibble = scale (0..15), high nibble = min (0..15).
        pub scales: [u8; 16],
        /// 2-bit codes, four per byte (see module docs).
        pub qs: [u8; 64],
        /// Super-scale for the scales, f16 bits.
        pub d: u16,
        /// Super-scale for the mins, f16 bits.
        pub dmin: u16,
    }
}

block_struct! {
    /// Q3_K: 110 bytes, type-0, 16 sub-blocks of 16, 6-bit signed scales.
    /// x = d·sc[e/16]·q with q = low2 − (hbit ? 0 : 4) in -4..=3.
    pub struct BlockQ3K: QType::Q3_K {
        /// High bit of each code: byte e%32, bit e/32. Set means "no −4".
        pub hmask: [u8; 32],
        /// Low 2 bits of each code, four per byte.
        pub qs: [u8; 64],
        /// 16 scales of 6 bits, stored +32: bytes 0..8 hold the low nibbles
        /// (sub-block i<8 in the low half of byte i, i≥8 in the high half of byte
        /// i−8); bytes 8..12 hold the top 2 bits (sub-block i: byte 8+i%4, bits
        /// 2·(i/4)).
        pub scales: [u8; 12],
        /// Super-scale, f16 bits.
        pub d: u16,
    }
}

block_struct! {
    /// Q4_K: 144 bytes, type-1, 8 sub-blocks of 32, 6-bit scales and mins.
    /// x = d·sc[e/32]·q − dmin·m[e/32], q in 0..=15.
    pub struct BlockQ4K: QType::Q4_K {
        /// Super-scale for the scales, f16 bits.
        pub d: u16,
        /// Super-scale for the mins, f16 bits.
        pub dmin: u16,
        /// 8 scales + 8 mins of 6 bits (ggml `get_scale_min_k4`): bytes 0..4 =
        /// sc0..3 (low 6 bits) and top 2 bits of sc4..7; bytes 4..8 = m0..3 and
        /// top 2 bits of m4..7; bytes 8..12 = low nibble sc4..7 | high nibble m4..7.
        pub scales: [u8; 12],
        /// 4-bit codes: per 64-element chunk c, 32 bytes; low nibbles are
        /// elements 64c..64c+32, high nibbles 64c+32..64c+64.
        pub qs: [u8; 128],
    }
}

block_struct! {
    /// Q5_K: 176 bytes, type-1, 8 sub-blocks of 32, 6-bit scales and mins.
    /// x = d·sc[e/32]·q − dmin·m[e/32], q in 0..=31.
    pub struct BlockQ5K: QType::Q5_K {
        /// Super-scale for the scales, f16 bits.
        pub d: u16,
        /// Super-scale for the mins, f16 bits.
        pub dmin: u16,
        /// Scales and mins packed exactly as in Q4_K.
        pub scales: [u8; 12],
        /// Fifth bit of each code: byte e%32, bit e/32.
        pub qh: [u8; 32],
        /// Low 4 bits of each code, laid out as Q4_K's `qs`.
        pub qs: [u8; 128],
    }
}

block_struct! {
    /// Q6_K: 210 bytes, type-0, 16 sub-blocks of 16, signed 8-bit scales.
    /// x = d·scales[e/16]·q with q in -32..=31 (6-bit code − 32).
    pub struct BlockQ6K: QType::Q6_K {
        /// Low 4 bits of each code (see module docs).
        pub ql: [u8; 128],
        /// High 2 bits of each code (see module docs).
        pub qh: [u8; 64],
        /// Signed scale per sub-block of 16.
        pub scales: [i8; 16],
        /// Super-scale, f16 bits.
        pub d: u16,
    }
}

block_struct! {
    /// Q8_K: 292 bytes, activation-only (pairs with every K-quant). x = d·q.
    pub struct BlockQ8K: QType::Q8_K {
        /// Scale as **f32**, little-endian bytes (kept as bytes so the struct
        /// stays 2-aligned like the rest; ggml's own struct is 4-aligned).
        pub d: [u8; 4],
        /// Quants, signed 8-bit, element order.
        pub qs: [i8; 256],
        /// `bsums[g] = Σ qs[16g..16g+16]`.
        pub bsums: [i16; 16],
    }
}

// ---------- shared bit helpers ----------

#[inline]
fn two_bit_pos(e: usize) -> (usize, u32) {
    (32 * (e / 128) + e % 32, 2 * ((e / 32) % 4) as u32)
}

fn unpack_2bit(qs: &[u8; 64]) -> [u8; 256] {
    let mut out = [0u8; 256];
    for (o, q) in out.chunks_exact_mut(128).zip(qs.chunks_exact(32)) {
        for (j, o) in o.chunks_exact_mut(32).enumerate() {
            for (o, &q) in o.iter_mut().zip(q) {
                *o = (q >> (2 * j)) & 3;
            }
        }
    }
    out
}

fn pack_2bit(codes: &[u8; 256]) -> [u8; 64] {
    let mut qs = [0u8; 64];
    for (e, &c) in codes.iter().enumerate() {
        debug_assert!(c < 4);
        let (i, sh) = two_bit_pos(e);
        qs[i] |= (c & 3) << sh;
    }
    qs
}

fn unpack_hbits(h: &[u8; 32]) -> [u8; 256] {
    let mut out = [0u8; 256];
    for (j, o) in out.chunks_exact_mut(32).enumerate() {
        for (o, &b) in o.iter_mut().zip(h) {
            *o = (b >> j) & 1;
        }
    }
    out
}

fn pack_hbits(bits: &[u8; 256]) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (e, &b) in bits.iter().enumerate() {
        h[e % 32] |= (b & 1) << (e / 32);
    }
    h
}

#[inline]
fn nibble_pos(e: usize) -> (usize, u32) {
    (32 * (e / 64) + e % 32, if e % 64 < 32 { 0 } else { 4 })
}

fn unpack_nibbles(qs: &[u8; 128]) -> [u8; 256] {
    let mut out = [0u8; 256];
    for (o, q) in out.chunks_exact_mut(64).zip(qs.chunks_exact(32)) {
        let (lo, hi) = o.split_at_mut(32);
        for ((lo, hi), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(q) {
            *lo = q & 0xF;
            *hi = q >> 4;
        }
    }
    out
}

fn pack_nibbles(codes: &[u8; 256]) -> [u8; 128] {
    let mut qs = [0u8; 128];
    for (e, &c) in codes.iter().enumerate() {
        debug_assert!(c < 16);
        let (i, sh) = nibble_pos(e);
        qs[i] |= (c & 0xF) << sh;
    }
    qs
}

/// Unpack Q4_K/Q5_K's 12 scale bytes into (scales, mins), 6 bits each.
pub(crate) fn unpack_scale_min_k4(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0xF) | ((s[j] >> 6) << 4);
        m[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, m)
}

/// Inverse of [`unpack_scale_min_k4`]; every value must be < 64.
pub(crate) fn pack_scale_min_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        debug_assert!(sc[j] < 64 && m[j] < 64 && sc[j + 4] < 64 && m[j + 4] < 64);
        s[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
    s
}

// ---------- per-format code access ----------

impl BlockQ2K {
    /// Build from super-scales (f16 bits), 4-bit scales/mins and codes 0..=3.
    pub fn new(d: u16, dmin: u16, sc: &[u8; 16], m: &[u8; 16], q: &[u8; 256]) -> Self {
        let scales = core::array::from_fn(|i| {
            debug_assert!(sc[i] < 16 && m[i] < 16);
            (sc[i] & 0xF) | (m[i] << 4)
        });
        Self {
            scales,
            qs: pack_2bit(q),
            d,
            dmin,
        }
    }
    /// Codes 0..=3 in element order.
    pub fn quants(&self) -> [u8; 256] {
        unpack_2bit(&self.qs)
    }
}

impl BlockQ3K {
    /// Build from the super-scale (f16 bits), scales in -32..=31 and codes -4..=3.
    pub fn new(d: u16, sc: &[i8; 16], q: &[i8; 256]) -> Self {
        let low = q.map(|v| ((v + 4) & 3) as u8);
        let hi = q.map(|v| u8::from(v >= 0));
        Self {
            hmask: pack_hbits(&hi),
            qs: pack_2bit(&low),
            scales: Self::pack_scales(sc),
            d,
        }
    }
    /// Codes -4..=3 in element order.
    pub fn quants(&self) -> [i8; 256] {
        let low = unpack_2bit(&self.qs);
        let hi = unpack_hbits(&self.hmask);
        let mut q = [0i8; 256];
        for ((q, &l), &h) in q.iter_mut().zip(&low).zip(&hi) {
            *q = l as i8 - 4 + 4 * h as i8;
        }
        q
    }
    /// The 16 sub-block scales, -32..=31.
    pub fn scales(&self) -> [i8; 16] {
        Self::unpack_scales(&self.scales)
    }
    /// The 16 sub-block scales, -32..=31, from the 12 packed bytes.
    pub(crate) fn unpack_scales(s: &[u8; 12]) -> [i8; 16] {
        core::array::from_fn(|i| {
            let low4 = if i < 8 { s[i] & 0xF } else { s[i - 8] >> 4 };
            let high2 = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
            (low4 | (high2 << 4)) as i8 - 32
        })
    }
    fn pack_scales(sc: &[i8; 16]) -> [u8; 12] {
        let mut s = [0u8; 12];
        for (i, &v) in sc.iter().enumerate() {
            debug_assert!((-32..32).contains(&v));
            let u = (v + 32) as u8;
            if i < 8 {
                s[i] |= u & 0xF;
            } else {
                s[i - 8] |= (u & 0xF) << 4;
            }
            s[8 + i % 4] |= (u >> 4) << (2 * (i / 4));
        }
        s
    }
}

impl BlockQ4K {
    /// Build from super-scales (f16 bits), 6-bit scales/mins and codes 0..=15.
    pub fn new(d: u16, dmin: u16, sc: &[u8; 8], m: &[u8; 8], q: &[u8; 256]) -> Self {
        Self {
            d,
            dmin,
            scales: pack_scale_min_k4(sc, m),
            qs: pack_nibbles(q),
        }
    }
    /// (scales, mins) of the 8 sub-blocks, 0..=63.
    pub fn scale_mins(&self) -> ([u8; 8], [u8; 8]) {
        unpack_scale_min_k4(&self.scales)
    }
    /// Codes 0..=15 in element order.
    pub fn quants(&self) -> [u8; 256] {
        unpack_nibbles(&self.qs)
    }
}

impl BlockQ5K {
    /// Build from super-scales (f16 bits), 6-bit scales/mins and codes 0..=31.
    pub fn new(d: u16, dmin: u16, sc: &[u8; 8], m: &[u8; 8], q: &[u8; 256]) -> Self {
        let low = q.map(|v| v & 0xF);
        let hi = q.map(|v| (v >> 4) & 1);
        Self {
            d,
            dmin,
            scales: pack_scale_min_k4(sc, m),
            qh: pack_hbits(&hi),
            qs: pack_nibbles(&low),
        }
    }
    /// (scales, mins) of the 8 sub-blocks, 0..=63.
    pub fn scale_mins(&self) -> ([u8; 8], [u8; 8]) {
        unpack_scale_min_k4(&self.scales)
    }
    /// Codes 0..=31 in element order.
    pub fn quants(&self) -> [u8; 256] {
        let mut q = unpack_nibbles(&self.qs);
        let hi = unpack_hbits(&self.qh);
        for (q, &h) in q.iter_mut().zip(&hi) {
            *q |= h << 4;
        }
        q
    }
}

#[inline]
fn q6_pos(e: usize) -> (usize, u32, usize, u32) {
    let (h, r) = (e / 128, e % 128);
    let (quarter, l) = (r / 32, r % 32);
    let ql_i = 64 * h + l + 32 * (quarter % 2);
    let ql_sh = if quarter < 2 { 0 } else { 4 };
    (ql_i, ql_sh, 32 * h + l, 2 * quarter as u32)
}

impl BlockQ6K {
    /// Build from the super-scale (f16 bits), signed scales and codes -32..=31.
    pub fn new(d: u16, scales: &[i8; 16], q: &[i8; 256]) -> Self {
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        for (e, &v) in q.iter().enumerate() {
            debug_assert!((-32..32).contains(&v));
            let c = (v + 32) as u8;
            let (li, lsh, hi, hsh) = q6_pos(e);
            ql[li] |= (c & 0xF) << lsh;
            qh[hi] |= (c >> 4) << hsh;
        }
        Self {
            ql,
            qh,
            scales: *scales,
            d,
        }
    }
    /// Codes -32..=31 in element order.
    pub fn quants(&self) -> [i8; 256] {
        let mut q = [0i8; 256];
        let halves = q
            .chunks_exact_mut(128)
            .zip(self.ql.chunks_exact(64))
            .zip(self.qh.chunks_exact(32));
        for ((q, ql), qh) in halves {
            // Quarter k of the half: low bits from ql[l + 32·(k%2)], low
            // nibble for k < 2; high bits from qh[l] at bits 2k.
            for (k, q) in q.chunks_exact_mut(32).enumerate() {
                let ql = &ql[32 * (k % 2)..32 * (k % 2) + 32];
                let lsh = if k < 2 { 0 } else { 4 };
                for ((q, &lo), &hi) in q.iter_mut().zip(ql).zip(qh) {
                    *q = (((lo >> lsh) & 0xF) | (((hi >> (2 * k)) & 3) << 4)) as i8 - 32;
                }
            }
        }
        q
    }
}

impl BlockQ8K {
    /// The f32 scale.
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::Block;

    /// A deterministic byte pattern that exercises every bit position.
    fn pattern<const N: usize>(seed: u32) -> [u8; N] {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        core::array::from_fn(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
    }

    fn roundtrip<B: Block + PartialEq + core::fmt::Debug>(raw: &[u8], rebuild: impl Fn(&B) -> B) {
        let b = B::read(raw);
        let again = rebuild(&b);
        assert_eq!(again, b);
        let mut out = vec![0u8; B::BYTES];
        again.write(&mut out);
        assert_eq!(out, raw);
    }

    #[test]
    fn pack_unpack_roundtrip_every_format() {
        for seed in 0..8 {
            roundtrip::<BlockQ2K>(&pattern::<84>(seed), |b| {
                let sc = b.scales.map(|s| s & 0xF);
                let m = b.scales.map(|s| s >> 4);
                BlockQ2K::new(b.d, b.dmin, &sc, &m, &b.quants())
            });
            roundtrip::<BlockQ3K>(&pattern::<110>(seed), |b| {
                BlockQ3K::new(b.d, &b.scales(), &b.quants())
            });
            roundtrip::<BlockQ4K>(&pattern::<144>(seed), |b| {
                let (sc, m) = b.scale_mins();
                BlockQ4K::new(b.d, b.dmin, &sc, &m, &b.quants())
            });
            roundtrip::<BlockQ5K>(&pattern::<176>(seed), |b| {
                let (sc, m) = b.scale_mins();
                BlockQ5K::new(b.d, b.dmin, &sc, &m, &b.quants())
            });
            roundtrip::<BlockQ6K>(&pattern::<210>(seed), |b| {
                BlockQ6K::new(b.d, &b.scales, &b.quants())
            });
            roundtrip::<BlockQ8K>(&pattern::<292>(seed), |b| *b);
        }
    }

    #[test]
    fn q4k_scale_min_unpacking_hand_checked() {
        // sc4 = 0b10_0101 (low nibble in byte 8, top bits in byte 0's bits 6-7),
        // m4 = 0b01_1010 (low nibble in byte 8 high half, top bits in byte 4).
        let mut s = [0u8; 12];
        s[0] = 0b10_000011; // sc0 = 3, sc4 top bits = 0b10
        s[4] = 0b01_000111; // m0 = 7, m4 top bits = 0b01
        s[8] = 0b1010_0101; // m4 low = 0b1010, sc4 low = 0b0101
        let (sc, m) = unpack_scale_min_k4(&s);
        assert_eq!((sc[0], m[0], sc[4], m[4]), (3, 7, 0b10_0101, 0b01_1010));
    }

    #[test]
    fn q3k_hmask_set_means_no_offset() {
        let mut raw = [0u8; 110];
        raw[0] = 0b0000_0010; // hmask[0] bit 1 -> element 32 has its high bit
        let q = BlockQ3K::read(&raw).quants();
        assert_eq!((q[0], q[32], q[64]), (-4, 0, -4));
    }
}
