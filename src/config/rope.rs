//! RoPE as the file asks for it: the `{arch}.rope.*` keys.

use crate::arch::RopeKind;
use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// RoPE as the file asks for it: the pairing, the base, and linear scaling
/// (`rope.scaling.type = linear`, `freq_scale = 1/factor`). Per-dimension
/// frequency factors (Llama 3's `rope_freqs.weight`) are a tensor, bound
/// with the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    pub kind: RopeKind,
    pub base: f32,
    /// θ is multiplied by this (1 unless linear scaling).
    pub freq_scale: f32,
}

/// The `rope.*` keys as llama.cpp reads them: `freq_base` (default 10000),
/// `scaling.type` (default "linear"), `scaling.factor` (or the old
/// `rope.scale_linear`; absent or 0 means none). "none" and "linear" run;
/// YaRN and LongRoPE are refused by name.
pub(super) fn rope_config(md: &Metadata, arch: &str, kind: RopeKind) -> Result<RopeConfig> {
    let key = |k: &str| format!("{arch}.{k}");
    let base = md.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0) as f32;
    if !(base.is_finite() && base > 0.0) {
        return Err(md.error(&key("rope.freq_base"), "a positive number", &base.to_string()));
    }
    let scaling = md.opt_str(&key("rope.scaling.type"))?.unwrap_or("linear");
    let factor_key = match md.get(&key("rope.scaling.factor")) {
        Some(_) => key("rope.scaling.factor"),
        None => key("rope.scale_linear"),
    };
    let factor = md.opt_f64(&factor_key)?.unwrap_or(0.0) as f32;
    let freq_scale = match scaling {
        "none" => 1.0,
        "linear" if factor == 0.0 => 1.0,
        "linear" if factor.is_finite() && factor > 0.0 => 1.0 / factor,
        "linear" => return Err(md.error(&factor_key, "a positive scaling factor", &factor.to_string())),
        other => {
            return Err(Error::Unsupported {
                path: md.path.clone(),
                what: format!(
                    "{} is {other:?}: this engine runs RoPE scaling \"none\" and \"linear\", and Llama 3's \
                     frequency factors (rope_freqs.weight); YaRN and LongRoPE are not supported yet",
                    key("rope.scaling.type")
                ),
            })
        }
    };
    if let Some(a) = md.opt_f64(&key("rope.scaling.attn_factor"))? {
        if a != 1.0 {
            return Err(Error::Unsupported {
                path: md.path.clone(),
                what: format!("{} is {a}: only 1 (no attention scaling) is supported", key("rope.scaling.attn_factor")),
            });
        }
    }
    Ok(RopeConfig { kind, base, freq_scale })
}
