//! Synthetic models for tests and benchmarks, written with
//! [`GgufWriter`](crate::gguf::GgufWriter) and streamed tensor by tensor, so
//! they may be far larger than RAM.
//!
//! - [`TinyModel`]: a random Mixtral-layout (or dense) llama model,
//!   deterministic from its seed, in either expert layout.
//! - [`upcycle`] / [`upcycle_to`]: a dense llama model turned into an MoE
//!   (Mixtral's layout, or Qwen3-MoE's, OLMoE's, Qwen2-MoE's) whose experts
//!   are all copies of the dense FFN, plus a fitted or random router. With
//!   identical experts and renormalised routing, the MoE computes the dense
//!   model's FFN (up to rounding).
//! - [`SynthSpec`]: full-size Mixtral-8x7B- or Mistral-7B-shaped files
//!   (or smaller ones of the same shape) with llama.cpp's type mixes,
//!   written from random valid blocks at disk speed.

mod blocks;
mod fit;
mod keys;
mod mix;
mod preset;
mod rng;
mod tiny;
mod upcycle;
mod vocab;

use moe_quant::QType;

pub use fit::{fit_routers, spherical_kmeans, FitOptions, FittedRouters, BUILTIN_CORPUS};
pub use mix::{use_more_bits, Mix};
pub use preset::{SynthSpec, TensorPlan, PRESETS};
pub use tiny::{TinyModel, WeightTypes};
pub use upcycle::{check_upcycle, upcycle, upcycle_targets, upcycle_to, Router};

/// The model's expert-layout enum, re-exported so that synthetic files and
/// the loader speak of the same two layouts.
pub use crate::model::ExpertLayout;

/// The name of one FFN weight of layer `l` (`kind` is gate, up or down).
/// `expert` is `None` for a dense FFN or a merged tensor.
pub(crate) fn ffn_name(l: usize, kind: &str, layout: ExpertLayout, expert: Option<usize>) -> String {
    match (layout, expert) {
        (_, None) => format!("blk.{l}.ffn_{kind}.weight"),
        (ExpertLayout::Merged, Some(_)) => format!("blk.{l}.ffn_{kind}_exps.weight"),
        (ExpertLayout::PerExpert, Some(e)) => format!("blk.{l}.ffn_{kind}.{e}.weight"),
    }
}

/// `general.file_type` ("mostly" type) for a model whose bulk is `q`.
pub(crate) fn file_type(q: QType) -> u32 {
    match q {
        QType::F32 => 0,
        QType::F16 => 1,
        QType::Q4_0 => 2,
        QType::Q4_1 => 3,
        QType::Q8_0 => 7,
        QType::Q5_0 => 8,
        QType::Q5_1 => 9,
        QType::Q2_K => 10,
        QType::Q3_K => 12,
        QType::Q4_K => 15,
        QType::Q5_K => 17,
        QType::Q6_K => 18,
        QType::BF16 => 32,
        // llama.cpp's LLAMA_FTYPE_MOSTLY_MXFP4_MOE (gpt-oss: MXFP4 experts).
        QType::MXFP4 => 38,
        QType::Q8_1 | QType::Q8_K => 0,
    }
}
