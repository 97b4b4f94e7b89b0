//! Model hyper-parameters read from GGUF metadata (`{arch}.*` keys), for
//! every architecture in [`crate::arch`].

mod limits;
mod rope;

use crate::arch::{Arch, ArchTraits, MoeKind};
use crate::error::{Error, Result};
use crate::gguf::Metadata;

pub use limits::*;
use rope::rope_config;
pub use rope::{RopeConfig, Yarn};

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
    /// Sliding-window attention: a windowed layer's query at position p
    /// sees positions `p − window + 1 ..= p` (llama.cpp's
    /// LLAMA_SWA_TYPE_STANDARD); `None` where every layer sees the whole
    /// context.
    pub swa: Option<SlidingWindow>,
}

/// Which layers attend through a sliding window, and how wide it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingWindow {
    /// `attention.sliding_window`, in positions (≥ 1).
    pub window: usize,
    /// One flag per layer.
    pub layers: Vec<bool>,
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

    /// The window of layer `l`'s attention, or `None` where it sees the
    /// whole context.
    pub fn window(&self, l: usize) -> Option<usize> {
        self.swa.as_ref().filter(|s| s.layers[l]).map(|s| s.window)
    }

    /// The widest FFN hidden row of any layer (dense, expert or shared).
    pub fn n_ff_max(&self) -> usize {
        self.n_ff.max(self.n_ff_exp).max(self.n_ff_shexp)
    }

    /// Reads and checks the `{arch}.*` keys, each against its bound in
    /// [`limits`], and the products derived from them. `n_vocab` comes from
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
        let n_embd = positive(md, &key("embedding_length"), MAX_EMBD)?;
        let n_layer = positive(md, &key("block_count"), MAX_LAYERS)?;
        let heads = Heads::read(md, name, n_embd)?;
        let n_ctx_train = opt_bounded(md, &key("context_length"), 0, MAX_CONTEXT)?.unwrap_or(2048);
        let rope = rope_config(md, name, traits.rope, heads.head_dim, n_ctx_train)?;
        let rms_eps = md.f64(&key("attention.layer_norm_rms_epsilon"))? as f32;
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(md.error(&key("attention.layer_norm_rms_epsilon"), "a non-negative number", &rms_eps.to_string()));
        }
        let experts = Experts::read(md, name, traits)?;
        let ffn = FfnWidths::read(md, name, traits, &experts)?;
        let n_vocab = n_vocab(md, &key("vocab_size"))?;
        let swa = sliding_window(md, name, traits.swa_pattern, n_layer)?;
        Ok(ModelConfig {
            arch,
            traits,
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff: ffn.n_ff,
            n_ff_exp: if experts.n_expert > 0 { ffn.n_ff_exp } else { 0 },
            n_ff_shexp: ffn.n_ff_shexp,
            n_head: heads.n_head,
            n_head_kv: heads.n_head_kv,
            head_dim: heads.head_dim,
            rope,
            rms_eps,
            n_expert: experts.n_expert,
            n_expert_used: experts.n_expert_used,
            n_leading_dense: 0,
            swa,
        })
    }
}

/// The attention heads: their counts and size.
struct Heads {
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
}

impl Heads {
    fn read(md: &Metadata, arch: &str, n_embd: usize) -> Result<Heads> {
        let key = |k: &str| format!("{arch}.{k}");
        let n_head = per_layer(md, &key("attention.head_count"), MAX_HEADS)?;
        let n_head_kv = match md.get(&key("attention.head_count_kv")) {
            Some(_) => per_layer(md, &key("attention.head_count_kv"), MAX_HEADS)?,
            None => n_head,
        };
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(md.error(&key("attention.head_count_kv"), &format!("a divisor of head_count ({n_head})"), &n_head_kv.to_string()));
        }
        let head_dim = match opt_bounded(md, &key("attention.key_length"), 2, MAX_HEAD_DIM)? {
            Some(k) => k,
            None if n_embd.is_multiple_of(n_head) && n_embd / n_head <= MAX_HEAD_DIM as usize => n_embd / n_head,
            None => {
                let expected = format!("a divisor of embedding_length ({n_embd}) giving a head size of at most {MAX_HEAD_DIM} (there is no attention.key_length)");
                return Err(md.error(&key("attention.head_count"), &expected, &n_head.to_string()));
            }
        };
        if !head_dim.is_multiple_of(2) {
            return Err(md.error(&key("attention.key_length"), "an even head size (RoPE rotates pairs)", &head_dim.to_string()));
        }
        if (n_head as u64).checked_mul(head_dim as u64).is_none_or(|q| q > MAX_Q_DIM) {
            return Err(md.error(&key("attention.head_count"), &format!("head_count × head size at most {MAX_Q_DIM}"), &format!("{n_head} × {head_dim}")));
        }
        // Both must equal the head size; compared as read, so that a value
        // past usize can never wrap onto it.
        for (k, what) in [("attention.value_length", "= key_length"), ("rope.dimension_count", "the head size; partial rotary is not supported")] {
            if let Some(v) = md.opt_u64(&key(k))? {
                if v != head_dim as u64 {
                    return Err(md.error(&key(k), &format!("{head_dim} ({what})"), &v.to_string()));
                }
            }
        }
        Ok(Heads { n_head, n_head_kv, head_dim })
    }
}

/// The routed experts: how many, and how many each token uses.
struct Experts {
    n_expert: usize,
    n_expert_used: usize,
}

