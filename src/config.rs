//! Model hyper-parameters read from GGUF metadata (`{arch}.*` keys), for
//! every architecture in [`crate::arch`].

use crate::arch::{Arch, ArchTraits, MoeKind, RopeKind};
use crate::error::{Error, Result};
use crate::gguf::{Metadata, Value};

/// The largest `expert_count` accepted (Qwen3-MoE has 128, some 2025 MoEs 512).
pub const MAX_EXPERTS: usize = 512;

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

/// Hyper-parameters of a model of any supported architecture, dense or MoE.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    /// What the architecture does differently from llama (see [`Arch::traits`]).
    pub traits: ArchTraits,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    /// Dense FFN width (`feed_forward_length`); for a llama-architecture
    /// MoE (Mixtral) also each expert's.
    pub n_ff: usize,
    /// Each routed expert's FFN width (`expert_feed_forward_length`, or `n_ff`).
    pub n_ff_exp: usize,
    /// The shared expert's FFN width (0 without one).
    pub n_ff_shexp: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub rope: RopeConfig,
    pub rms_eps: f32,
    /// 0 for dense models.
    pub n_expert: usize,
    pub n_expert_used: usize,
    /// Layers `0..n_leading_dense` of an MoE have a dense FFN (0 for every
    /// architecture supported today; the pass and the binder honour it).
    pub n_leading_dense: usize,
}

impl ModelConfig {
    pub fn is_moe(&self) -> bool {
        self.n_expert > 0
    }

    /// Whether layer `l` routes to experts.
    pub fn is_moe_layer(&self, l: usize) -> bool {
        self.is_moe() && l >= self.n_leading_dense
    }

    /// Width of K and V for one position: `n_head_kv * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of Q: `n_head * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// The widest FFN hidden row of any layer (dense, expert or shared).
    pub fn n_ff_max(&self) -> usize {
        self.n_ff.max(self.n_ff_exp).max(self.n_ff_shexp)
    }

