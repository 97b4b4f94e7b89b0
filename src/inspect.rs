//! `moe inspect`: what a GGUF model is and how it would be laid out in
//! memory: architecture and shape, tensors grouped by role and type,
//! resident versus expert bytes, bytes per expert, the expert layout, the
//! tokenizer and chat template, and the memory plan for a `--mem` budget.

use std::collections::BTreeMap;

use moe_offload::ExpertCache;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::model::{ExpertLayout, KvType, Model};
use crate::offload_setup::{self, Footprint, MemRequest, MemoryPlan};

/// Tensors of one group (role or type).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub tensors: usize,
    pub bytes: u64,
    /// The quant types in this group, with bytes.
    pub types: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub struct Inspection {
    pub path: String,
    pub file_bytes: u64,
    pub gguf_version: u32,
    pub architecture: String,
    pub name: Option<String>,
    pub config: ModelConfig,
    pub layout: Option<ExpertLayout>,
    /// Llama 3 RoPE frequency factors (`rope_freqs.weight`) are present.
    pub rope_freqs: bool,
    /// The attention projections carry biases (Qwen2).
    pub qkv_bias: bool,
    pub n_tensors: usize,
    /// By role: embeddings, attention, norms, router, experts, dense FFN, output.
    pub by_role: BTreeMap<&'static str, Group>,
    pub by_type: BTreeMap<String, Group>,
    pub footprint: Footprint,
    /// Cache charge of one expert per layer: (min, max) over its experts.
    pub expert_bytes_per_layer: Vec<(u64, u64)>,
    pub tokenizer_model: Option<String>,
    pub vocab_size: usize,
    pub chat_template: Option<usize>,
    pub bos: Option<u64>,
    pub eos: Option<u64>,
    /// The plan `--mem` would choose (with its context size), if asked.
    pub plan: Option<MemoryPlan>,
    pub plan_error: Option<String>,
}

/// The role of a tensor, from its name.
pub fn role(name: &str) -> &'static str {
    if name.starts_with("token_embd") {
        "embeddings"
    } else if name.starts_with("output_norm") || name.ends_with("_norm.weight") {
        "norms"
    } else if name.starts_with("output") {
        "output"
    } else if name.contains(".attn_") {
        "attention"
    } else if name.contains("_shexp") {
        "shared expert"
    } else if name.contains("ffn_gate_inp") {
        "router"
    } else if name.contains("_exps.") || name.matches('.').count() == 4 && name.contains(".ffn_") {
        "experts"
    } else if name.contains(".ffn_") {
        "dense ffn"
    } else {
        "other"
    }
}

impl Inspection {
    /// Inspects `model`; with `mem`, plans that budget for a context of `n_ctx`.
    pub fn of(model: &Model, mem: Option<u64>, n_ctx: usize, kv_type: KvType) -> Result<Inspection> {
        let f = model.file();
        let md = model.metadata();
        let mut by_role: BTreeMap<&'static str, Group> = BTreeMap::new();
        let mut by_type: BTreeMap<String, Group> = BTreeMap::new();
        for t in f.tensors() {
            let q = t.qtype.name().to_string();
            for g in [by_role.entry(role(&t.name)).or_default(), by_type.entry(q.clone()).or_default()] {
                g.tensors += 1;
                g.bytes += t.n_bytes;
                *g.types.entry(q.clone()).or_default() += t.n_bytes;
            }
        }
        let expert_bytes_per_layer = model
            .expert_ranges()
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let b: Vec<u64> = l.iter().map(ExpertCache::footprint).collect();
                (*b.iter().min().unwrap_or(&0), *b.iter().max().unwrap_or(&0))
            })
            .collect();
        let footprint = Footprint::of(model);
        let (plan, plan_error) = match mem {
            Some(m) => {
                let req = MemRequest { mem: Some(m), kv_type, ..Default::default() };
                match offload_setup::plan(&footprint, n_ctx, &req) {
                    Ok(p) => (Some(p), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            }
            None => (None, None),
        };
        let opt_str = |k: &str| md.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(Inspection {
            path: f.path().display().to_string(),
            file_bytes: f.file().len(),
            gguf_version: f.version(),
            architecture: opt_str("general.architecture").unwrap_or_default(),
            name: opt_str("general.name"),
            config: model.config().clone(),
            layout: model.weights().expert_layout,
            rope_freqs: model.weights().rope_freqs.is_some(),
            qkv_bias: model.weights().layers.first().is_some_and(|l| l.attn.bq.is_some()),
            n_tensors: f.tensors().len(),
            by_role,
            by_type,
            footprint,
            expert_bytes_per_layer,
            tokenizer_model: opt_str("tokenizer.ggml.model"),
            vocab_size: md.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map_or(0, |a| a.len()),
            chat_template: md.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::len),
            bos: md.get("tokenizer.ggml.bos_token_id").and_then(|v| v.as_u64()),
            eos: md.get("tokenizer.ggml.eos_token_id").and_then(|v| v.as_u64()),
            plan,
            plan_error,
        })
    }

    /// Experts per layer the plan's cache holds at once (its budget over
    /// the layer's expert size, spread evenly), if there is a cache.
    pub fn experts_fit_per_layer(&self) -> Option<f64> {
        let budget = self.plan.as_ref()?.expert_budget()?;
        let layers = self.expert_bytes_per_layer.len().max(1) as f64;
        let mean: f64 = self.expert_bytes_per_layer.iter().map(|l| l.1 as f64).sum::<f64>() / layers;
        (mean > 0.0).then(|| (budget as f64 / layers / mean).min(self.config.n_expert as f64))
    }
}
