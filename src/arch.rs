//! The architectures this engine runs, and how each differs from the
//! llama/Mixtral pass, as data. This is the one place that knows an
//! architecture by name: everything else asks for a trait (the rope type,
//! where a QK norm sits, how routing weights are normalised) or looks for
//! an optional tensor (biases, a shared expert, RoPE frequency factors).
//!
//! The semantics come from llama.cpp: `src/models/{llama,qwen2,qwen2moe,
//! qwen3,qwen3moe,olmoe,openai-moe}.cpp` (graph), `llama_model_rope_type` in
//! `src/llama-model.cpp` (rope type), and `build_moe_ffn` in
//! `src/llama-graph.cpp` (routing).

use std::fmt;

/// An architecture, as `general.architecture` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Llama 1-3, Mistral, Mixtral (MoE) and their fine-tunes.
    Llama,
    /// Qwen2 / Qwen2.5 dense: QKV biases.
    Qwen2,
    /// Qwen1.5-MoE / Qwen2-MoE: QKV biases, a shared expert with a sigmoid gate.
    Qwen2Moe,
    /// Qwen3 dense: per-head QK RMSNorm.
    Qwen3,
    /// Qwen3-MoE (Qwen3-30B-A3B, Qwen3-Coder): per-head QK RMSNorm, 128 experts.
    Qwen3Moe,
    /// OLMoE: full-width QK RMSNorm, routing weights not renormalised.
    Olmoe,
    /// gpt-oss (llama.cpp's `openai-moe`): biases everywhere, attention
    /// sinks, sliding-window layers, YaRN, a softmax over the chosen
    /// experts' logits, the clamped SwiGLU.
    GptOss,
}

/// How the router's logits become the chosen experts' weights
/// (`build_moe_ffn`'s gating function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gating {
    /// Softmax over every expert, then the top-k of the probabilities
    /// (renormalised where `norm_topk`): LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX.
    Softmax,
    /// The top-k of the logits, then a softmax over those k:
    /// LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT (gpt-oss).
    SoftmaxTopK,
}

/// The gated activation of an FFN's hidden row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfnAct {
    /// `SiLU(gate) · up`.
    SwiGlu,
    /// gpt-oss's clamped SwiGLU (`ggml_swiglu_oai`, α 1.702, limit 7):
    /// `x·σ(α·x) · (y + 1)` with `x = min(gate, 7)`, `y = clamp(up, ±7)`.
    SwiGluOai,
}

/// How RoPE pairs the dimensions of a head (ggml's rope `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeKind {
    /// Adjacent pairs `(2i, 2i+1)` (GGML_ROPE_TYPE_NORMAL; llama files
    /// carry Q/K rows permuted for it).
    Normal,
    /// Pairs `(i, i + head_dim/2)` (GGML_ROPE_TYPE_NEOX: the HF layout).
    Neox,
}

/// Where an RMSNorm of Q and K sits, if any (after the projection and its
/// bias, before RoPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkNorm {
    None,
    /// Each head's `head_dim` values, one weight vector shared by the heads
    /// (`attn_q_norm.weight` has `head_dim` elements): Qwen3.
    PerHead,
    /// The whole Q (K) row of a token (`attn_q_norm.weight` has `q_dim`
    /// elements): OLMoE.
    Full,
}

impl QkNorm {
    /// The lengths of the Q and K norm weights for heads of `head_dim`,
    /// Q rows of `q_dim` and K rows of `kv_dim`; `None` without a QK norm.
    pub fn widths(self, head_dim: usize, q_dim: usize, kv_dim: usize) -> Option<(usize, usize)> {
        match self {
            QkNorm::None => None,
            QkNorm::PerHead => Some((head_dim, head_dim)),
            QkNorm::Full => Some((q_dim, kv_dim)),
        }
    }
}

/// What an architecture does differently from the llama pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchTraits {
    pub rope: RopeKind,
    pub qk_norm: QkNorm,
    /// MoE: routing weights of the top-k renormalised to sum to 1
    /// (`build_moe_ffn`'s `norm_w`).
    pub norm_topk: bool,
    /// Every layer routes to experts (`expert_count` is required).
    pub moe: MoeKind,
    /// A shared expert with a sigmoid gate runs beside the routed ones.
    pub shared_expert: bool,
    /// Expert FFN width comes from `{arch}.expert_feed_forward_length`.
    pub expert_ff_key: bool,
    /// Without `output.weight` the output is `token_embd.weight` (tied);
    /// where false, llama.cpp requires `output.weight` and so do we.
    pub tied_output: bool,
    pub gating: Gating,
    pub ffn_act: FfnAct,
    /// One learned logit per query head joins each softmax of the
    /// attention (`blk.N.attn_sinks.weight`, required).
    pub attn_sinks: bool,
    /// Sliding-window attention on some layers (`attention.sliding_window`
    /// required): llama.cpp's default pattern n, layer l windowed when
    /// `l % n < n − 1`, unless the file gives `sliding_window_pattern`.
    /// 0: every layer attends to the whole context.
    pub swa_pattern: u32,
    /// The FFN's input norm: `blk.N.{ffn_norm}.weight`.
    pub ffn_norm: &'static str,
}

