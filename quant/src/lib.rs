//! `moe-quant`: ggml quant block formats and the kernels that compute on them.
//!
//! This crate knows nothing of files or models: it turns byte slices in ggml
//! block layouts into numbers.

#![forbid(unsafe_op_in_unsafe_fn)]

mod qtype;

pub use qtype::QType;
