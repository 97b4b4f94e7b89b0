//! Full-size synthetic models: Mixtral-8x7B-, Mistral-7B-, Qwen3-30B-A3B-,
//! OLMoE-1B-7B- or gpt-oss-20b-shaped GGUF files (or smaller ones of the same shape)
//! with llama.cpp's per-tensor type mix, written from random valid blocks
//! ([`super::blocks`]) at disk speed.
//!
//! The weights are random, but scaled so that the model behaves like a
//! trained one where the expert cache can tell: `attn_output` and
//! `ffn_down` are small (`branch_scale`), so each token's hidden state
//! stays close to its embedding and routing differs from token to token
//! the way it does on real text, instead of collapsing onto a few experts.

use std::io::Write;
use std::path::{Path, PathBuf};

use moe_quant::QType;

use super::keys::ShapeKeys;
use super::mix::Mix;
use super::rng::{stream_seed, write_rows as write_f32_rows, Uniform};
use super::vocab::{byte_level, copied_from};
use super::{blocks, ffn_name, ExpertLayout};
use crate::arch::Arch;
use crate::error::{Error, Result};
use crate::gguf::{tensor_bytes, GgufWriter};

/// The names [`SynthSpec::preset`] knows.
pub const PRESETS: [&str; 5] = ["mixtral-8x7b", "mistral-7b", "qwen3-30b-a3b", "olmoe-1b-7b", "gpt-oss-20b"];

/// Shape, type mix and scales of a synthetic model.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSpec {
    pub name: String,
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    /// FFN width (dense; of each expert too unless `n_ff_exp` is set).
    pub n_ff: usize,
    /// Each expert's width where the architecture states it apart
    /// (Qwen3-MoE's `expert_feed_forward_length`); 0: `n_ff`.
    pub n_ff_exp: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Head size; 0: n_embd / n_head.
    pub head_dim: usize,
    /// 0: a dense model.
    pub n_expert: usize,
    pub n_expert_used: usize,
    /// Size of the byte-level vocab; ignored with `vocab_from`.
    pub n_vocab: usize,
    pub n_ctx: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub mix: Mix,
    pub layout: ExpertLayout,
    pub seed: u64,
    /// Copy the `tokenizer.*` keys of this GGUF (e.g. a 32000-token llama
    /// SPM vocab) instead of writing a byte-level one.
    pub vocab_from: Option<PathBuf>,
    /// RMS of `attn_output` and `ffn_down` weights relative to the
    /// 1/√fan-in of the other projections.
    pub branch_scale: f32,
    /// YaRN RoPE scaling factor over an original context of n_ctx /
    /// factor (gpt-oss: 32); 0: none.
    pub rope_yarn: f32,
    /// The windowed layers' sliding window (architectures with them).
    pub sliding_window: usize,
}

/// One tensor to write: random blocks, or F32 values around `center`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub qtype: QType,
    pub dims: Vec<u64>,
    /// Target RMS of the weights' deviation from `center` (0 but for norms).
    pub rms: f32,
    pub center: f32,
    /// One random stream per slab of `dims[1]` rows: a merged expert
    /// tensor has one per expert, named after its per-expert tensor, so
    /// both layouts hold the same bytes.
    pub streams: Vec<u64>,
}

impl TensorPlan {
    pub fn bytes(&self) -> u64 {
        tensor_bytes(self.qtype, &self.dims).expect("checked shape")
    }
}

