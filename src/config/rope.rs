//! RoPE as the file asks for it: the `{arch}.rope.*` keys.

use crate::arch::RopeKind;
use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// RoPE as the file asks for it: the pairing, the base, linear scaling
/// (`freq_scale = 1/factor`) or YaRN, and the attention factor that
/// scales every cos and sin. Per-dimension frequency factors (Llama 3's
/// `rope_freqs.weight`) are a tensor, bound with the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    pub kind: RopeKind,
    pub base: f32,
    /// θ is multiplied by this (1 unless scaled: 1/factor).
    pub freq_scale: f32,
    /// Every cos and sin is multiplied by this (ggml's `mscale`; 1 unless
    /// YaRN or `rope.scaling.attn_factor`).
    pub mscale: f32,
    pub yarn: Option<Yarn>,
}

/// YaRN's extrapolation ramp as ggml's `rope_yarn` applies it (llama.cpp
/// sets `ext_factor` 1, `beta_fast` 32, `beta_slow` 1 for YaRN files).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    /// `ggml_rope_yarn_corr_dims`: the pair indices between which θ moves
    /// from extrapolated to interpolated.
    pub corr_dims: [f32; 2],
    pub ext_factor: f32,
}

/// llama.cpp's YaRN defaults (`llama_hparams::yarn_beta_fast`, `_slow`).
const YARN_BETA_FAST: f32 = 32.0;
const YARN_BETA_SLOW: f32 = 1.0;

/// The `rope.*` keys as llama.cpp reads them: `freq_base` (default 10000),
/// `scaling.type` (default "linear"), `scaling.factor` (or the old
/// `rope.scale_linear`; absent or 0 means none),
/// `scaling.original_context_length` (YaRN; default the training context)
/// and `scaling.attn_factor` (default 1). "none", "linear" and "yarn" run;
/// LongRoPE is refused by name.
pub(super) fn rope_config(md: &Metadata, arch: &str, kind: RopeKind, head_dim: usize, n_ctx_train: usize) -> Result<RopeConfig> {
    let key = |k: &str| format!("{arch}.{k}");
    let base = md.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0) as f32;
    if !(base.is_finite() && base > 0.0) {
        return Err(md.error(&key("rope.freq_base"), "a positive number", &base.to_string()));
    }
    if let Some(b) = md.opt_f64(&key("rope.freq_base_swa"))? {
        if b as f32 != base {
            return Err(Error::Unsupported {
                path: md.path.clone(),
                what: format!("{} is {b}, unlike rope.freq_base ({base}): another RoPE base for the sliding-window layers is not supported yet", key("rope.freq_base_swa")),
            });
        }
    }
    let scaling = md.opt_str(&key("rope.scaling.type"))?.unwrap_or("linear");
    let factor_key = match md.get(&key("rope.scaling.factor")) {
        Some(_) => key("rope.scaling.factor"),
        None => key("rope.scale_linear"),
    };
    let factor = md.opt_f64(&factor_key)?.unwrap_or(0.0) as f32;
    let freq_scale = match scaling {
        "none" => 1.0,
        "linear" | "yarn" if factor == 0.0 => 1.0,
        "linear" | "yarn" if factor.is_finite() && factor > 0.0 => 1.0 / factor,
        "linear" | "yarn" => return Err(md.error(&factor_key, "a positive scaling factor", &factor.to_string())),
        other => {
            return Err(Error::Unsupported {
                path: md.path.clone(),
                what: format!(
                    "{} is {other:?}: this engine runs RoPE scaling \"none\", \"linear\" and \"yarn\", and Llama 3's \
                     frequency factors (rope_freqs.weight); LongRoPE is not supported yet",
                    key("rope.scaling.type")
                ),
            })
        }
    };
    let attn_key = key("rope.scaling.attn_factor");
    let rope_attn_factor = md.opt_f64(&attn_key)?.unwrap_or(1.0) as f32;
    if !(rope_attn_factor.is_finite() && rope_attn_factor > 0.0) {
        return Err(md.error(&attn_key, "a positive number", &rope_attn_factor.to_string()));
    }
    // llama_context's YaRN set-up: attn_factor = get_mscale(factor) / (1 +
    // 0.1·ln factor), which rope_yarn's own (1 + 0.1·ln factor) cancels.
    let (yarn, mut attn_factor) = match scaling {
        "yarn" => {
            let n_ctx_orig = match md.opt_u64(&key("rope.scaling.original_context_length"))? {
                Some(n) if n > 0 && n <= u32::MAX as u64 => n as f32,
                Some(n) => return Err(md.error(&key("rope.scaling.original_context_length"), "a positive context length", &n.to_string())),
                None => n_ctx_train as f32,
            };
            let factor = 1.0 / freq_scale;
            let mscale = if factor <= 1.0 { 1.0 } else { 0.1f32.mul_add(factor.ln(), 1.0) };
            let attn = mscale * (1.0 / 0.1f32.mul_add(factor.ln(), 1.0));
            (Some(Yarn { corr_dims: yarn_corr_dims(head_dim, n_ctx_orig, base), ext_factor: 1.0 }), attn)
        }
        _ => (None, 1.0),
    };
    attn_factor *= rope_attn_factor;
    // rope_yarn: with ext_factor ≠ 0, mscale ·= 1 + 0.1·ln(1/freq_scale).
    let mscale = match yarn {
        Some(_) => attn_factor * 0.1f32.mul_add((1.0 / freq_scale).ln(), 1.0),
        None => attn_factor,
    };
    Ok(RopeConfig { kind, base, freq_scale, mscale, yarn })
}

/// `ggml_rope_yarn_corr_dims` for heads of `n_dims`: the (floored, ceiled)
/// dimensions at which `beta_fast` and `beta_slow` rotations fit the
/// original context.
fn yarn_corr_dims(n_dims: usize, n_ctx_orig: f32, base: f32) -> [f32; 2] {
    let dim = |n_rot: f32| n_dims as f32 * (n_ctx_orig / (n_rot * 2.0 * std::f32::consts::PI)).ln() / (2.0 * base.ln());
    let start = dim(YARN_BETA_FAST).floor();
    let end = dim(YARN_BETA_SLOW).ceil();
    [start.max(0.0), end.min(n_dims as f32 - 1.0)]
}
