//! The hyper-parameter keys every synthetic model writes (`general.*` and
//! `{arch}.*`), in one place for [`super::TinyModel`] and
//! [`super::SynthSpec`]: the keys llama.cpp reads for each architecture.

use crate::arch::Arch;
use crate::gguf::{GgufWriter, Value};

/// A model's shape as its GGUF keys state it.
#[derive(Debug, Clone)]
pub(crate) struct ShapeKeys {
    pub arch: Arch,
    pub name: String,
    pub file_type: u32,
    pub n_ctx: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Written as `attention.key_length`/`value_length` when it is not
    /// n_embd / n_head.
    pub head_dim: usize,
    pub rope_base: f32,
    /// Linear RoPE scaling factor (0: none).
    pub rope_linear: f32,
    /// YaRN RoPE scaling factor (0: none), over an original context of
    /// `n_ctx / factor` (gpt-oss: 32 over 4,096).
    pub rope_yarn: f32,
    /// `attention.sliding_window`, written for architectures with
    /// sliding-window layers.
    pub sliding_window: usize,
    pub rms_eps: f32,
    pub n_vocab: usize,
    pub n_expert: usize,
    pub n_expert_used: usize,
    /// Each expert's width (architectures with `expert_feed_forward_length`).
    pub n_ff_exp: usize,
    /// The shared expert's width (architectures with one).
    pub n_ff_shexp: usize,
}

impl ShapeKeys {
    pub fn write(&self, w: &mut GgufWriter<'_>) {
        let u = |x: usize| Value::U32(x as u32);
        let a = self.arch.name();
        let k = |key: &str| format!("{a}.{key}");
        let traits = self.arch.traits();
        w.add_kv("general.architecture", Value::String(a.into()))
            .add_kv("general.name", Value::String(self.name.clone()))
            .add_kv("general.file_type", Value::U32(self.file_type))
            .add_kv("general.quantization_version", Value::U32(2))
            .add_kv(k("context_length"), u(self.n_ctx))
            .add_kv(k("embedding_length"), u(self.n_embd))
            .add_kv(k("block_count"), u(self.n_layer))
            .add_kv(k("feed_forward_length"), u(self.n_ff))
            .add_kv(k("attention.head_count"), u(self.n_head))
            .add_kv(k("attention.head_count_kv"), u(self.n_head_kv))
            .add_kv(k("rope.freq_base"), Value::F32(self.rope_base))
            .add_kv(k("rope.dimension_count"), u(self.head_dim))
            .add_kv(k("attention.layer_norm_rms_epsilon"), Value::F32(self.rms_eps))
            .add_kv(k("vocab_size"), u(self.n_vocab));
        if self.head_dim * self.n_head != self.n_embd {
            w.add_kv(k("attention.key_length"), u(self.head_dim)).add_kv(k("attention.value_length"), u(self.head_dim));
        }
        if self.rope_linear > 0.0 {
            w.add_kv(k("rope.scaling.type"), Value::String("linear".into())).add_kv(k("rope.scaling.factor"), Value::F32(self.rope_linear));
        }
        if self.rope_yarn > 0.0 {
            w.add_kv(k("rope.scaling.type"), Value::String("yarn".into()))
                .add_kv(k("rope.scaling.factor"), Value::F32(self.rope_yarn))
                .add_kv(k("rope.scaling.original_context_length"), u((self.n_ctx as f32 / self.rope_yarn) as usize));
        }
        if traits.swa_pattern > 0 {
            w.add_kv(k("attention.sliding_window"), u(self.sliding_window));
        }
        if self.n_expert > 0 {
            w.add_kv(k("expert_count"), u(self.n_expert)).add_kv(k("expert_used_count"), u(self.n_expert_used));
            if traits.expert_ff_key {
                w.add_kv(k("expert_feed_forward_length"), u(self.n_ff_exp));
            }
            if traits.shared_expert {
                w.add_kv(k("expert_shared_feed_forward_length"), u(self.n_ff_shexp));
            }
        }
    }
}
