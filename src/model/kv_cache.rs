//! The KV cache: each layer's rotated keys and values for every position,
//! `[n_layer][n_ctx][kv_dim]` in f32.

use crate::config::LlamaConfig;

pub struct KvCache {
    n_ctx: usize,
    kv_dim: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    pub fn new(c: &LlamaConfig, n_ctx: usize) -> KvCache {
        let n = c.n_layer * n_ctx * c.kv_dim();
        KvCache { n_ctx, kv_dim: c.kv_dim(), k: vec![0.0; n], v: vec![0.0; n] }
    }

    /// Bytes per position over all layers.
    pub fn bytes_per_pos(c: &LlamaConfig) -> usize {
        2 * 4 * c.n_layer * c.kv_dim()
    }

    /// Stores position `pos` of layer `l`.
    pub fn store(&mut self, l: usize, pos: usize, k: &[f32], v: &[f32]) {
        let at = (l * self.n_ctx + pos) * self.kv_dim;
        self.k[at..at + self.kv_dim].copy_from_slice(k);
        self.v[at..at + self.kv_dim].copy_from_slice(v);
    }

    /// Where KV head `kvh` of layer `l` lies in [`Self::keys`] and
    /// [`Self::values`]: position t at `offset + t·stride`.
    pub fn layout(&self, l: usize, kvh: usize, head_dim: usize) -> super::attention::ValueLayout {
        super::attention::ValueLayout { offset: l * self.n_ctx * self.kv_dim + kvh * head_dim, stride: self.kv_dim }
    }

    pub fn keys(&self) -> &[f32] {
        &self.k
    }

    pub fn values(&self) -> &[f32] {
        &self.v
    }
}