    /// Reads and checks the `{arch}.*` keys. `n_vocab` comes from
    /// `{arch}.vocab_size` or, failing that, the tokenizer's token count.
    pub fn from_metadata(md: &Metadata) -> Result<ModelConfig> {
        let name = md.str("general.architecture")?;
        let Some(arch) = Arch::from_name(name) else {
            return Err(Error::Unsupported {
                path: md.path.clone(),
                what: format!(
                    "general.architecture is {name:?}, which this engine cannot run; it runs {}, as llama.cpp converts them",
                    Arch::supported_list()
                ),
            });
        };
        let traits = arch.traits();
        let key = |k: &str| format!("{name}.{k}");
        let n_embd = positive(md, &key("embedding_length"))?;
        let n_layer = positive(md, &key("block_count"))?;
        let n_head = per_layer(md, &key("attention.head_count"))?;
        let n_head_kv = match md.get(&key("attention.head_count_kv")) {
            Some(_) => per_layer(md, &key("attention.head_count_kv"))?,
            None => n_head,
        };
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(md.error(&key("attention.head_count_kv"), &format!("a non-zero divisor of head_count ({n_head})"), &n_head_kv.to_string()));
        }
        let head_dim = match md.opt_u64(&key("attention.key_length"))? {
            Some(k) if k == 0 || k > 4096 || k % 2 != 0 => {
                return Err(md.error(&key("attention.key_length"), "an even head size in 2..=4096", &k.to_string()));
            }
            Some(k) => k as usize,
            None => {
                if n_embd % n_head != 0 {
                    return Err(md.error(&key("attention.head_count"), &format!("a divisor of embedding_length ({n_embd})"), &n_head.to_string()));
                }
                n_embd / n_head
            }
        };
        if let Some(v) = md.opt_u64(&key("attention.value_length"))? {
            if v as usize != head_dim {
                return Err(md.error(&key("attention.value_length"), &format!("{head_dim} (= key_length)"), &v.to_string()));
            }
        }
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(md.error(&key("attention.key_length"), "an even, non-zero head size", &head_dim.to_string()));
        }
        if n_head.checked_mul(head_dim).is_none_or(|q| q > 1 << 20) {
            return Err(md.error(&key("attention.head_count"), "head_count × head size at most 2^20", &format!("{n_head} × {head_dim}")));
        }
        if let Some(n_rot) = md.opt_u64(&key("rope.dimension_count"))? {
            if n_rot as usize != head_dim {
                return Err(md.error(&key("rope.dimension_count"), &format!("{head_dim} (the head size; partial rotary is not supported)"), &n_rot.to_string()));
            }
        }
        let rope = rope_config(md, name, traits.rope)?;
        let rms_eps = md.f64(&key("attention.layer_norm_rms_epsilon"))? as f32;
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(md.error(&key("attention.layer_norm_rms_epsilon"), "a non-negative number", &rms_eps.to_string()));
        }
        let n_expert = md.opt_u64(&key("expert_count"))?.unwrap_or(0) as usize;
        let n_expert_used = md.opt_u64(&key("expert_used_count"))?.unwrap_or(0) as usize;
        match traits.moe {
            MoeKind::Dense if n_expert > 0 => {
                return Err(md.error(&key("expert_count"), &format!("absent or 0 (\"{name}\" is a dense architecture)"), &n_expert.to_string()));
            }
            MoeKind::Required if n_expert == 0 => {
                return Err(md.error(&key("expert_count"), &format!("at least 1 (\"{name}\" routes every layer to experts)"), "absent or 0"));
            }
            _ => {}
        }
        if n_expert > MAX_EXPERTS {
            return Err(md.error(&key("expert_count"), &format!("at most {MAX_EXPERTS}"), &n_expert.to_string()));
        }
        if n_expert > 0 && !(1..=n_expert).contains(&n_expert_used) {
            return Err(md.error(&key("expert_used_count"), &format!("1..={n_expert} (expert_count)"), &n_expert_used.to_string()));
        }
        // Dense width: required unless every layer is routed and the
        // experts have their own width key.
        let n_ff_key = key("feed_forward_length");
        let n_ff = match md.get(&n_ff_key) {
            None if traits.expert_ff_key && n_expert > 0 => 0,
            _ => per_layer(md, &n_ff_key)?,
        };
        let n_ff_exp = match traits.expert_ff_key {
            true => match md.get(&key("expert_feed_forward_length")) {
                Some(_) => per_layer(md, &key("expert_feed_forward_length"))?,
                // llama.cpp's fallback: n_ff / n_expert_used.
                None if n_expert > 0 && n_ff >= n_expert_used => n_ff / n_expert_used,
                None if n_expert > 0 => return Err(md.error(&key("expert_feed_forward_length"), "the experts' FFN width", "absent")),
                None => 0,
            },
            false => n_ff,
        };
        let n_ff_shexp = match traits.shared_expert {
            true => match md.opt_u64(&key("expert_shared_feed_forward_length"))? {
                Some(v) if v == 0 || v > 1 << 24 => {
                    return Err(md.error(&key("expert_shared_feed_forward_length"), "an integer in 1..=16777216", &v.to_string()));
                }
                Some(v) => v as usize,
                None if n_ff > 0 => n_ff,
                None => return Err(md.error(&key("expert_shared_feed_forward_length"), "the shared expert's FFN width", "absent")),
            },
            false => 0,
        };
        let n_vocab = match md.opt_u64(&key("vocab_size"))? {
            Some(v) => {
                // A token id past the logits would be found only later, as
                // "token id ... is outside the vocabulary": say it here.
                if let Some(Value::Array(tokens)) = md.get("tokenizer.ggml.tokens") {
                    if v < tokens.len() as u64 {
                        return Err(md.error(&key("vocab_size"), &format!("at least the {} tokens of tokenizer.ggml.tokens", tokens.len()), &v.to_string()));
                    }
                }
                v as usize
            }
            None => md.array("tokenizer.ggml.tokens", "an array of token strings")?.len(),
        };
        let n_ctx_train = md.opt_u64(&key("context_length"))?.unwrap_or(2048) as usize;
        Ok(ModelConfig {
            arch,
            traits,
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff,
            n_ff_exp: if n_expert > 0 { n_ff_exp } else { 0 },
            n_ff_shexp,
            n_head,
            n_head_kv,
            head_dim,
            rope,
            rms_eps,
            n_expert,
            n_expert_used: if n_expert > 0 { n_expert_used } else { 0 },
            n_leading_dense: 0,
        })
    }
}

/// The `rope.*` keys as llama.cpp reads them: `freq_base` (default 10000),
/// `scaling.type` (default "linear"), `scaling.factor` (or the old
/// `rope.scale_linear`; absent or 0 means none). "none" and "linear" run;
/// YaRN and LongRoPE are refused by name.
fn rope_config(md: &Metadata, arch: &str, kind: RopeKind) -> Result<RopeConfig> {
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
        Some(v @ Value::Array(arr)) => {
            let mut values = arr.iter().map(|x| x.as_u64());
            let first = values.next().flatten();
            match first {
                Some(f) if f > 0 && f <= 1 << 24 && values.all(|x| x == Some(f)) => Ok(f as usize),
                _ => Err(md.error(key, "one positive value for all layers", &v.describe())),
            }
        }
        _ => positive(md, key),
    }
}