/// Whether an architecture's layers are dense, routed, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoeKind {
    /// Never experts.
    Dense,
    /// Experts when `expert_count` > 0 (llama: Mixtral).
    Optional,
    /// Always experts.
    Required,
}

impl Arch {
    /// Every architecture this engine runs, in the order an error lists them.
    pub const ALL: [Arch; 7] = [Arch::Llama, Arch::Qwen3Moe, Arch::GptOss, Arch::Qwen3, Arch::Qwen2Moe, Arch::Qwen2, Arch::Olmoe];

    /// The `general.architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen2Moe => "qwen2moe",
            Arch::Qwen3 => "qwen3",
            Arch::Qwen3Moe => "qwen3moe",
            Arch::Olmoe => "olmoe",
            Arch::GptOss => "gpt-oss",
        }
    }

    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// `"llama" (Llama, Mistral, Mixtral), "qwen3moe" (...), ...`: for errors.
    pub fn supported_list() -> String {
        Arch::ALL.iter().map(|a| format!("{:?} ({})", a.name(), a.family())).collect::<Vec<_>>().join(", ")
    }

    /// The model families a user knows the architecture by.
    pub fn family(self) -> &'static str {
        match self {
            Arch::Llama => "Llama 1-3, Mistral, Mixtral",
            Arch::Qwen2 => "Qwen2, Qwen2.5",
            Arch::Qwen2Moe => "Qwen1.5-MoE, Qwen2-MoE",
            Arch::Qwen3 => "Qwen3 dense",
            Arch::Qwen3Moe => "Qwen3-30B-A3B, Qwen3-Coder, Qwen3-235B-A22B",
            Arch::Olmoe => "OLMoE",
            Arch::GptOss => "gpt-oss-20b, gpt-oss-120b",
        }
    }

    pub fn traits(self) -> ArchTraits {
        let base = ArchTraits {
            rope: RopeKind::Neox,
            qk_norm: QkNorm::None,
            norm_topk: true,
            moe: MoeKind::Dense,
            shared_expert: false,
            expert_ff_key: false,
            tied_output: true,
            gating: Gating::Softmax,
            ffn_act: FfnAct::SwiGlu,
            attn_sinks: false,
            swa_pattern: 0,
            ffn_norm: "ffn_norm",
        };
        match self {
            Arch::Llama => ArchTraits { rope: RopeKind::Normal, moe: MoeKind::Optional, ..base },
            Arch::Qwen2 => base,
            Arch::Qwen2Moe => ArchTraits { norm_topk: false, moe: MoeKind::Required, shared_expert: true, expert_ff_key: true, tied_output: false, ..base },
            Arch::Qwen3 => ArchTraits { qk_norm: QkNorm::PerHead, ..base },
            Arch::Qwen3Moe => ArchTraits { qk_norm: QkNorm::PerHead, moe: MoeKind::Required, expert_ff_key: true, ..base },
            Arch::Olmoe => ArchTraits { qk_norm: QkNorm::Full, norm_topk: false, moe: MoeKind::Required, tied_output: false, ..base },
            Arch::GptOss => ArchTraits {
                norm_topk: false,
                moe: MoeKind::Required,
                expert_ff_key: true,
                tied_output: false,
                gating: Gating::SoftmaxTopK,
                ffn_act: FfnAct::SwiGluOai,
                attn_sinks: true,
                swa_pattern: 2,
                ffn_norm: "post_attention_norm",
                ..base
            },
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_list_names_every_one() {
        for a in Arch::ALL {
            assert_eq!(Arch::from_name(a.name()), Some(a));
            assert!(Arch::supported_list().contains(&format!("\"{}\"", a.name())));
        }
        assert_eq!(Arch::from_name("gemma3"), None);
    }

    #[test]
    fn rope_types_follow_llama_cpp() {
        // llama_model_rope_type: LLAMA → NORM; QWEN2/QWEN2MOE/QWEN3/QWEN3MOE/OLMOE → NEOX.
        assert_eq!(Arch::Llama.traits().rope, RopeKind::Normal);
        for a in [Arch::Qwen2, Arch::Qwen2Moe, Arch::Qwen3, Arch::Qwen3Moe, Arch::Olmoe] {
            assert_eq!(a.traits().rope, RopeKind::Neox, "{a}");
        }
    }
}
