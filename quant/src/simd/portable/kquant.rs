//! Q4_K and Q6_K · Q8_K with `wide`: exact i16 dot products per sub-block,
//! scaled by the sub-block scale in i32 lanes, one `d·dy` FMA per
//! super-block; Q4_K's min term `Σ m_j·(bsums[2j] + bsums[2j+1])` is an exact
//! integer folded in with `dmin·dy`.

use wide::{f32x8, i32x8};

use super::util::{dot_off_i8, dot_u8_i8, i8s, low4, shr_bytes, u8s};
use crate::fp::f16_to_f32;
use crate::simd::{block, common_blocks, k4_scale_mins, sub, u16_at};

fn bsum(y: &[u8; 292], g: usize) -> i32 {
    let o = 260 + 2 * g;
    i32::from(i16::from_le_bytes([y[o], y[o + 1]]))
}

pub(super) fn dot_q4_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 144, a, 292);
    let mut acc = f32x8::ZERO;
    let mut mins = 0.0f32;
    for i in 0..nb {
        let (x, y) = (block::<144>(w, i), block::<292>(a, i));
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (sc, m) = k4_scale_mins(sub::<4, 12, 144>(x));
        let (sc, m) = (sc.to_le_bytes(), m.to_le_bytes());
        let (qs, _) = sub::<16, 128, 144>(x).as_chunks::<16>();
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<16>();
        let mut sumi = i32x8::ZERO;
        let mut msum = 0i32;
        for j in 0..4 {
            // Chunk j: 32 bytes; low nibbles are sub-block 2j, high 2j + 1.
            let (q0, q1) = (u8s(&qs[2 * j]), u8s(&qs[2 * j + 1]));
            let lo =
                dot_u8_i8(low4(q0), i8s(&aq[4 * j])) + dot_u8_i8(low4(q1), i8s(&aq[4 * j + 1]));
            let hi = dot_u8_i8(shr_bytes(q0, 4), i8s(&aq[4 * j + 2]))
                + dot_u8_i8(shr_bytes(q1, 4), i8s(&aq[4 * j + 3]));
            sumi += lo * i32x8::splat(i32::from(sc[2 * j]))
                + hi * i32x8::splat(i32::from(sc[2 * j + 1]));
        }
        for (j, &m) in m.iter().enumerate() {
            msum += i32::from(m) * (bsum(y, 2 * j) + bsum(y, 2 * j + 1));
        }
        let d = f16_to_f32(u16_at::<0, 144>(x)) * dy;
        acc = f32x8::splat(d).mul_add(sumi.round_float(), acc);
        mins -= f16_to_f32(u16_at::<2, 144>(x)) * dy * msum as f32;
    }
    acc.reduce_add() + mins
}

pub(super) fn dot_q6_k(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let nb = common_blocks(&[w], 210, a, 292);
    let mut acc = f32x8::ZERO;
    for i in 0..nb {
        let (x, y) = (block::<210>(w, i), block::<292>(a, i));
        let dy = f32::from_le_bytes(*sub::<0, 4, 292>(y));
        let (ql, _) = sub::<0, 128, 210>(x).as_chunks::<16>();
        let (qh, _) = sub::<128, 64, 210>(x).as_chunks::<16>();
        let scales = sub::<192, 16, 210>(x);
        let (aq, _) = sub::<4, 256, 292>(y).as_chunks::<16>();
        let mut sumi = i32x8::ZERO;
        for (g, a16) in aq.iter().enumerate() {
            // Sub-block g: half h, quarter k, elements 16·(g%2).. of the quarter.
            let (h, k, part) = (g / 8, (g % 8) / 2, g % 2);
            let l = u8s(&ql[4 * h + 2 * (k % 2) + part]);
            let low = if k < 2 { low4(l) } else { shr_bytes(l, 4) };
            let high = shr_bytes(u8s(&qh[2 * h + part]), 2 * k as u32) & wide::u8x16::splat(3);
            let code = low | (high * 16);
            let p = dot_off_i8(code, 32, i8s(a16));
            sumi += p * i32x8::splat(i32::from(scales[g] as i8));
        }
        let d = f16_to_f32(u16_at::<208, 210>(x)) * dy;
        acc = f32x8::splat(d).mul_add(sumi.round_float(), acc);
    }
    acc.reduce_add()
}
