//! Dequantization: blocks to f32, with ggml's float order
//! (`dequantize_row_*` in ggml-quants.c) so results are bit-identical to it.
//!
//! The K-quants compute the sub-block factor first, then apply it:
//! `(d·sc)·q − (dmin·m)`; the legacy type-1 formats compute `d·q + m`;
//! MXFP4 computes `f32(KVALUES_MXFP4[code])·2^(e−128)`.

use crate::blocks::{
    Block, BlockMxfp4, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0,
    BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use crate::fp::{bf16_to_f32, e8m0_to_f32_half, f16_to_f32};
use crate::QType;

/// Dequantize one row of `dst.len()` elements stored as `qtype` in `src`.
///
/// # Panics
/// If `dst.len()` is not a whole number of blocks or `src.len()` is not
/// exactly the row's byte size.
pub fn dequantize_row(qtype: QType, src: &[u8], dst: &mut [f32]) {
    let want = qtype.row_bytes_usize(dst.len());
    assert_eq!(
        Some(src.len()),
        want,
        "dequantize_row: {qtype} row of {} elements needs {want:?} bytes, got {}",
        dst.len(),
        src.len()
    );
    match qtype {
        QType::F32 => {
            for (y, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        QType::F16 => crate::fp::f16_bytes_to_f32(src, dst),
        QType::BF16 => {
            for (y, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *y = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        QType::Q4_0 => each::<BlockQ4_0>(src, dst, q4_0),
        QType::Q4_1 => each::<BlockQ4_1>(src, dst, q4_1),
        QType::Q5_0 => each::<BlockQ5_0>(src, dst, q5_0),
        QType::Q5_1 => each::<BlockQ5_1>(src, dst, q5_1),
        QType::Q8_0 => each::<BlockQ8_0>(src, dst, |b, y| scaled(f16_to_f32(b.d), &b.qs, y)),
        QType::Q8_1 => each::<BlockQ8_1>(src, dst, |b, y| scaled(f16_to_f32(b.d), &b.qs, y)),
        QType::Q2_K => each::<BlockQ2K>(src, dst, q2_k),
        QType::Q3_K => each::<BlockQ3K>(src, dst, q3_k),
        QType::Q4_K => each::<BlockQ4K>(src, dst, q4_k),
        QType::Q5_K => each::<BlockQ5K>(src, dst, q5_k),
        QType::Q6_K => each::<BlockQ6K>(src, dst, q6_k),
        QType::Q8_K => each::<BlockQ8K>(src, dst, |b, y| scaled(b.d(), &b.qs, y)),
        QType::MXFP4 => each::<BlockMxfp4>(src, dst, |b, y| scaled(e8m0_to_f32_half(b.e), &b.values(), y)),
    }
}

fn each<B: Block>(src: &[u8], dst: &mut [f32], f: impl Fn(&B, &mut [f32])) {
    for (raw, y) in src.chunks_exact(B::BYTES).zip(dst.chunks_exact_mut(B::LEN)) {
        f(&B::read(raw), y);
    }
}

fn scaled(d: f32, q: &[i8], y: &mut [f32]) {
    for (y, &q) in y.iter_mut().zip(q) {
        *y = f32::from(q) * d;
    }
}

fn q4_0(b: &BlockQ4_0, y: &mut [f32]) {
    scaled(f16_to_f32(b.d), &b.quants(), y);
}

fn q5_0(b: &BlockQ5_0, y: &mut [f32]) {
    scaled(f16_to_f32(b.d), &b.quants(), y);
}

fn affine(d: f32, m: f32, q: &[u8], y: &mut [f32]) {
    for (y, &q) in y.iter_mut().zip(q) {
        *y = f32::from(q) * d + m;
    }
}

fn q4_1(b: &BlockQ4_1, y: &mut [f32]) {
    affine(f16_to_f32(b.d), f16_to_f32(b.m), &b.quants(), y);
}

fn q5_1(b: &BlockQ5_1, y: &mut [f32]) {
    affine(f16_to_f32(b.d), f16_to_f32(b.m), &b.quants(), y);
}

fn q2_k(b: &BlockQ2K, y: &mut [f32]) {
    let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
    let q = b.quants();
    for (i, (ys, qs)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
        let dl = d * f32::from(b.scales[i] & 0xF);
        let ml = dmin * f32::from(b.scales[i] >> 4);
        for (y, &q) in ys.iter_mut().zip(qs) {
            *y = dl * f32::from(q) - ml;
        }
    }
}

fn q3_k(b: &BlockQ3K, y: &mut [f32]) {
    let d = f16_to_f32(b.d);
    let (sc, q) = (b.scales(), b.quants());
    for (i, (ys, qs)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
        scaled(d * f32::from(sc[i]), qs, ys);
    }
}

fn k4_style(d: u16, dmin: u16, (sc, m): ([u8; 8], [u8; 8]), q: &[u8; 256], y: &mut [f32]) {
    let (d, dmin) = (f16_to_f32(d), f16_to_f32(dmin));
    for (j, (ys, qs)) in y.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
        let d1 = d * f32::from(sc[j]);
        let m1 = dmin * f32::from(m[j]);
        for (y, &q) in ys.iter_mut().zip(qs) {
            *y = d1 * f32::from(q) - m1;
        }
    }
}

fn q4_k(b: &BlockQ4K, y: &mut [f32]) {
    k4_style(b.d, b.dmin, b.scale_mins(), &b.quants(), y);
}

fn q5_k(b: &BlockQ5K, y: &mut [f32]) {
    k4_style(b.d, b.dmin, b.scale_mins(), &b.quants(), y);
}

fn q6_k(b: &BlockQ6K, y: &mut [f32]) {
    let d = f16_to_f32(b.d);
    let q = b.quants();
    for (i, (ys, qs)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
        scaled(d * f32::from(b.scales[i]), qs, ys);
    }
}
