//! A model of any supported architecture (dense or MoE): weights bound to
//! the mapped GGUF file, and [`Session`]s that run the forward pass
//! (`forward.rs` reads a layer top to bottom).

mod act_cache;
pub mod attention;
mod attention_block;
mod batch;
mod ffn;
mod flash_quantized;
mod flash_tiled;
mod flash_tiled_portable;
mod flash_tiled_simd;
mod fma;
mod forward;
mod hadamard;
mod kv_cache;
mod lanes;
pub mod libm_exp;
mod moe_ffn;
mod observe;
pub mod ops;
mod router;
mod session;
mod together;
mod weights;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use moe_offload::{ExpertRanges, ExpertSource, MappedExperts, ResidentCopy};
use moe_quant::QMatrix;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::gguf::{GgufFile, Metadata};

/// The f16 attention kernel alone, for `benches/attention.rs`.
pub use flash_tiled::{attend_group as attend_group_f16, HeadCache, WindowSinks};
pub use kv_cache::{KeyTiles, KEY_TILE};
pub use kv_cache::{KvElem, KvType};
pub use observe::ForwardObserver;
pub use session::{LayerRunStats, Prefetch, Session, DEFAULT_BATCH};
pub use together::decode_together;
pub use weights::{AttentionWeights, DenseFfn, ExpertLayout, ExpertTypes, FfnWeights, LayerWeights, ModelWeights, SharedExpert, Weight};

pub struct Model {
    file: GgufFile,
    config: ModelConfig,
    weights: ModelWeights,
    /// Where expert bytes come from (the mapping, or an expert cache).
    experts: Box<dyn ExpertSource>,
    /// How sessions predict the next layer's experts (hints only).
    prefetch: Prefetch,
    /// Layers ahead that prefetch predicts (1: the next layer only).
    prefetch_depth: usize,
    /// The resident weights copied into huge pages, if made; else they are
    /// read through the mapping.
    resident: Option<ResidentCopy>,
}

impl Model {
    /// Opens, validates and binds a GGUF model. Every tensor the forward
    /// pass needs is checked here, so a bad file fails now, not mid-run.
    pub fn open(path: &Path) -> Result<Model> {
        let file = GgufFile::open(path)?;
        Model::from_file(file)
    }

