//! `TinyMixtral`: a random llama-architecture GGUF with Mixtral-layout
//! experts (or a dense FFN), every key llama.cpp needs, and a tokenizer.
//!
//! Each tensor, and each expert's slab, is its own random stream named after
//! the per-expert tensor name, so the same seed yields byte-identical expert
//! weights in both layouts.

use std::io::Write;
use std::path::{Path, PathBuf};

use moe_quant::QType;

use super::rng::{stream_seed, write_rows, Uniform};
use super::vocab::{byte_level, copied_from};
use super::{ffn_name, file_type, ExpertLayout};
use crate::error::{Error, Result};
use crate::gguf::{GgufWriter, Value};

/// Tensor types per class of weight. Norms are always F32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightTypes {
    pub token_embd: QType,
    /// attn_q, attn_k, attn_v, attn_output.
    pub attn: QType,
    /// Expert (or dense) gate and up.
    pub ffn_gate_up: QType,
    /// Expert (or dense) down.
    pub ffn_down: QType,
    pub output: QType,
    /// `ffn_gate_inp`; llama.cpp writes F32 (old files: F16).
    pub router: QType,
}

impl WeightTypes {
    /// `q` everywhere except the router (F32).
    pub fn uniform(q: QType) -> WeightTypes {
        WeightTypes { token_embd: q, attn: q, ffn_gate_up: q, ffn_down: q, output: q, router: QType::F32 }
    }
}

/// A synthetic llama/Mixtral model. `Default` is a 2-layer, 4-expert top-2
/// model with n_embd 64 in Q8_0.
#[derive(Debug, Clone)]
pub struct TinyMixtral {
    pub n_layer: usize,
    pub n_embd: usize,
    /// The FFN width (of each expert).
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// 0 writes a dense llama model (`ffn_{gate,up,down}.weight`, no router).
    pub n_expert: usize,
    pub n_expert_used: usize,
    /// Vocabulary size of the byte-level vocab (>= 257); ignored when
    /// `tokenizer_from` is set.
    pub n_vocab: usize,
    pub n_ctx: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub types: WeightTypes,
    pub layout: ExpertLayout,
    /// Omit `output.weight` (llama.cpp then uses token_embd).
    pub tied_output: bool,
    pub seed: u64,
    /// Copy every `tokenizer.*` key from this GGUF (its token count is the
    /// vocabulary size), e.g. one of the shared tiny models.
    pub tokenizer_from: Option<PathBuf>,
}

impl Default for TinyMixtral {
    fn default() -> TinyMixtral {
        TinyMixtral {
            n_layer: 2,
            n_embd: 64,
            n_ff: 128,
            n_head: 4,
            n_head_kv: 2,
            n_expert: 4,
            n_expert_used: 2,
            n_vocab: 260,
            n_ctx: 512,
            rope_base: 10000.0,
            rms_eps: 1e-5,
            types: WeightTypes::uniform(QType::Q8_0),
            layout: ExpertLayout::Merged,
            tied_output: false,
            seed: 0,
            tokenizer_from: None,
        }
    }
}

