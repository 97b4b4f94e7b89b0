//! Binds GGUF tensors to the model's weights: looks each one up by name,
//! checks its shape and type, and records its byte range. Expert slabs are
//! reduced to `ExpertKey → ExpertRanges` for both GGUF expert layouts.

use std::ops::Range;

use moe_offload::ExpertRanges;
use moe_quant::QType;

use crate::config::ModelConfig;
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

/// A dense SwiGLU FFN: `down(SiLU(gate·x) ⊙ up·x)`.
#[derive(Debug, Clone)]
pub struct DenseFfn {
    pub gate: Weight,
    pub up: Weight,
    pub down: Weight,
}

/// Qwen2-MoE's shared expert: a dense FFN beside the routed experts whose
/// output is scaled by `sigmoid(gate_inp · x)`.
#[derive(Debug, Clone)]
pub struct SharedExpert {
    /// `ffn_gate_inp_shexp.weight`: one row of `n_embd`.
    pub gate_inp: Weight,
    pub ffn: DenseFfn,
}

/// gpt-oss's biases of the routed experts, resident (f32, small beside
/// the experts): each expert's row of `ffn_{gate,up}_exps.bias`
/// (`n_ff_exp` wide) and `ffn_down_exps.bias` (`n_embd` wide).
#[derive(Debug, Clone)]
pub struct ExpertBiases {
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    pub down: Vec<f32>,
}

#[derive(Debug, Clone)]
pub enum FfnWeights {
    Dense(DenseFfn),
    Moe {
        router: Weight,
        /// `ffn_gate_inp.bias` (gpt-oss), added to the router's logits.
        router_bias: Option<Vec<f32>>,
        types: ExpertTypes,
        experts: Vec<ExpertRanges>,
        expert_biases: Option<Box<ExpertBiases>>,
        shared: Option<SharedExpert>,
    },
}

/// One attention block's weights: projections, their optional biases
/// (Qwen2) and optional Q/K RMSNorm weights (Qwen3: per head, OLMoE: full
/// width).
#[derive(Debug, Clone)]
pub struct AttentionWeights {
    pub wq: Weight,
    pub wk: Weight,
    pub wv: Weight,
    pub wo: Weight,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub bo: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    /// gpt-oss's attention sinks (`attn_sinks.weight`): one logit per
    /// query head that joins its softmax.
    pub sinks: Option<Vec<f32>>,
}

#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub attn: AttentionWeights,
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
    /// Llama 3's RoPE frequency factors (`rope_freqs.weight`, head_dim/2):
    /// θ of dimension pair i is divided by factor i.
    pub rope_freqs: Option<Vec<f32>>,
}

impl ModelWeights {
    pub fn bind(file: &GgufFile, cfg: &ModelConfig) -> Result<ModelWeights> {
        let b = Binder { file };
        let token_embd = b.matrix("token_embd.weight", cfg.n_vocab, cfg.n_embd)?;
        let output = match file.tensor("output.weight") {
            None if cfg.traits.tied_output => token_embd.clone(),
            _ => b.matrix("output.weight", cfg.n_vocab, cfg.n_embd)?,
        };
        let output_norm = b.norm("output_norm.weight", cfg.n_embd)?;
        let expert_layout = if cfg.is_moe() {
            let first = cfg.n_leading_dense;
            Some(if file.tensor(&format!("blk.{first}.ffn_gate_exps.weight")).is_some() {
                ExpertLayout::Merged
            } else {
                ExpertLayout::PerExpert
            })
        } else {
            None
        };
        let rope_freqs = b.opt_vector("rope_freqs.weight", cfg.head_dim / 2)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let p = format!("blk.{l}");
            let ffn = match expert_layout {
                Some(layout) if cfg.is_moe_layer(l) => b.moe(l, layout, cfg)?,
                _ => FfnWeights::Dense(b.dense_ffn(l, "", cfg.n_ff, cfg)?),
            };
            layers.push(LayerWeights {
                attn_norm: b.norm(&format!("{p}.attn_norm.weight"), cfg.n_embd)?,
                attn: b.attention(l, cfg)?,
                ffn_norm: b.norm(&format!("{p}.{}.weight", cfg.traits.ffn_norm), cfg.n_embd)?,
                ffn,
            });
        }
        Ok(ModelWeights { token_embd, output_norm, output, layers, expert_layout, rope_freqs })
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

    /// Dims must match, trailing 1s aside on either side (a one-row matrix
    /// such as `ffn_gate_inp_shexp` is stored 1-D).
    fn check_dims(&self, t: &TensorInfo, expected: &[u64]) -> Result<()> {
        let trim = |d: &[u64]| -> Vec<u64> {
            let mut d = d.to_vec();
            while d.len() > 1 && d.last() == Some(&1) {
                d.pop();
            }
            d
        };
        if trim(&t.dims) != trim(expected) {
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
        self.vector_of(t, n)
    }

    /// An optional 1-D F32 vector (a bias, a QK norm, RoPE factors).
    fn opt_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        self.file.tensor(name).map(|t| self.vector_of(t, n)).transpose()
    }

    fn vector_of(&self, t: &TensorInfo, n: usize) -> Result<Vec<f32>> {
        self.check_dims(t, &[n as u64])?;
        self.f32_values(t)
    }

