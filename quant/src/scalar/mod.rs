//! Scalar reference kernels: the tier every SIMD kernel is checked against.
//!
//! Each kernel computes integer dot products inside a block and applies the
//! float scales once per block (per sub-block where the format has sub-block
//! scales). The quantized formats follow the float order of llama.cpp's
//! x86 kernels (see `legacy`, `kquant`, `mxfp4`), the float types that of
//! `ggml_vec_dot_f16/bf16/f32` without SIMD. They do not validate lengths:
//! callers go through [`crate::vec_dot`] or [`crate::QMatrix`], which do.

mod float;

pub(crate) use float::reduce16;

/// [`float::dot_f32`] over little-endian f32 bytes: the F32 dot
/// every tier gives.
pub(crate) fn dot_f32_bytes(w: &[u8], a: &[u8]) -> f32 {
    float::dot_f32(w, a, 0)
}
mod kquant;
mod legacy;
mod mxfp4;

pub(crate) use legacy::hsum8;

use crate::dispatch::{Kernels, VecDotFn};
use crate::QType;

/// The scalar kernel for weights of `w_type` (activations in
/// `w_type.vec_dot_type()`), or `None` for the activation-only types.
pub fn vec_dot_fn(w_type: QType) -> Option<VecDotFn> {
    Some(match w_type {
        QType::F32 => float::dot_f32,
        QType::F16 => float::dot_f16,
        QType::BF16 => float::dot_bf16,
        QType::Q4_0 => legacy::dot_q4_0,
        QType::Q4_1 => legacy::dot_q4_1,
        QType::Q5_0 => legacy::dot_q5_0,
        QType::Q5_1 => legacy::dot_q5_1,
        QType::Q8_0 => legacy::dot_q8_0,
        QType::Q2_K => kquant::dot_q2_k,
        QType::Q3_K => kquant::dot_q3_k,
        QType::Q4_K => kquant::dot_q4_k,
        QType::Q5_K => kquant::dot_q5_k,
        QType::Q6_K => kquant::dot_q6_k,
        QType::MXFP4 => mxfp4::dot_mxfp4,
        QType::Q8_1 | QType::Q8_K => return None,
    })
}

/// The scalar kernels for `w_type`: [`vec_dot_fn`] and a row loop over it.
pub(crate) fn kernels(w_type: QType) -> Option<Kernels> {
    macro_rules! table {
        ($($qt:ident => $f:path;)*) => {
            match w_type {
                $(QType::$qt => {
                    fn rows(w: &[u8], rb: usize, a: &[u8], n: usize, out: &mut [f32]) {
                        crate::simd::rows_single($f, w, rb, a, n, out)
                    }
                    Some(Kernels { dot: $f, rows, tile: None, wide_tile: None, tile_acts: None })
                })*
                QType::Q8_1 | QType::Q8_K => None,
            }
        };
    }
    table! {
        F32 => float::dot_f32;
        F16 => float::dot_f16;
        BF16 => float::dot_bf16;
        Q4_0 => legacy::dot_q4_0;
        Q4_1 => legacy::dot_q4_1;
        Q5_0 => legacy::dot_q5_0;
        Q5_1 => legacy::dot_q5_1;
        Q8_0 => legacy::dot_q8_0;
        Q2_K => kquant::dot_q2_k;
        Q3_K => kquant::dot_q3_k;
        Q4_K => kquant::dot_q4_k;
        Q5_K => kquant::dot_q5_k;
        Q6_K => kquant::dot_q6_k;
        MXFP4 => mxfp4::dot_mxfp4;
    }
}
