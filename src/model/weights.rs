//! Binds GGUF tensors to the model's weights: looks each one up by name,
//! checks its shape and type, and records its byte range. Expert slabs are
//! reduced to `ExpertKey → ExpertRanges` for both GGUF expert layouts.

use std::ops::Range;

use moe_offload::ExpertRanges;
use moe_quant::QType;

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};

/// A 2-D weight matrix in the file: `rows` outputs, each a row of `cols`
/// elements (GGUF dims `[cols, rows]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weight {
    pub name: String,
    pub qtype: QType,
    pub rows: usize,
    pub cols: usize,
    pub range: Range<u64>,
}

/// The types and shapes shared by all experts of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpertTypes {
    pub gate: QType,
    pub up: QType,
    pub down: QType,
}

/// Which GGUF expert layout a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertLayout {
    /// `blk.N.ffn_{gate,up,down}_exps.weight`, experts along ne2 (2024+).
    Merged,
    /// `blk.N.ffn_{gate,up,down}.E.weight` (Dec 2023 files).
    PerExpert,
}

#[derive(Debug, Clone)]
pub enum FfnWeights {
    Dense { gate: Weight, up: Weight, down: Weight },
    Moe { router: Weight, types: ExpertTypes, experts: Vec<ExpertRanges> },
}

#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: Weight,
    pub wk: Weight,
    pub wv: Weight,
    pub wo: Weight,
    pub ffn_norm: Vec<f32>,
    pub ffn: FfnWeights,
}

#[derive(Debug, Clone)]
pub struct ModelWeights {
    pub token_embd: Weight,
    pub output_norm: Vec<f32>,
    /// `output.weight`, or `token_embd.weight` when the output is tied.
    pub output: Weight,
    pub layers: Vec<LayerWeights>,
    pub expert_layout: Option<ExpertLayout>,
}

impl ModelWeights {
    pub fn bind(file: &GgufFile, cfg: &LlamaConfig) -> Result<ModelWeights> {
        let b = Binder { file };
        let token_embd = b.matrix("token_embd.weight", cfg.n_vocab, cfg.n_embd)?;
        let output = match file.tensor("output.weight") {
            Some(_) => b.matrix("output.weight", cfg.n_vocab, cfg.n_embd)?,
            None => token_embd.clone(),
        };
        let output_norm = b.norm("output_norm.weight", cfg.n_embd)?;
        let expert_layout = if cfg.is_moe() {
            Some(if file.tensor("blk.0.ffn_gate_exps.weight").is_some() {
                ExpertLayout::Merged
            } else {
                ExpertLayout::PerExpert
            })
        } else {
            None
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let p = format!("blk.{l}");
            let ffn = match expert_layout {
                None => FfnWeights::Dense {
                    gate: b.matrix(&format!("{p}.ffn_gate.weight"), cfg.n_ff, cfg.n_embd)?,
                    up: b.matrix(&format!("{p}.ffn_up.weight"), cfg.n_ff, cfg.n_embd)?,
                    down: b.matrix(&format!("{p}.ffn_down.weight"), cfg.n_embd, cfg.n_ff)?,
                },
                Some(layout) => b.moe(l, layout, cfg)?,
            };
            layers.push(LayerWeights {
                attn_norm: b.norm(&format!("{p}.attn_norm.weight"), cfg.n_embd)?,
                wq: b.matrix(&format!("{p}.attn_q.weight"), cfg.q_dim(), cfg.n_embd)?,
                wk: b.matrix(&format!("{p}.attn_k.weight"), cfg.kv_dim(), cfg.n_embd)?,
                wv: b.matrix(&format!("{p}.attn_v.weight"), cfg.kv_dim(), cfg.n_embd)?,
                wo: b.matrix(&format!("{p}.attn_output.weight"), cfg.n_embd, cfg.q_dim())?,
                ffn_norm: b.norm(&format!("{p}.ffn_norm.weight"), cfg.n_embd)?,
                ffn,
            });
        }
        Ok(ModelWeights { token_embd, output_norm, output, layers, expert_layout })
    }
}

struct Binder<'a> {
    file: &'a GgufFile,
}

