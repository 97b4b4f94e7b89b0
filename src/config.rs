//! Model hyper-parameters read from GGUF metadata (`llama.*` keys).

use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// Hyper-parameters of a llama-architecture model, dense or Mixtral MoE.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    /// FFN width (per expert for MoE).
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// 0 for dense models.
    pub n_expert: usize,
    pub n_expert_used: usize,
}

impl LlamaConfig {
    pub fn is_moe(&self) -> bool {
        self.n_expert > 0
    }

    /// Width of K and V for one position: `n_head_kv * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of Q: `n_head * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Reads and checks the `llama.*` keys. `n_vocab` comes from
    /// `llama.vocab_size` or, failing that, the tokenizer's token count.
    pub fn from_metadata(md: &Metadata) -> Result<LlamaConfig> {
        let arch = md.str("general.architecture")?;
        if arch != "llama" {
            return Err(Error::Unsupported {
                path: md.path.clone(),
                what: format!(
                    "general.architecture is {arch:?}, which this engine cannot run; it runs the \"llama\" architecture: \
                     Llama 1-3, Mistral and Mixtral (MoE) models and their fine-tunes, as llama.cpp converts them"
                ),
            });
        }
        let n_embd = positive(md, "llama.embedding_length")?;
        let n_layer = positive(md, "llama.block_count")?;
        let n_ff = per_layer(md, "llama.feed_forward_length")?;
        let n_head = per_layer(md, "llama.attention.head_count")?;
        let n_head_kv = match md.get("llama.attention.head_count_kv") {
            Some(_) => per_layer(md, "llama.attention.head_count_kv")?,
            None => n_head,
        };
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(md.error(
                "llama.attention.head_count_kv",
                &format!("a non-zero divisor of head_count ({n_head})"),
                &n_head_kv.to_string(),
            ));
        }
        let head_dim = match md.opt_u64("llama.attention.key_length")? {
            Some(k) => k as usize,
            None => {
                if n_embd % n_head != 0 {
                    return Err(md.error(
                        "llama.attention.head_count",
                        &format!("a divisor of embedding_length ({n_embd})"),
                        &n_head.to_string(),
                    ));
                }
                n_embd / n_head
            }
        };
        if let Some(v) = md.opt_u64("llama.attention.value_length")? {
            if v as usize != head_dim {
                return Err(md.error("llama.attention.value_length", &format!("{head_dim} (= key_length)"), &v.to_string()));
            }
        }
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(md.error("llama.attention.key_length", "an even, non-zero head size", &head_dim.to_string()));
        }
        if let Some(n_rot) = md.opt_u64("llama.rope.dimension_count")? {
            if n_rot as usize != head_dim {
                return Err(md.error("llama.rope.dimension_count", &format!("{head_dim} (the head size)"), &n_rot.to_string()));
            }
        }
        if md.get("llama.rope.scaling.type").is_some_and(|v| v.as_str() != Some("none")) {
            return Err(Error::Unsupported { path: md.path.clone(), what: "RoPE scaling (llama.rope.scaling.*)".into() });
        }
        let rope_base = md.opt_f64("llama.rope.freq_base")?.unwrap_or(10_000.0) as f32;
        let rms_eps = md.f64("llama.attention.layer_norm_rms_epsilon")? as f32;
        if !(rope_base.is_finite() && rope_base > 0.0) {
            return Err(md.error("llama.rope.freq_base", "a positive number", &rope_base.to_string()));
        }
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(md.error("llama.attention.layer_norm_rms_epsilon", "a non-negative number", &rms_eps.to_string()));
        }
        let n_expert = md.opt_u64("llama.expert_count")?.unwrap_or(0) as usize;
        let n_expert_used = md.opt_u64("llama.expert_used_count")?.unwrap_or(0) as usize;
        if n_expert > 0 && !(1..=n_expert).contains(&n_expert_used) {
            return Err(md.error("llama.expert_used_count", &format!("1..={n_expert} (expert_count)"), &n_expert_used.to_string()));
        }
        if n_expert > 256 {
            return Err(md.error("llama.expert_count", "at most 256", &n_expert.to_string()));
        }
        let n_vocab = match md.opt_u64("llama.vocab_size")? {
            Some(v) => v as usize,
            None => md.array("tokenizer.ggml.tokens", "an array of token strings")?.len(),
        };
        let n_ctx_train = md.opt_u64("llama.context_length")?.unwrap_or(2048) as usize;
        Ok(LlamaConfig {
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            rope_base,
            rms_eps,
            n_expert,
            n_expert_used: if n_expert > 0 { n_expert_used } else { 0 },
        })
    }
}

fn positive(md: &Metadata, key: &str) -> Result<usize> {
    let v = md.u64(key)?;
    if v == 0 || v > (1 << 24) {
        return Err(md.error(key, "an integer in 1..=16777216", &v.to_string()));
    }
    Ok(v as usize)
}

/// A key that may be a scalar or a per-layer array; arrays must be uniform
/// (this engine does not run models with per-layer widths).
fn per_layer(md: &Metadata, key: &str) -> Result<usize> {
    match md.get(key) {
        Some(v) if v.as_array().is_some() => {
            let arr = v.as_array().unwrap_or_default();
            let first = arr.first().and_then(|x| x.as_u64());
            match first {
                Some(f) if f > 0 && arr.iter().all(|x| x.as_u64() == Some(f)) => Ok(f as usize),
                _ => Err(md.error(key, "one positive value for all layers", &v.describe())),
            }
        }
        _ => positive(md, key),
    }
}
