//! MXFP4 · Q8_0 with `wide`, in llama.cpp's x86 float order (bit-identical
//! to the scalar tier, see `crate::scalar::mxfp4`).
//!
//! Per block, the codes become the doubled E2M1 values by a 16-byte table
//! lookup (`shuffle`: `pshufb` on x86, `tbl` on NEON), and the 8 lanes of
//! exact 4-element sums are made as for Q8_0 (`super::legacy`): even and
//! odd elements as i16, `dot`, added. Blocks alternate between two
//! accumulators (`fma8`, a true FMA), which are added and summed in
//! `hsum_float_8`'s order; an odd last block is added as one integer sum
//! with a scalar FMA.

use wide::u8x16;

use super::legacy::q8_lanes;
use super::util::fma8;
use crate::blocks::KVALUES_MXFP4;
use crate::fp::{e8m0_to_f32_half, f16_to_f32};
use crate::scalar::hsum8;
use crate::simd::{blocks, common_blocks, sub, u16_at};

/// The block's 32 values (`KVALUES_MXFP4[code]`) as bytes, element order.
#[inline(always)]
fn values(qs: &[u8; 16]) -> [u8; 32] {
    const M: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    let (a, b) = (u64::from_le_bytes(*sub::<0, 8, 16>(qs)), u64::from_le_bytes(*sub::<8, 8, 16>(qs)));
    let idx = |lo: u64, hi: u64| {
        let mut i = [0u8; 16];
        i[..8].copy_from_slice(&lo.to_le_bytes());
        i[8..].copy_from_slice(&hi.to_le_bytes());
        u8x16::new(i)
    };
    let table = u8x16::new(KVALUES_MXFP4.map(|v| v as u8));
    let low = table.shuffle(idx(a & M, b & M)).to_array();
    let high = table.shuffle(idx((a >> 4) & M, (b >> 4) & M)).to_array();
    let mut v = [0u8; 32];
    v[..16].copy_from_slice(&low);
    v[16..].copy_from_slice(&high);
    v
}

pub(super) fn dot_mxfp4(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 17, a, 34);
    let (wb, ab) = (blocks::<17>(w, nb), blocks::<34>(a, nb));
    let scale = |x: &[u8; 17], y: &[u8; 34]| f16_to_f32(u16_at::<0, 34>(y)) * e8m0_to_f32_half(x[0]);
    let mut acc = [wide::f32x8::ZERO; 2];
    for (i, (x, y)) in wb.iter().zip(ab).take(nb / 2 * 2).enumerate() {
        let l = q8_lanes(&values(sub::<1, 16, 17>(x)), sub::<2, 32, 34>(y));
        acc[i % 2] = fma8(scale(x, y), l, acc[i % 2]);
    }
    let mut s = hsum8(&(acc[0] + acc[1]).to_array());
    if nb % 2 == 1 {
        let (x, y) = (&wb[nb - 1], &ab[nb - 1]);
        // Integers below 2^24 in every partial sum: exact in any order.
        let sumi = q8_lanes(&values(sub::<1, 16, 17>(x)), sub::<2, 32, 34>(y)).reduce_add();
        s = scale(x, y).mul_add(sumi, s);
    }
    s
}