impl Binder<'_> {
    fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.file.require(name)
    }

    fn shape_error(&self, t: &TensorInfo, expected: &[u64]) -> Error {
        Error::TensorShape {
            path: self.file.path().to_path_buf(),
            tensor: t.name.clone(),
            found: t.dims.clone(),
            expected: expected.to_vec(),
        }
    }

    fn check_dims(&self, t: &TensorInfo, expected: &[u64]) -> Result<()> {
        let mut found = t.dims.clone();
        while found.len() > expected.len() && found.last() == Some(&1) {
            found.pop();
        }
        if found != expected {
            return Err(self.shape_error(t, expected));
        }
        Ok(())
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Weight> {
        let t = self.require(name)?;
        self.check_dims(t, &[cols as u64, rows as u64])?;
        Ok(Weight { name: name.to_string(), qtype: t.qtype, rows, cols, range: t.offset..t.offset + t.n_bytes })
    }

    /// A 1-D F32 norm weight, copied out (it is tiny and used every token).
    fn norm(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        let t = self.require(name)?;
        self.check_dims(t, &[n as u64])?;
        if t.qtype != QType::F32 {
            return Err(Error::InvalidTensor {
                path: self.file.path().to_path_buf(),
                tensor: name.to_string(),
                what: format!("norm weights must be F32, found {}", t.qtype),
            });
        }
        let bytes = self.file.tensor_bytes(t);
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn moe(&self, l: usize, layout: ExpertLayout, cfg: &LlamaConfig) -> Result<FfnWeights> {
        let p = format!("blk.{l}");
        let router = self.matrix(&format!("{p}.ffn_gate_inp.weight"), cfg.n_expert, cfg.n_embd)?;
        if !matches!(router.qtype, QType::F32 | QType::F16 | QType::BF16) {
            return Err(Error::InvalidTensor {
                path: self.file.path().to_path_buf(),
                tensor: router.name,
                what: format!("the router must be F32, F16 or BF16, found {}", router.qtype),
            });
        }
        let (n_e, ff, embd) = (cfg.n_expert as u64, cfg.n_ff as u64, cfg.n_embd as u64);
        let (types, experts) = match layout {
            ExpertLayout::Merged => {
                let slabs = |kind: &str, dims: [u64; 3]| -> Result<(QType, Vec<Range<u64>>)> {
                    let t = self.require(&format!("{p}.ffn_{kind}_exps.weight"))?;
                    self.check_dims(t, &dims)?;
                    let slab = t.n_bytes / n_e;
                    Ok((t.qtype, (0..n_e).map(|e| t.offset + e * slab..t.offset + (e + 1) * slab).collect()))
                };
                let (gt, g) = slabs("gate", [embd, ff, n_e])?;
                let (ut, u) = slabs("up", [embd, ff, n_e])?;
                let (dt, d) = slabs("down", [ff, embd, n_e])?;
                let experts = (0..cfg.n_expert)
                    .map(|e| ExpertRanges { gate: g[e].clone(), up: u[e].clone(), down: d[e].clone() })
                    .collect();
                (ExpertTypes { gate: gt, up: ut, down: dt }, experts)
            }
            ExpertLayout::PerExpert => {
                let mut types: Option<ExpertTypes> = None;
                let mut experts = Vec::with_capacity(cfg.n_expert);
                for e in 0..cfg.n_expert {
                    let g = self.matrix(&format!("{p}.ffn_gate.{e}.weight"), cfg.n_ff, cfg.n_embd)?;
                    let u = self.matrix(&format!("{p}.ffn_up.{e}.weight"), cfg.n_ff, cfg.n_embd)?;
                    let d = self.matrix(&format!("{p}.ffn_down.{e}.weight"), cfg.n_embd, cfg.n_ff)?;
                    let t = ExpertTypes { gate: g.qtype, up: u.qtype, down: d.qtype };
                    match types {
                        None => types = Some(t),
                        Some(first) if first != t => {
                            return Err(Error::InvalidTensor {
                                path: self.file.path().to_path_buf(),
                                tensor: format!("{p}.ffn_*.{e}.weight"),
                                what: format!("expert {e} has types {t:?} but expert 0 has {first:?}; all experts of a layer must share types"),
                            })
                        }
                        Some(_) => {}
                    }
                    experts.push(ExpertRanges { gate: g.range, up: u.range, down: d.range });
                }
                (types.expect("n_expert > 0"), experts)
            }
        };
        Ok(FfnWeights::Moe { router, types, experts })
    }
}