    pub fn from_file(file: GgufFile) -> Result<Model> {
        let config = ModelConfig::from_metadata(file.metadata())?;
        let weights = ModelWeights::bind(&file, &config)?;
        let experts = Box::new(MappedExperts::new(Arc::clone(file.file()), expert_ranges(&weights)));
        Ok(Model { file, config, weights, experts, prefetch: Prefetch::default(), prefetch_depth: 1, resident: None })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn metadata(&self) -> &Metadata {
        self.file.metadata()
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    pub fn weights(&self) -> &ModelWeights {
        &self.weights
    }

    /// Replaces where expert weights come from (e.g. an expert cache).
    /// Results do not change: only where the bytes are read from.
    pub fn set_expert_source(&mut self, source: Box<dyn ExpertSource>) {
        self.experts = source;
    }

    /// Wraps the current expert source (e.g. in a recorder): `wrap` gets it
    /// and returns the new one.
    pub fn wrap_expert_source(&mut self, wrap: impl FnOnce(Box<dyn ExpertSource>) -> Box<dyn ExpertSource>) {
        let placeholder = Box::new(MappedExperts::new(Arc::clone(self.file.file()), Vec::new()));
        let inner = std::mem::replace(&mut self.experts, placeholder);
        self.experts = wrap(inner);
    }

    pub fn experts(&self) -> &dyn ExpertSource {
        self.experts.as_ref()
    }

    /// Sets how sessions predict the next layer's experts and hint them to
    /// the expert source. Results never depend on it.
    pub fn set_prefetch(&mut self, prefetch: Prefetch) {
        self.prefetch = prefetch;
    }

    pub fn prefetch(&self) -> Prefetch {
        self.prefetch
    }

    /// With [`Prefetch::RouterOnFfnInput`], right after layer l routes,
    /// predict layers l+1 ..= l+`depth` (each layer's router on layer l's
    /// FFN input), so reads run further ahead of compute. At least 1.
    pub fn set_prefetch_depth(&mut self, depth: usize) {
        self.prefetch_depth = depth.max(1);
    }

    pub fn prefetch_depth(&self) -> usize {
        self.prefetch_depth
    }

    /// `ranges[layer][expert]`: where each expert's slabs lie in the file
    /// (empty for dense layers). What an expert cache is built over.
    pub fn expert_ranges(&self) -> Vec<Vec<ExpertRanges>> {
        expert_ranges(&self.weights)
    }

    /// File ranges of every tensor the forward pass reads through the
    /// mapping (all but the expert slabs), sorted, with ranges less than a
    /// page apart (alignment padding) merged. Norms are copied out at bind
    /// time, so they are not listed.
    pub fn resident_ranges(&self) -> Vec<Range<u64>> {
        let w = &self.weights;
        let mut r = vec![w.token_embd.range.clone(), w.output.range.clone()];
        for l in &w.layers {
            let a = &l.attn;
            r.extend([&a.wq, &a.wk, &a.wv, &a.wo].map(|m| m.range.clone()));
            let dense = |f: &DenseFfn| [&f.gate, &f.up, &f.down].map(|m| m.range.clone());
            match &l.ffn {
                FfnWeights::Dense(f) => r.extend(dense(f)),
                FfnWeights::Moe { router, shared, .. } => {
                    r.push(router.range.clone());
                    if let Some(s) = shared {
                        r.push(s.gate_inp.range.clone());
                        r.extend(dense(&s.ffn));
                    }
                }
            }
        }
        r.sort_by_key(|x| (x.start, x.end));
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(r.len());
        for x in r {
            match merged.last_mut() {
                Some(m) if x.start <= m.end + 4096 => m.end = m.end.max(x.end),
                _ => merged.push(x),
            }
        }
        merged
    }

    /// Reads resident weights from `copy` from now on (it must hold every
    /// range of [`Self::resident_ranges`]; a range it lacks is still read
    /// through the mapping). The bytes are the same, so results are too.
    pub fn set_resident_copy(&mut self, copy: ResidentCopy) {
        self.resident = Some(copy);
    }

    /// The copy resident weights are read from, if any.
    pub fn resident_copy(&self) -> Option<&ResidentCopy> {
        self.resident.as_ref()
    }

    /// A view of a resident weight matrix: in the copy if there is one,
    /// else in the mapping.
    fn matrix(&self, w: &Weight) -> QMatrix<'_> {
        let bytes = match self.resident.as_ref().and_then(|c| c.get(w.range.clone())) {
            Some(b) => b,
            None => &self.file.file().all()[w.range.start as usize..w.range.end as usize],
        };
        QMatrix::new(w.qtype, w.rows, w.cols, bytes).expect("weight shapes and sizes are validated when the model is bound")
    }

    /// Bytes of session buffers per token of prompt micro-batch: the
    /// activations, and for an MoE the router output and per-slot expert
    /// outputs (the logits of a whole batch, asked for only by tests, are
    /// not counted).
    pub fn batch_bytes_per_token(&self) -> u64 {
        let c = &self.config;
        let shared = if c.n_ff_shexp > 0 { 4 * (c.n_embd + 1) } else { 0 };
        let moe = 4 * (c.n_expert_used * c.n_embd + c.n_expert) + 8 * c.n_expert_used + shared;
        // Quantized activations: at most 4 bytes an element, a few types.
        let act = 4 * 3 * (2 * c.n_embd + c.n_ff_max().max(c.q_dim()));
        (batch::Batch::bytes_per_token(c) + moe + act) as u64
    }

    /// KV cache bytes per position (all layers, as if none were a ring).
    pub fn kv_bytes_per_pos(&self, kv_type: KvType) -> u64 {
        kv_type.bytes_for((self.config.n_layer * self.config.kv_dim()) as u64)
    }

    /// The positions each sliding-window layer's ring holds at most
    /// ([`kv_cache::ring_positions`] for an unbounded context).
    pub fn kv_ring_layers(&self) -> Vec<usize> {
        (0..self.config.n_layer).filter(|&l| self.config.window(l).is_some()).map(|l| kv_cache::ring_positions(&self.config, l, usize::MAX, kv_cache::RING_SLACK)).collect()
    }

    /// A new inference session with room for `n_ctx` positions and an f32
    /// KV cache.
    pub fn session(&self, n_ctx: usize) -> Result<Session<'_>> {
        Session::new(self, n_ctx, KvType::F32)
    }

    /// A new inference session with a KV cache of `kv_type`.
    pub fn session_with_kv(&self, n_ctx: usize, kv_type: KvType) -> Result<Session<'_>> {
        Session::new(self, n_ctx, kv_type)
    }
}

fn expert_ranges(w: &ModelWeights) -> Vec<Vec<ExpertRanges>> {
    w.layers
        .iter()
        .map(|l| match &l.ffn {
            FfnWeights::Moe { experts, .. } => experts.clone(),
            FfnWeights::Dense(_) => Vec::new(),
        })
        .collect()
}
