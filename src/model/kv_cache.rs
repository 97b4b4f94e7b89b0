//! The KV cache: each layer's rotated keys and values for every position,
//! `[n_layer][n_ctx][kv_dim]`, in f32 or (llama.cpp's default) f16.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// The element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// Exact keys and values; attention as llama.cpp computes it without
    /// flash attention (`-ctk f32 -ctv f32 -fa off`).
    #[default]
    F32,
    /// Half the memory; attention as llama.cpp's flash attention computes
    /// it on an f16 cache (its default: `-ctk f16 -ctv f16 -fa auto`).
    F16,
}

impl KvType {
    pub fn bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }
}

pub enum KvData {
    F32 { k: Vec<f32>, v: Vec<f32> },
    /// f16 bit patterns.
    F16 { k: Vec<u16>, v: Vec<u16> },
}

pub struct KvCache {
    n_ctx: usize,
    kv_dim: usize,
    pub data: KvData,
}

impl KvCache {
    /// A zeroed cache for `n_ctx` positions. The config's sizes are bounded
    /// (`config::limits`), but a context is the caller's: an element count
    /// past usize is an error, not a wrapped (release) or panicking (debug)
    /// multiplication.
    pub fn new(c: &ModelConfig, n_ctx: usize, kv_type: KvType) -> Result<KvCache> {
        let n = c.n_layer.checked_mul(n_ctx).and_then(|n| n.checked_mul(c.kv_dim())).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "a context of {n_ctx} positions needs a KV cache of {} layers × {n_ctx} × {} values, more than this machine can address; lower -c/--ctx-size",
                c.n_layer,
                c.kv_dim()
            ))
        })?;
        let data = match kv_type {
            KvType::F32 => KvData::F32 { k: vec![0.0; n], v: vec![0.0; n] },
            KvType::F16 => KvData::F16 { k: vec![0; n], v: vec![0; n] },
        };
        Ok(KvCache { n_ctx, kv_dim: c.kv_dim(), data })
    }

    /// Bytes per position over all layers.
    pub fn bytes_per_pos(c: &ModelConfig, kv_type: KvType) -> usize {
        2 * kv_type.bytes() * c.n_layer * c.kv_dim()
    }

    /// Stores position `pos` of layer `l` (rounded to f16 for an f16 cache,
    /// as llama.cpp's copy into its cache does).
    pub fn store(&mut self, l: usize, pos: usize, k: &[f32], v: &[f32]) {
        let at = (l * self.n_ctx + pos) * self.kv_dim;
        let n = self.kv_dim;
        match &mut self.data {
            KvData::F32 { k: kc, v: vc } => {
                kc[at..at + n].copy_from_slice(k);
                vc[at..at + n].copy_from_slice(v);
            }
            KvData::F16 { k: kc, v: vc } => {
                kc[at..at + n].reinterpret_cast_mut::<f16>().convert_from_f32_slice(k);
                vc[at..at + n].reinterpret_cast_mut::<f16>().convert_from_f32_slice(v);
            }
        }
    }

    /// Where KV head `kvh` of layer `l` lies in the key and value arrays:
    /// position t at `offset + t·stride`.
    pub fn layout(&self, l: usize, kvh: usize, head_dim: usize) -> super::attention::ValueLayout {
        super::attention::ValueLayout { offset: l * self.n_ctx * self.kv_dim + kvh * head_dim, stride: self.kv_dim }
    }
}