impl Experts {
    fn read(md: &Metadata, arch: &str, traits: ArchTraits) -> Result<Experts> {
        let key = |k: &str| format!("{arch}.{k}");
        let n_expert = opt_bounded(md, &key("expert_count"), 0, MAX_EXPERTS)?.unwrap_or(0);
        match traits.moe {
            MoeKind::Dense if n_expert > 0 => {
                return Err(md.error(&key("expert_count"), &format!("absent or 0 (\"{arch}\" is a dense architecture)"), &n_expert.to_string()));
            }
            MoeKind::Required if n_expert == 0 => {
                return Err(md.error(&key("expert_count"), &format!("at least 1 (\"{arch}\" routes every layer to experts)"), "absent or 0"));
            }
            _ => {}
        }
        if n_expert == 0 {
            return Ok(Experts { n_expert: 0, n_expert_used: 0 });
        }
        let used = md.opt_u64(&key("expert_used_count"))?.unwrap_or(0);
        let n_expert_used = in_range(md, &key("expert_used_count"), used, 1, n_expert as u64)?;
        Ok(Experts { n_expert, n_expert_used })
    }
}

/// The FFN widths: dense, each routed expert's, the shared expert's.
struct FfnWidths {
    n_ff: usize,
    n_ff_exp: usize,
    n_ff_shexp: usize,
}

impl FfnWidths {
    fn read(md: &Metadata, arch: &str, traits: ArchTraits, experts: &Experts) -> Result<FfnWidths> {
        let key = |k: &str| format!("{arch}.{k}");
        let n_expert = experts.n_expert;
        // Dense width: required unless every layer is routed and the
        // experts have their own width key.
        let n_ff_key = key("feed_forward_length");
        let n_ff = match md.get(&n_ff_key) {
            None if traits.expert_ff_key && n_expert > 0 => 0,
            _ => per_layer(md, &n_ff_key, MAX_FF)?,
        };
        let n_ff_exp = match traits.expert_ff_key {
            true => match md.get(&key("expert_feed_forward_length")) {
                Some(_) => per_layer(md, &key("expert_feed_forward_length"), MAX_FF)?,
                // llama.cpp's fallback: n_ff / n_expert_used.
                None if n_expert > 0 && n_ff >= experts.n_expert_used => n_ff / experts.n_expert_used,
                None if n_expert > 0 => return Err(md.error(&key("expert_feed_forward_length"), "the experts' FFN width", "absent")),
                None => 0,
            },
            false => n_ff,
        };
        let n_ff_shexp = match traits.shared_expert {
            true => match opt_bounded(md, &key("expert_shared_feed_forward_length"), 1, MAX_FF)? {
                Some(v) => v,
                None if n_ff > 0 => n_ff,
                None => return Err(md.error(&key("expert_shared_feed_forward_length"), "the shared expert's FFN width", "absent")),
            },
            false => 0,
        };
        Ok(FfnWidths { n_ff, n_ff_exp, n_ff_shexp })
    }
}

/// `attention.sliding_window` and the layers it applies to: the array
/// `attention.sliding_window_pattern` (one bool per layer), or the pattern
/// n (that key as an integer, else the architecture's), as llama.cpp's
/// `set_swa_pattern`: layer l is windowed when `l % n < n − 1` (n = 0: all).
fn sliding_window(md: &Metadata, arch: &str, default_pattern: u32, n_layer: usize) -> Result<Option<SlidingWindow>> {
    if default_pattern == 0 {
        return Ok(None);
    }
    let key = |k: &str| format!("{arch}.{k}");
    let window = positive(md, &key("attention.sliding_window"), MAX_CONTEXT)?;
    let pattern_key = key("attention.sliding_window_pattern");
    let layers = match md.get(&pattern_key) {
        Some(v) if v.as_array().is_some() => {
            let arr = v.as_array().expect("checked");
            let flags: Option<Vec<bool>> = arr.iter().map(|x| x.as_bool()).collect();
            match flags {
                Some(f) if f.len() == n_layer => f,
                _ => return Err(md.error(&pattern_key, &format!("{n_layer} booleans (one per layer) or an integer"), &arr.describe())),
            }
        }
        _ => {
            let n = opt_bounded(md, &pattern_key, 0, MAX_LAYERS)?.unwrap_or(default_pattern as usize);
            (0..n_layer).map(|l| n == 0 || l % n < n - 1).collect()
        }
    };
    Ok(Some(SlidingWindow { window, layers }))
}

/// `{arch}.vocab_size` (at least the token list's length), or the token
/// list's length; at most [`MAX_VOCAB`] either way.
fn n_vocab(md: &Metadata, vocab_key: &str) -> Result<usize> {
    const TOKENS: &str = "tokenizer.ggml.tokens";
    let tokens = md.get(TOKENS).and_then(|v| v.as_array()).map(|a| a.len() as u64);
    match md.opt_u64(vocab_key)? {
        Some(v) => {
            // A token id past the logits would be found only later, as
            // "token id ... is outside the vocabulary": say it here.
            if let Some(n) = tokens.filter(|&n| v < n) {
                return Err(md.error(vocab_key, &format!("at least the {n} tokens of {TOKENS}"), &v.to_string()));
            }
            in_range(md, vocab_key, v, 1, MAX_VOCAB)
        }
        None => {
            let n = md.array(TOKENS, "an array of token strings")?.len() as u64;
            in_range(md, TOKENS, n, 1, MAX_VOCAB)
        }
    }
}
