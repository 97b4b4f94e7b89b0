//! `TinyModel`: a random GGUF of any architecture this engine runs (llama
//! dense or Mixtral-layout MoE, Qwen2/Qwen3 dense and MoE, OLMoE), with
//! every key and tensor llama.cpp needs for that architecture, and a
//! tokenizer.
//!
//! Each tensor, and each expert's slab, is its own random stream named after
//! the per-expert tensor name, so the same seed yields byte-identical expert
//! weights in both layouts.

use std::io::Write;
use std::path::{Path, PathBuf};

use moe_quant::QType;

use super::keys::ShapeKeys;
use super::rng::{stream_seed, write_rows, Uniform};
use crate::arch::{Arch, MoeKind};
use super::vocab::{byte_level, copied_from};
use super::{ffn_name, file_type, ExpertLayout};
use crate::error::{Error, Result};
use crate::gguf::GgufWriter;

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

/// A synthetic model. `Default` is a 2-layer, 4-expert top-2 llama
/// (Mixtral-layout) model with n_embd 64 in Q8_0.
#[derive(Debug, Clone)]
pub struct TinyModel {
    /// The architecture written (`general.architecture`, key prefix, and
    /// the tensors it has: QKV biases for Qwen2, QK norms for Qwen3/OLMoE,
    /// a shared expert for Qwen2-MoE).
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    /// The FFN width (dense, or of each expert when `n_ff_exp` is 0).
    pub n_ff: usize,
    /// Qwen2/3-MoE: each expert's width (`expert_feed_forward_length`);
    /// 0 uses `n_ff`. Other architectures' experts are `n_ff` wide.
    pub n_ff_exp: usize,
    /// Qwen2-MoE: the shared expert's width; 0 uses `n_ff`.
    pub n_ff_shexp: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Head size (`attention.key_length`); 0 means n_embd / n_head.
    pub head_dim: usize,
    /// Write Llama 3 RoPE frequency factors (`rope_freqs.weight`, as
    /// convert_hf_to_gguf computes them for factor 8, low/high-frequency
    /// factors 1/4, original context `n_ctx / 8`).
    pub rope_freqs: bool,
    /// Linear RoPE scaling factor (`rope.scaling.type = linear`); 0: none.
    pub rope_linear: f32,
    /// YaRN RoPE scaling factor (`rope.scaling.type = yarn`, original
    /// context `n_ctx / factor`); 0: none.
    pub rope_yarn: f32,
    /// gpt-oss: the sliding window of its windowed layers (even layers,
    /// llama.cpp's default pattern).
    pub sliding_window: usize,
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
    /// `general.name` (default: "moe synthetic (seed N)").
    pub name: Option<String>,
}

impl Default for TinyModel {
    fn default() -> TinyModel {
        TinyModel {
            arch: Arch::Llama,
            n_layer: 2,
            n_embd: 64,
            n_ff: 128,
            n_ff_exp: 0,
            n_ff_shexp: 0,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 0,
            rope_freqs: false,
            rope_linear: 0.0,
            rope_yarn: 0.0,
            sliding_window: 128,
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
            name: None,
        }
    }
}