impl TinyMixtral {
    fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(format!("TinyMixtral: {what}")));
        if self.n_layer == 0 || self.n_embd == 0 || self.n_ff == 0 || self.n_head == 0 || self.n_head_kv == 0 {
            return bad(format!("all sizes must be non-zero: {self:?}"));
        }
        if !self.n_embd.is_multiple_of(self.n_head) || !(self.n_embd / self.n_head).is_multiple_of(2) {
            return bad(format!("n_embd {} must be n_head {} × an even head size", self.n_embd, self.n_head));
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!("n_head {} must be a multiple of n_head_kv {}", self.n_head, self.n_head_kv));
        }
        if self.n_expert > 0 && !(1..=self.n_expert).contains(&self.n_expert_used) {
            return bad(format!("n_expert_used {} must be in 1..={}", self.n_expert_used, self.n_expert));
        }
        Ok(())
    }

    /// Writes the model to `path` (streamed: memory use is a few batches of rows).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        self.check()?;
        let vocab = match &self.tokenizer_from {
            Some(p) => copied_from(p)?,
            None => byte_level(self.n_vocab)?,
        };
        let mut w = GgufWriter::new();
        self.add_keys(&mut w, vocab.n_vocab);
        for (k, v) in vocab.keys {
            w.add_kv(k, v);
        }
        self.add_tensors(&mut w, vocab.n_vocab as u64)?;
        w.write(path)
    }

    fn add_keys(&self, w: &mut GgufWriter<'_>, n_vocab: usize) {
        let u = |x: usize| Value::U32(x as u32);
        w.add_kv("general.architecture", Value::String("llama".into()))
            .add_kv("general.name", Value::String(format!("moe synthetic (seed {})", self.seed)))
            .add_kv("general.file_type", Value::U32(file_type(self.types.ffn_gate_up)))
            .add_kv("general.quantization_version", Value::U32(2))
            .add_kv("llama.context_length", u(self.n_ctx))
            .add_kv("llama.embedding_length", u(self.n_embd))
            .add_kv("llama.block_count", u(self.n_layer))
            .add_kv("llama.feed_forward_length", u(self.n_ff))
            .add_kv("llama.attention.head_count", u(self.n_head))
            .add_kv("llama.attention.head_count_kv", u(self.n_head_kv))
            .add_kv("llama.rope.freq_base", Value::F32(self.rope_base))
            .add_kv("llama.rope.dimension_count", u(self.n_embd / self.n_head))
            .add_kv("llama.attention.layer_norm_rms_epsilon", Value::F32(self.rms_eps))
            .add_kv("llama.vocab_size", u(n_vocab));
        if self.n_expert > 0 {
            w.add_kv("llama.expert_count", u(self.n_expert)).add_kv("llama.expert_used_count", u(self.n_expert_used));
        }
    }

    fn add_tensors(&self, w: &mut GgufWriter<'_>, n_vocab: u64) -> Result<()> {
        let t = self.types;
        let (embd, ff) = (self.n_embd as u64, self.n_ff as u64);
        let head_dim = embd / self.n_head as u64;
        let (q_dim, kv_dim) = (head_dim * self.n_head as u64, head_dim * self.n_head_kv as u64);
        let norm = Uniform { center: 1.0, half_width: 0.1 };
        let seed = self.seed;
        random_tensor(w, seed, "token_embd.weight", t.token_embd, &[embd, n_vocab], Uniform { center: 0.0, half_width: 1.0 })?;
        random_tensor(w, seed, "output_norm.weight", QType::F32, &[embd], norm)?;
        if !self.tied_output {
            random_tensor(w, seed, "output.weight", t.output, &[embd, n_vocab], Uniform::weights(embd))?;
        }
        for l in 0..self.n_layer {
            let p = format!("blk.{l}");
            random_tensor(w, seed, &format!("{p}.attn_norm.weight"), QType::F32, &[embd], norm)?;
            random_tensor(w, seed, &format!("{p}.attn_q.weight"), t.attn, &[embd, q_dim], Uniform::weights(embd))?;
            random_tensor(w, seed, &format!("{p}.attn_k.weight"), t.attn, &[embd, kv_dim], Uniform::weights(embd))?;
            random_tensor(w, seed, &format!("{p}.attn_v.weight"), t.attn, &[embd, kv_dim], Uniform::weights(embd))?;
            random_tensor(w, seed, &format!("{p}.attn_output.weight"), t.attn, &[q_dim, embd], Uniform::weights(q_dim))?;
            random_tensor(w, seed, &format!("{p}.ffn_norm.weight"), QType::F32, &[embd], norm)?;
            if self.n_expert == 0 {
                let dense = ExpertLayout::Merged;
                random_tensor(w, seed, &ffn_name(l, "gate", dense, None), t.ffn_gate_up, &[embd, ff], Uniform::weights(embd))?;
                random_tensor(w, seed, &ffn_name(l, "up", dense, None), t.ffn_gate_up, &[embd, ff], Uniform::weights(embd))?;
                random_tensor(w, seed, &ffn_name(l, "down", dense, None), t.ffn_down, &[ff, embd], Uniform::weights(ff))?;
                continue;
            }
            let n_e = self.n_expert as u64;
            // A sharper router than the weights, so that routing varies by token.
            let router = Uniform { center: 0.0, half_width: 4.0 * (3.0 / embd as f32).sqrt() };
            random_tensor(w, seed, &format!("{p}.ffn_gate_inp.weight"), t.router, &[embd, n_e], router)?;
            for (kind, qtype, ne0, ne1) in
                [("gate", t.ffn_gate_up, embd, ff), ("up", t.ffn_gate_up, embd, ff), ("down", t.ffn_down, ff, embd)]
            {
                let dist = Uniform::weights(ne0);
                // Expert e's stream is named after its per-expert tensor in both layouts.
                let streams: Vec<u64> = (0..self.n_expert)
                    .map(|e| stream_seed(seed, &ffn_name(l, kind, ExpertLayout::PerExpert, Some(e))))
                    .collect();
                match self.layout {
                    ExpertLayout::Merged => {
                        w.add_tensor_with(
                            &ffn_name(l, kind, ExpertLayout::Merged, Some(0)),
                            qtype,
                            &[ne0, ne1, n_e],
                            move |out: &mut dyn Write| {
                                streams.iter().try_for_each(|&s| write_rows(out, qtype, ne0, ne1, s, dist))
                            },
                        )?;
                    }
                    ExpertLayout::PerExpert => {
                        for (e, s) in streams.into_iter().enumerate() {
                            w.add_tensor_with(
                                &ffn_name(l, kind, ExpertLayout::PerExpert, Some(e)),
                                qtype,
                                &[ne0, ne1],
                                move |out: &mut dyn Write| write_rows(out, qtype, ne0, ne1, s, dist),
                            )?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Adds one random tensor, streamed row by row at write time.
fn random_tensor(w: &mut GgufWriter<'_>, seed: u64, name: &str, qtype: QType, dims: &[u64], dist: Uniform) -> Result<()> {
    let stream = stream_seed(seed, name);
    let (ne0, rows) = (dims[0], dims[1..].iter().product());
    w.add_tensor_with(name, qtype, dims, move |out: &mut dyn Write| write_rows(out, qtype, ne0, rows, stream, dist))
}
