//! The llama-architecture model (dense or Mixtral MoE): weights bound to the
//! mapped GGUF file, and [`Session`]s that run the forward pass.

mod act_cache;
mod moe;
pub mod ops;
mod session;
mod weights;

use std::path::Path;
use std::sync::Arc;

use moe_offload::{ExpertSource, MappedExperts};
use moe_quant::QMatrix;

use crate::config::LlamaConfig;
use crate::error::Result;
use crate::gguf::{GgufFile, Metadata};

pub use session::Session;
pub use weights::{ExpertLayout, ExpertTypes, FfnWeights, LayerWeights, ModelWeights, Weight};

pub struct Model {
    file: GgufFile,
    config: LlamaConfig,
    weights: ModelWeights,
    /// Where expert bytes come from (the mapping, or an expert cache).
    experts: Box<dyn ExpertSource>,
}

impl Model {
    /// Opens, validates and binds a GGUF model. Every tensor the forward
    /// pass needs is checked here, so a bad file fails now, not mid-run.
    pub fn open(path: &Path) -> Result<Model> {
        let file = GgufFile::open(path)?;
        Model::from_file(file)
    }

    pub fn from_file(file: GgufFile) -> Result<Model> {
        let config = LlamaConfig::from_metadata(file.metadata())?;
        let weights = ModelWeights::bind(&file, &config)?;
        let ranges = weights
            .layers
            .iter()
            .map(|l| match &l.ffn {
                FfnWeights::Moe { experts, .. } => experts.clone(),
                FfnWeights::Dense { .. } => Vec::new(),
            })
            .collect();
        let experts = Box::new(MappedExperts::new(Arc::clone(file.file()), ranges));
        Ok(Model { file, config, weights, experts })
    }

    pub fn config(&self) -> &LlamaConfig {
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

    pub fn experts(&self) -> &dyn ExpertSource {
        self.experts.as_ref()
    }

    /// A view of a resident weight matrix in the mapping.
    fn matrix(&self, w: &Weight) -> QMatrix<'_> {
        let bytes = &self.file.file().all()[w.range.start as usize..w.range.end as usize];
        QMatrix::new(w.qtype, w.rows, w.cols, bytes).expect("weight shapes and sizes are validated when the model is bound")
    }

    /// A new inference session with room for `n_ctx` positions.
    pub fn session(&self, n_ctx: usize) -> Result<Session<'_>> {
        Session::new(self, n_ctx)
    }
}