impl TinyModel {
    fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(format!("TinyModel: {what}")));
        if self.n_layer == 0 || self.n_embd == 0 || self.n_ff == 0 || self.n_head == 0 || self.n_head_kv == 0 {
            return bad(format!("all sizes must be non-zero: {self:?}"));
        }
        if self.head_dim == 0 && (!self.n_embd.is_multiple_of(self.n_head) || !(self.n_embd / self.n_head).is_multiple_of(2)) {
            return bad(format!("n_embd {} must be n_head {} × an even head size", self.n_embd, self.n_head));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!("head_dim {} must be even", self.head_dim));
        }
        if self.tied_output && !self.arch.traits().tied_output {
            return bad(format!("{} has no tied output (llama.cpp requires output.weight)", self.arch));
        }
        match self.arch.traits().moe {
            MoeKind::Dense if self.n_expert > 0 => return bad(format!("{} is dense: n_expert must be 0", self.arch)),
            MoeKind::Required if self.n_expert == 0 => return bad(format!("{} needs experts: n_expert must be > 0", self.arch)),
            _ => {}
        }
        if self.arch.traits().swa_pattern > 0 && self.sliding_window == 0 {
            return bad(format!("{} has sliding-window layers: sliding_window must be > 0", self.arch));
        }
        if self.rope_linear > 0.0 && self.rope_yarn > 0.0 {
            return bad("rope_linear and rope_yarn are two scalings; give one".into());
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!("n_head {} must be a multiple of n_head_kv {}", self.n_head, self.n_head_kv));
        }
        if self.n_expert > 0 && !(1..=self.n_expert).contains(&self.n_expert_used) {
            return bad(format!("n_expert_used {} must be in 1..={}", self.n_expert_used, self.n_expert));
        }
        Ok(())
    }

    /// The head size written.
    pub fn head_dim(&self) -> usize {
        if self.head_dim > 0 {
            self.head_dim
        } else {
            self.n_embd / self.n_head
        }
    }

    /// Each expert's width: `n_ff_exp` where the architecture states it
    /// apart (`expert_feed_forward_length`), else `n_ff`.
    fn n_ff_exp(&self) -> usize {
        if self.arch.traits().expert_ff_key && self.n_ff_exp > 0 { self.n_ff_exp } else { self.n_ff }
    }

    fn n_ff_shexp(&self) -> usize {
        if self.n_ff_shexp > 0 { self.n_ff_shexp } else { self.n_ff }
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
        ShapeKeys {
            arch: self.arch,
            name: self.name.clone().unwrap_or_else(|| format!("moe synthetic (seed {})", self.seed)),
            file_type: file_type(self.types.ffn_gate_up),
            n_ctx: self.n_ctx,
            n_embd: self.n_embd,
            n_layer: self.n_layer,
            n_ff: self.n_ff,
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim(),
            rope_base: self.rope_base,
            rope_linear: self.rope_linear,
            rope_yarn: self.rope_yarn,
            sliding_window: self.sliding_window,
            rms_eps: self.rms_eps,
            n_vocab,
            n_expert: self.n_expert,
            n_expert_used: self.n_expert_used,
            n_ff_exp: self.n_ff_exp(),
            n_ff_shexp: self.n_ff_shexp(),
        }
        .write(w);
    }

    fn add_tensors(&self, w: &mut GgufWriter<'_>, n_vocab: u64) -> Result<()> {
        let t = self.types;
        let (embd, ff) = (self.n_embd as u64, self.n_ff as u64);
        let ff_exp = self.n_ff_exp() as u64;
        let head_dim = self.head_dim() as u64;
        let traits = self.arch.traits();
        let bias = Uniform { center: 0.0, half_width: 0.5 };
        let (q_dim, kv_dim) = (head_dim * self.n_head as u64, head_dim * self.n_head_kv as u64);
        let norm = Uniform { center: 1.0, half_width: 0.1 };
        let seed = self.seed;
        random_tensor(w, seed, "token_embd.weight", t.token_embd, &[embd, n_vocab], Uniform { center: 0.0, half_width: 1.0 })?;
        random_tensor(w, seed, "output_norm.weight", QType::F32, &[embd], norm)?;
        if !self.tied_output {
            random_tensor(w, seed, "output.weight", t.output, &[embd, n_vocab], Uniform::weights(embd))?;
        }
        if self.rope_freqs {
            let factors = llama3_rope_factors(self.rope_base, head_dim as usize, self.n_ctx / 8);
            let bytes: Vec<u8> = factors.iter().flat_map(|f| f.to_le_bytes()).collect();
            w.add_tensor("rope_freqs.weight", QType::F32, &[head_dim / 2], bytes)?;
        }
        for l in 0..self.n_layer {
            let p = format!("blk.{l}");
            random_tensor(w, seed, &format!("{p}.attn_norm.weight"), QType::F32, &[embd], norm)?;
            random_tensor(w, seed, &format!("{p}.attn_q.weight"), t.attn, &[embd, q_dim], Uniform::weights(embd))?;
            random_tensor(w, seed, &format!("{p}.attn_k.weight"), t.attn, &[embd, kv_dim], Uniform::weights(embd))?;
            random_tensor(w, seed, &format!("{p}.attn_v.weight"), t.attn, &[embd, kv_dim], Uniform::weights(embd))?;
            random_tensor(w, seed, &format!("{p}.attn_output.weight"), t.attn, &[q_dim, embd], Uniform::weights(q_dim))?;
            if matches!(self.arch, Arch::Qwen2 | Arch::Qwen2Moe | Arch::GptOss) {
                random_tensor(w, seed, &format!("{p}.attn_q.bias"), QType::F32, &[q_dim], bias)?;
                random_tensor(w, seed, &format!("{p}.attn_k.bias"), QType::F32, &[kv_dim], bias)?;
                random_tensor(w, seed, &format!("{p}.attn_v.bias"), QType::F32, &[kv_dim], bias)?;
            }
            if self.arch == Arch::GptOss {
                random_tensor(w, seed, &format!("{p}.attn_output.bias"), QType::F32, &[embd], bias)?;
            }
            if traits.attn_sinks {
                // Sinks around the scores' scale, so that they matter.
                random_tensor(w, seed, &format!("{p}.attn_sinks.weight"), QType::F32, &[self.n_head as u64], Uniform { center: 0.0, half_width: 2.0 })?;
            }
            if let Some((qn, kn)) = traits.qk_norm.widths(head_dim as usize, q_dim as usize, kv_dim as usize) {
                random_tensor(w, seed, &format!("{p}.attn_q_norm.weight"), QType::F32, &[qn as u64], norm)?;
                random_tensor(w, seed, &format!("{p}.attn_k_norm.weight"), QType::F32, &[kn as u64], norm)?;
            }
            random_tensor(w, seed, &format!("{p}.{}.weight", traits.ffn_norm), QType::F32, &[embd], norm)?;
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
            if self.arch == Arch::GptOss {
                random_tensor(w, seed, &format!("{p}.ffn_gate_inp.bias"), QType::F32, &[n_e], bias)?;
                for (kind, width) in [("gate", ff_exp), ("up", ff_exp), ("down", embd)] {
                    random_tensor(w, seed, &format!("{p}.ffn_{kind}_exps.bias"), QType::F32, &[width, n_e], bias)?;
                }
            }
            if traits.shared_expert {
                let sh = self.n_ff_shexp() as u64;
                let gate = Uniform { center: 0.0, half_width: 2.0 * (3.0 / embd as f32).sqrt() };
                random_tensor(w, seed, &format!("{p}.ffn_gate_inp_shexp.weight"), QType::F32, &[embd], gate)?;
                random_tensor(w, seed, &format!("{p}.ffn_gate_shexp.weight"), t.ffn_gate_up, &[embd, sh], Uniform::weights(embd))?;
                random_tensor(w, seed, &format!("{p}.ffn_up_shexp.weight"), t.ffn_gate_up, &[embd, sh], Uniform::weights(embd))?;
                random_tensor(w, seed, &format!("{p}.ffn_down_shexp.weight"), t.ffn_down, &[sh, embd], Uniform::weights(sh))?;
            }
            let ff = ff_exp;
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

/// Llama 3's RoPE frequency factors as convert_hf_to_gguf computes them
/// (`rope_type = llama3`, factor 8, low_freq_factor 1, high_freq_factor 4),
/// for an original context of `orig_ctx` positions.
pub fn llama3_rope_factors(base: f32, head_dim: usize, orig_ctx: usize) -> Vec<f32> {
    let (factor, low, high) = (8.0f64, 1.0f64, 4.0f64);
    let low_wavelen = orig_ctx as f64 / low;
    let high_wavelen = orig_ctx as f64 / high;
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / (base as f64).powf(2.0 * i as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let f = if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (orig_ctx as f64 / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            f as f32
        })
        .collect()
}

/// Adds one random tensor, streamed row by row at write time.
fn random_tensor(w: &mut GgufWriter<'_>, seed: u64, name: &str, qtype: QType, dims: &[u64], dist: Uniform) -> Result<()> {
    let stream = stream_seed(seed, name);
    let (ne0, rows) = (dims[0], dims[1..].iter().product());
    w.add_tensor_with(name, qtype, dims, move |out: &mut dyn Write| write_rows(out, qtype, ne0, rows, stream, dist))
}