    /// An F32 tensor's values, its shape already checked.
    fn f32_values(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        if t.qtype != QType::F32 {
            return Err(Error::InvalidTensor {
                path: self.file.path().to_path_buf(),
                tensor: t.name.clone(),
                what: format!("norm, bias and RoPE-factor vectors must be F32, found {}", t.qtype),
            });
        }
        let bytes = self.file.tensor_bytes(t);
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Q/K/V/O projections, their optional biases, and the QK norm the
    /// architecture has (required when it has one).
    fn attention(&self, l: usize, cfg: &ModelConfig) -> Result<AttentionWeights> {
        let p = format!("blk.{l}");
        let (q, kv, e) = (cfg.q_dim(), cfg.kv_dim(), cfg.n_embd);
        let (q_norm, k_norm) = match cfg.traits.qk_norm.widths(cfg.head_dim, q, kv) {
            None => (None, None),
            Some((qn, kn)) => (
                Some(self.norm(&format!("{p}.attn_q_norm.weight"), qn)?),
                Some(self.norm(&format!("{p}.attn_k_norm.weight"), kn)?),
            ),
        };
        Ok(AttentionWeights {
            wq: self.matrix(&format!("{p}.attn_q.weight"), q, e)?,
            wk: self.matrix(&format!("{p}.attn_k.weight"), kv, e)?,
            wv: self.matrix(&format!("{p}.attn_v.weight"), kv, e)?,
            wo: self.matrix(&format!("{p}.attn_output.weight"), e, q)?,
            bq: self.opt_vector(&format!("{p}.attn_q.bias"), q)?,
            bk: self.opt_vector(&format!("{p}.attn_k.bias"), kv)?,
            bv: self.opt_vector(&format!("{p}.attn_v.bias"), kv)?,
            bo: self.opt_vector(&format!("{p}.attn_output.bias"), e)?,
            q_norm,
            k_norm,
            sinks: match cfg.traits.attn_sinks {
                true => Some(self.norm(&format!("{p}.attn_sinks.weight"), cfg.n_head)?),
                false => None,
            },
        })
    }

    /// `blk.{l}.ffn_{gate,up,down}{suffix}.weight` of width `ff`.
    fn dense_ffn(&self, l: usize, suffix: &str, ff: usize, cfg: &ModelConfig) -> Result<DenseFfn> {
        let name = |kind: &str| format!("blk.{l}.ffn_{kind}{suffix}.weight");
        Ok(DenseFfn {
            gate: self.matrix(&name("gate"), ff, cfg.n_embd)?,
            up: self.matrix(&name("up"), ff, cfg.n_embd)?,
            down: self.matrix(&name("down"), cfg.n_embd, ff)?,
        })
    }

    fn moe(&self, l: usize, layout: ExpertLayout, cfg: &ModelConfig) -> Result<FfnWeights> {
        let p = format!("blk.{l}");
        let router = self.matrix(&format!("{p}.ffn_gate_inp.weight"), cfg.n_expert, cfg.n_embd)?;
        if !matches!(router.qtype, QType::F32 | QType::F16 | QType::BF16) {
            return Err(Error::InvalidTensor {
                path: self.file.path().to_path_buf(),
                tensor: router.name,
                what: format!("the router must be F32, F16 or BF16, found {}", router.qtype),
            });
        }
        let (n_e, ff, embd) = (cfg.n_expert as u64, cfg.n_ff_exp as u64, cfg.n_embd as u64);
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
                    let g = self.matrix(&format!("{p}.ffn_gate.{e}.weight"), cfg.n_ff_exp, cfg.n_embd)?;
                    let u = self.matrix(&format!("{p}.ffn_up.{e}.weight"), cfg.n_ff_exp, cfg.n_embd)?;
                    let d = self.matrix(&format!("{p}.ffn_down.{e}.weight"), cfg.n_embd, cfg.n_ff_exp)?;
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
        let shared = match cfg.traits.shared_expert {
            true => Some(SharedExpert {
                gate_inp: self.matrix(&format!("{p}.ffn_gate_inp_shexp.weight"), 1, cfg.n_embd)?,
                ffn: self.dense_ffn(l, "_shexp", cfg.n_ff_shexp, cfg)?,
            }),
            false => None,
        };
        let router_bias = self.opt_vector(&format!("{p}.ffn_gate_inp.bias"), cfg.n_expert)?;
        let expert_biases = self.expert_biases(l, cfg)?;
        Ok(FfnWeights::Moe { router, router_bias, types, experts, expert_biases, shared })
    }

    /// `blk.{l}.ffn_{gate,up,down}_exps.bias`: all three or none.
    fn expert_biases(&self, l: usize, cfg: &ModelConfig) -> Result<Option<Box<ExpertBiases>>> {
        let name = |kind: &str| format!("blk.{l}.ffn_{kind}_exps.bias");
        let present = ["gate", "up", "down"].map(|k| self.file.tensor(&name(k)).is_some());
        if present == [false; 3] {
            return Ok(None);
        }
        let table = |kind: &str, width: usize| -> Result<Vec<f32>> {
            let t = self.require(&name(kind))?;
            self.check_dims(t, &[width as u64, cfg.n_expert as u64])?;
            self.f32_values(t)
        };
        Ok(Some(Box::new(ExpertBiases { gate: table("gate", cfg.n_ff_exp)?, up: table("up", cfg.n_ff_exp)?, down: table("down", cfg.n_embd)? })))
    }
}