impl SynthSpec {
    /// `mixtral-8x7b` (n_embd 4096, n_ff 14336, 32 layers, 32/8 heads, 8
    /// experts top-2, vocab 32000), `mistral-7b` (the same, dense),
    /// `qwen3-30b-a3b` (qwen3moe: 48 layers, n_embd 2048, 32/4 heads of
    /// 128, 128 experts of width 768, top-8, vocab 151936) or `olmoe-1b-7b`
    /// (olmoe: 16 layers, n_embd 2048, 16/16 heads, 64 experts of width
    /// 1024, top-8, vocab 50304) or `gpt-oss-20b` (gpt-oss: 24 layers,
    /// n_embd 2880, 64/8 heads of 64, 32 experts of width 2880, top-4,
    /// vocab 201088, window 128 on even layers, YaRN ×32 over 4,096, in
    /// the published file's MXFP4_MOE mix), as their Hugging Face configs
    /// give them.
    pub fn preset(name: &str) -> Result<SynthSpec> {
        let mixtral = SynthSpec {
            name: name.to_string(),
            arch: Arch::Llama,
            n_layer: 32,
            n_embd: 4096,
            n_ff: 14336,
            n_ff_exp: 0,
            n_head: 32,
            n_head_kv: 8,
            head_dim: 0,
            n_expert: 8,
            n_expert_used: 2,
            n_vocab: 32000,
            n_ctx: 32768,
            rope_base: 1e6,
            rms_eps: 1e-5,
            mix: Mix::Q4KM,
            layout: ExpertLayout::Merged,
            seed: 0,
            vocab_from: None,
            branch_scale: 0.05,
            rope_yarn: 0.0,
            sliding_window: 0,
        };
        match name {
            "mixtral-8x7b" => Ok(mixtral),
            "mistral-7b" => Ok(SynthSpec { n_expert: 0, n_expert_used: 0, rope_base: 1e4, ..mixtral }),
            "qwen3-30b-a3b" => Ok(SynthSpec {
                arch: Arch::Qwen3Moe,
                n_layer: 48,
                n_embd: 2048,
                n_ff: 6144,
                n_ff_exp: 768,
                n_head: 32,
                n_head_kv: 4,
                head_dim: 128,
                n_expert: 128,
                n_expert_used: 8,
                n_vocab: 151_936,
                n_ctx: 40960,
                rope_base: 1e6,
                rms_eps: 1e-6,
                ..mixtral
            }),
            "olmoe-1b-7b" => Ok(SynthSpec {
                arch: Arch::Olmoe,
                n_layer: 16,
                n_embd: 2048,
                n_ff: 1024,
                n_head: 16,
                n_head_kv: 16,
                n_expert: 64,
                n_expert_used: 8,
                n_vocab: 50304,
                n_ctx: 4096,
                rope_base: 1e4,
                ..mixtral
            }),
            "gpt-oss-20b" => Ok(SynthSpec {
                arch: Arch::GptOss,
                n_layer: 24,
                n_embd: 2880,
                n_ff: 2880,
                n_ff_exp: 2880,
                n_head: 64,
                n_head_kv: 8,
                head_dim: 64,
                n_expert: 32,
                n_expert_used: 4,
                n_vocab: 201_088,
                n_ctx: 131_072,
                rope_base: 150_000.0,
                mix: Mix::Mxfp4Moe,
                rope_yarn: 32.0,
                sliding_window: 128,
                ..mixtral
            }),
            _ => Err(Error::InvalidArgument(format!("unknown preset '{name}'; known: {}", PRESETS.join(", ")))),
        }
    }

    pub fn is_moe(&self) -> bool {
        self.n_expert > 0
    }

    /// The head size written.
    pub fn head_dim(&self) -> usize {
        if self.head_dim > 0 { self.head_dim } else { self.n_embd / self.n_head }
    }

    /// Each expert's FFN width.
    pub fn n_ff_exp(&self) -> usize {
        if self.arch.traits().expert_ff_key && self.n_ff_exp > 0 { self.n_ff_exp } else { self.n_ff }
    }

