//! Portable SIMD kernels through the `wide` crate: no `unsafe`, no
//! architecture-specific code; `wide` picks SSE2/AVX2/NEON/WASM code at
//! compile time or falls back to plain arrays.
//!
//! Kernels exist for the quantized formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
//! Q2_K..Q6_K, MXFP4, all bit-identical to the scalar ones), F16 and F32. BF16
//! uses the scalar kernel inside this tier (see
//! [`crate::dispatch::kernels_for`]). Integer products are widened to i16
//! and summed in pairs (`dot`, i.e. `pmaddwd`/`smlal`), so they are exact
//! for any bytes. Rows are processed one at a time.

mod float;
mod kquant;
mod legacy;
mod mxfp4;
mod util;

use crate::dispatch::Kernels;
use crate::QType;

/// The portable kernels for `t`, or `None` where the tier uses the scalar
/// kernel.
pub(crate) fn kernels(t: QType) -> Option<Kernels> {
    macro_rules! entry {
        ($f:path) => {{
            fn rows(w: &[u8], rb: usize, a: &[u8], n: usize, out: &mut [f32]) {
                crate::simd::rows_single($f, w, rb, a, n, out)
            }
            Some(Kernels { dot: $f, rows, tile: None, wide_tile: None, tile_acts: None })
        }};
    }
    match t {
        QType::F32 => entry!(float::dot_f32),
        QType::F16 => entry!(float::dot_f16),
        QType::Q4_0 => entry!(legacy::dot_q4_0),
        QType::Q4_1 => entry!(legacy::dot_q4_1),
        QType::Q5_0 => entry!(legacy::dot_q5_0),
        QType::Q5_1 => entry!(legacy::dot_q5_1),
        QType::Q8_0 => entry!(legacy::dot_q8_0),
        QType::Q2_K => entry!(kquant::dot_q2_k),
        QType::Q3_K => entry!(kquant::dot_q3_k),
        QType::Q4_K => entry!(kquant::dot_q4_k),
        QType::Q5_K => entry!(kquant::dot_q5_k),
        QType::Q6_K => entry!(kquant::dot_q6_k),
        QType::MXFP4 => entry!(mxfp4::dot_mxfp4),
        _ => None,
    }
}
