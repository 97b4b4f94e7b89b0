//! `dequantize_row` must be bit-identical to gguf-py's independent numpy
//! dequantizers (cross-checked against ggml's own when the fixtures were made)
//! on random-but-valid blocks, including subnormal, negative, zero and large
//! f16 scales.

mod common;

use common::Fixture;
use moe_quant::{dequantize_row, QType};

#[test]
fn dequantize_matches_gguf_py_bit_for_bit() {
    let fx = Fixture::load("dequant.mqf");
    for t in QType::WEIGHT_TYPES {
        let raw = fx.bytes(&format!("{}.bytes", t.name()));
        let want = fx.f32s(&format!("{}.f32", t.name()));
        assert_eq!(
            Some(raw.len()),
            t.row_bytes_usize(want.len()),
            "{t}: fixture sizes"
        );
        let mut got = vec![f32::NAN; want.len()];
        dequantize_row(t, raw, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{t} element {i} (block {}): got {g:e}, gguf-py {w:e}",
                i / t.block_len()
            );
        }
    }
}

#[test]
fn dequantize_reads_unaligned_slices() {
    let fx = Fixture::load("dequant.mqf");
    for t in [QType::Q4_K, QType::Q6_K, QType::Q5_0, QType::F16] {
        let raw = fx.bytes(&format!("{}.bytes", t.name()));
        let want = fx.f32s(&format!("{}.f32", t.name()));
        let mut shifted = vec![0u8; raw.len() + 1];
        shifted[1..].copy_from_slice(raw);
        let mut got = vec![0.0; want.len()];
        dequantize_row(t, &shifted[1..], &mut got);
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{t} at odd address"
        );
    }
}

#[test]
fn q8_k_and_q8_1_dequantize_hand_checked() {
    // Q8_K: f32 d = -0.5, q[0] = 3, q[255] = -128.
    let mut b = vec![0u8; 292];
    b[0..4].copy_from_slice(&(-0.5f32).to_le_bytes());
    b[4] = 3;
    b[4 + 255] = 0x80;
    let mut y = vec![0.0; 256];
    dequantize_row(QType::Q8_K, &b, &mut y);
    assert_eq!((y[0], y[1], y[255]), (-1.5, 0.0, 64.0));
    // Q8_1: d = 0.25 (f16 0x3400), s ignored, q[31] = -7.
    let mut b = vec![0u8; 36];
    b[0..2].copy_from_slice(&0x3400u16.to_le_bytes());
    b[2..4].copy_from_slice(&0x7bffu16.to_le_bytes());
    b[4 + 31] = (-7i8) as u8;
    let mut y = vec![0.0; 32];
    dequantize_row(QType::Q8_1, &b, &mut y);
    assert_eq!((y[0], y[31]), (0.0, -1.75));
}

#[test]
#[should_panic(expected = "needs")]
fn dequantize_rejects_wrong_length() {
    let mut y = vec![0.0; 256];
    dequantize_row(QType::Q4_K, &[0u8; 143], &mut y);
}