    /// Checks the shape against what llama.cpp and the type mix accept.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(format!("synth: {what}")));
        let sizes = [self.n_layer, self.n_embd, self.n_ff, self.n_head, self.n_head_kv, self.n_ctx];
        if sizes.contains(&0) {
            return bad(format!("layers, embd, ff, heads, kv heads and ctx must be non-zero (got {sizes:?})"));
        }
        if self.head_dim == 0 && !self.n_embd.is_multiple_of(self.n_head) || !self.head_dim().is_multiple_of(2) {
            return bad(format!("n_embd {} must be n_head {} × an even head size (or give a head size)", self.n_embd, self.n_head));
        }
        if self.arch.traits().moe == crate::arch::MoeKind::Required && !self.is_moe() {
            return bad(format!("{} routes every layer to experts: --experts must be at least 1", self.arch));
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!("n_head {} must be a multiple of n_head_kv {}", self.n_head, self.n_head_kv));
        }
        if self.arch.traits().swa_pattern > 0 && self.sliding_window == 0 {
            return bad(format!("{} has sliding-window layers: the window must be at least 1", self.arch));
        }
        if self.is_moe() && !(1..=self.n_expert).contains(&self.n_expert_used) {
            return bad(format!("experts used {} must be in 1..={}", self.n_expert_used, self.n_expert));
        }
        let block = self.mix.row_multiple();
        for (what, n) in [("n_embd", self.n_embd), ("n_ff", self.n_ff), ("expert n_ff", self.n_ff_exp()), ("heads × head size", self.n_head * self.head_dim())] {
            if !n.is_multiple_of(block) {
                return bad(format!("{what} {n} must be a multiple of {block} for {}", self.mix));
            }
        }
        if self.vocab_from.is_none() && self.n_vocab < 257 {
            return bad(format!("vocab size {} is below 257 (256 bytes + <|endoftext|>)", self.n_vocab));
        }
        if !(self.branch_scale.is_finite() && self.branch_scale > 0.0) {
            return bad(format!("branch scale must be a positive number, got {}", self.branch_scale));
        }
        Ok(())
    }

    /// Every tensor, in file order, for a vocabulary of `n_vocab`.
    pub fn tensors(&self, n_vocab: u64) -> Vec<TensorPlan> {
        let (embd, n_layer) = (self.n_embd as u64, self.n_layer);
        let ff = if self.is_moe() { self.n_ff_exp() as u64 } else { self.n_ff as u64 };
        let head_dim = self.head_dim() as u64;
        let (q_dim, kv_dim) = (head_dim * self.n_head as u64, head_dim * self.n_head_kv as u64);
        let inv = |n: u64| 1.0 / (n as f32).sqrt();
        let mix = self.mix;
        let n_expert = self.n_expert;
        let one = |name: String, qtype: QType, dims: &[u64], rms: f32| {
            let streams = vec![stream_seed(self.seed, &name)];
            TensorPlan { name, qtype, dims: dims.to_vec(), rms, center: 0.0, streams }
        };
        // Norm gains uniform in 1 ± 0.1.
        let norm_of = |name: String, n: u64| TensorPlan { rms: 0.1 / 3f32.sqrt(), center: 1.0, ..one(name, QType::F32, &[n], 0.0) };
        let norm = |name: String| norm_of(name, embd);
        let traits = self.arch.traits();
        let qk_norm = traits.qk_norm.widths(head_dim as usize, q_dim as usize, kv_dim as usize);
        // gpt-oss: biases on every projection, the router and the experts
        // (small: a tenth of the weights' output RMS).
        let biases = self.arch == Arch::GptOss;
        let bias = |name: String, dims: &[u64]| one(name, QType::F32, dims, 0.1);
        let mut t = vec![
            one("token_embd.weight".into(), mix.token_embd(), &[embd, n_vocab], 1.0),
            norm("output_norm.weight".into()),
            one("output.weight".into(), mix.output(), &[embd, n_vocab], inv(embd)),
        ];
        for l in 0..n_layer {
            let p = format!("blk.{l}");
            t.push(norm(format!("{p}.attn_norm.weight")));
            t.push(one(format!("{p}.attn_q.weight"), mix.attn_q(), &[embd, q_dim], inv(embd)));
            t.push(one(format!("{p}.attn_k.weight"), mix.attn_k(n_expert), &[embd, kv_dim], inv(embd)));
            t.push(one(format!("{p}.attn_v.weight"), mix.attn_v(l, n_layer, n_expert), &[embd, kv_dim], inv(embd)));
            let out_rms = self.branch_scale * inv(embd);
            t.push(one(format!("{p}.attn_output.weight"), mix.attn_output(n_expert), &[q_dim, embd], out_rms));
            if biases {
                for (kind, n) in [("q", q_dim), ("k", kv_dim), ("v", kv_dim), ("output", embd)] {
                    t.push(bias(format!("{p}.attn_{kind}.bias"), &[n]));
                }
            }
            if traits.attn_sinks {
                // Sink logits around the scores' scale.
                t.push(TensorPlan { rms: 1.0, ..one(format!("{p}.attn_sinks.weight"), QType::F32, &[self.n_head as u64], 0.0) });
            }
            if let Some((qn, kn)) = qk_norm {
                t.push(norm_of(format!("{p}.attn_q_norm.weight"), qn as u64));
                t.push(norm_of(format!("{p}.attn_k_norm.weight"), kn as u64));
            }
            t.push(norm(format!("{p}.{}.weight", traits.ffn_norm)));
            let experts = self.is_moe();
            let down = mix.ffn_down(l, n_layer, experts);
            let gate_up = mix.ffn_gate_up(experts);
            let ffn = [("gate", gate_up, embd, ff, inv(embd)), ("up", gate_up, embd, ff, inv(embd)), (
                "down",
                down,
                ff,
                embd,
                self.branch_scale * inv(ff),
            )];
            if !self.is_moe() {
                for (kind, q, ne0, ne1, rms) in ffn {
                    t.push(one(ffn_name(l, kind, ExpertLayout::Merged, None), q, &[ne0, ne1], rms));
                }
                continue;
            }
            // A sharp router (logit RMS ≈ 4), so that top-k is decisive.
            let router = one(format!("{p}.ffn_gate_inp.weight"), QType::F32, &[embd, n_expert as u64], 0.0);
            t.push(TensorPlan { rms: 4.0 * inv(embd), ..router });
            if biases {
                t.push(bias(format!("{p}.ffn_gate_inp.bias"), &[n_expert as u64]));
                for (kind, n) in [("gate", ff), ("up", ff), ("down", embd)] {
                    t.push(bias(format!("{p}.ffn_{kind}_exps.bias"), &[n, n_expert as u64]));
                }
            }
            for (kind, qtype, ne0, ne1, rms) in ffn {
                let per_expert = |e| ffn_name(l, kind, ExpertLayout::PerExpert, Some(e));
                let streams: Vec<u64> = (0..n_expert).map(|e| stream_seed(self.seed, &per_expert(e))).collect();
                match self.layout {
                    ExpertLayout::Merged => t.push(TensorPlan {
                        name: ffn_name(l, kind, ExpertLayout::Merged, Some(0)),
                        qtype,
                        dims: vec![ne0, ne1, n_expert as u64],
                        rms,
                        center: 0.0,
                        streams,
                    }),
                    ExpertLayout::PerExpert => {
                        for (e, s) in streams.into_iter().enumerate() {
                            let plan = TensorPlan { streams: vec![s], ..one(per_expert(e), qtype, &[ne0, ne1], rms) };
                            t.push(plan);
                        }
                    }
                }
            }
        }
        t
    }

    /// The vocabulary size the file will have.
    pub fn vocab_size(&self) -> Result<usize> {
        match &self.vocab_from {
            Some(p) => Ok(copied_from(p)?.n_vocab),
            None => Ok(self.n_vocab),
        }
    }

    /// Writes the model to `path`; `progress(i, n, tensor)` is called
    /// before each of the `n` tensors. Memory use: a few 16 MiB batches.
    pub fn write(&self, path: &Path, progress: &dyn Fn(usize, usize, &TensorPlan)) -> Result<()> {
        self.check()?;
        let vocab = match &self.vocab_from {
            Some(p) => copied_from(p)?,
            None => byte_level(self.n_vocab)?,
        };
        let mut w = GgufWriter::new();
        self.add_keys(&mut w, vocab.n_vocab);
        for (k, v) in vocab.keys {
            w.add_kv(k, v);
        }
        let tensors = self.tensors(vocab.n_vocab as u64);
        let n = tensors.len();
        for (i, t) in tensors.into_iter().enumerate() {
            let (name, qtype, dims) = (t.name.clone(), t.qtype, t.dims.clone());
            w.add_tensor_with(&name, qtype, &dims, move |out: &mut dyn Write| {
                progress(i, n, &t);
                write_tensor(out, &t)
            })?;
        }
        w.write(path)
    }

    fn add_keys(&self, w: &mut GgufWriter<'_>, n_vocab: usize) {
        ShapeKeys {
            arch: self.arch,
            name: format!("moe synthetic {} {} (seed {})", self.name, self.mix, self.seed),
            file_type: self.mix.file_type(),
            n_ctx: self.n_ctx,
            n_embd: self.n_embd,
            n_layer: self.n_layer,
            n_ff: self.n_ff,
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim(),
            rope_base: self.rope_base,
            rope_linear: 0.0,
            rope_yarn: self.rope_yarn,
            sliding_window: self.sliding_window,
            rms_eps: self.rms_eps,
            n_vocab,
            n_expert: self.n_expert,
            n_expert_used: self.n_expert_used,
            n_ff_exp: self.n_ff_exp(),
            n_ff_shexp: 0,
        }
        .write(w);
    }
}

/// Streams one tensor: each slab from its own stream.
fn write_tensor(out: &mut dyn Write, t: &TensorPlan) -> std::io::Result<()> {
    let ne0 = t.dims[0];
    let rows_per_slab = t.dims[1..].iter().product::<u64>() / t.streams.len() as u64;
    for &s in &t.streams {
        if blocks::supported(t.qtype) {
            blocks::write_rows(out, t.qtype, ne0, rows_per_slab, s, t.rms)?;
        } else {
            let dist = Uniform { center: t.center, half_width: t.rms * 3f32.sqrt() };
            write_f32_rows(out, t.qtype, ne0, rows_per_slab, s, dist)?;
        }
    }
    Ok(())
}
