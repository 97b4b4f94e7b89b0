//! Weight quantizers, for writing test models and fixtures.
//!
//! The legacy formats and MXFP4 follow ggml's `quantize_row_*_ref` exactly
//! (the deterministic reference used to create model files). The K-quants use a
//! simple quantizer of our own: valid blocks whose dequantized values are
//! close to the input, not what `llama-quantize` would produce.

mod kquant;
mod legacy;
mod mxfp4;

use crate::fp::{f32_to_bf16, f32_to_f16};
use crate::QType;

/// Quantize `src` as `qtype` and append the bytes to `dst`.
///
/// Q8_1 and Q8_K (activation-only) are accepted too and use
/// [`crate::quantize_activations`].
///
/// # Panics
/// If `src.len()` is not a whole number of `qtype` blocks.
pub fn quantize_row(qtype: QType, src: &[f32], dst: &mut Vec<u8>) {
    let len = qtype.row_bytes_usize(src.len()).unwrap_or_else(|| {
        panic!(
            "quantize_row: {} elements is not a whole number of {qtype} blocks",
            src.len()
        )
    });
    let start = dst.len();
    dst.resize(start + len, 0);
    let out = &mut dst[start..];
    match qtype {
        QType::F32 => {
            for (o, x) in out.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        }
        QType::F16 => {
            for (o, &x) in out.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_f16(x).to_le_bytes());
            }
        }
        QType::BF16 => {
            for (o, &x) in out.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_bf16(x).to_le_bytes());
            }
        }
        QType::Q4_0 => legacy::q4_0(src, out),
        QType::Q4_1 => legacy::q4_1(src, out),
        QType::Q5_0 => legacy::q5_0(src, out),
        QType::Q5_1 => legacy::q5_1(src, out),
        QType::Q8_0 => legacy::q8_0(src, out),
        QType::Q8_1 | QType::Q8_K => crate::quantize_activations(qtype, src, out),
        QType::Q2_K => kquant::q2_k(src, out),
        QType::Q3_K => kquant::q3_k(src, out),
        QType::Q4_K => kquant::q4_k(src, out),
        QType::Q5_K => kquant::q5_k(src, out),
        QType::Q6_K => kquant::q6_k(src, out),
        QType::MXFP4 => mxfp4::mxfp4(src, out),
    }
}
