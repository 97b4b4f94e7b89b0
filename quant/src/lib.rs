//! `moe-quant`: ggml quant block formats and the kernels that compute on them.
//!
//! This crate knows nothing of files or models: it turns byte slices in ggml
//! block layouts into numbers.
//!
//! - [`blocks`]: one `#[repr(C)]` struct per format, parsed safely from bytes.
//! - [`dequantize_row`]: blocks to f32 (bit-identical to ggml).
//! - [`quantize_activations`]: f32 activations to the `vec_dot_type` of a
//!   weight type, bit-identical to llama.cpp on x86-64.
//! - [`vec_dot`] / [`QMatrix::matvec`]: dot products and matrix-vector
//!   products, dispatched to a kernel tier ([`dispatch`]): AVX-512 VNNI,
//!   AVX2, portable `wide` SIMD, or [`scalar`], the reference tier. The tier
//!   is detected once at run time; `MOE_QUANT_TIER` forces one.
//!
//! `unsafe` is denied crate-wide and allowed only in the x86 SIMD modules
//! (`simd::avx2`, `simd::avx512`) and the compute [`pool`], where every
//! block states why it is sound.
//! - [`quantize_row`]: weight quantizers for writing test models.

#![deny(unsafe_code)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod blocks;
pub mod dispatch;
pub mod fp;
pub mod pool;
pub mod scalar;

mod simd;

mod dequant;
mod matvec;
mod qtype;
mod quantize_act;
mod quantize_weights;

pub use dequant::dequantize_row;
pub use dispatch::{
    available_tiers, kernels_for, rows_dot_fn_for, tier, vec_dot, vec_dot_fn_for, vec_dot_with,
    Kernels, RowsDotFn, Tier, TileActsFn, TileFn, VecDotFn,
};
pub use matvec::{Activations, QMatrix};
pub use qtype::QType;
pub use quantize_act::quantize_activations;
pub use quantize_weights::quantize_row;
