//! Upcycling: a dense llama GGUF becomes a Mixtral-layout MoE whose experts
//! are byte copies of the dense FFN, plus a random F32 router per layer.
//! Tensors are streamed from the source mapping into the new file, so the
//! model is never held in RAM (let alone twice).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use moe_quant::QType;

use super::rng::{stream_seed, write_rows, Uniform};
use super::{ffn_name, ExpertLayout};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, GgufWriter, TensorInfo, Value};

/// Writes `out`: every tensor and key of the dense llama model `dense`,
/// with each `blk.N.ffn_{gate,up,down}.weight` replaced by `n_expert`
/// identical experts in `layout` (merged: the expert index is ne2, each
/// slab a byte copy of the dense tensor), an F32 router
/// `blk.N.ffn_gate_inp.weight` of dims `[n_embd, n_expert]` (see [`Router`]),
/// and `llama.expert_count` / `llama.expert_used_count` set.
/// The router an upcycled model gets.
#[derive(Clone)]
pub enum Router {
    /// Uniform random weights from this seed: routing varies per token.
    Random { seed: u64 },
    /// All zeros: every expert is equally likely, the first `k` are chosen
    /// and each weighs exactly 1/k, so the MoE output equals the dense
    /// FFN's exactly when k is a power of two.
    Zero,
    /// Rows fitted to real hidden states ([`super::fit_routers`]):
    /// `layers[l]` holds `n_expert` rows of `n_embd`.
    Fitted(std::sync::Arc<super::FittedRouters>),
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Router::Random { seed } => write!(f, "Random {{ seed: {seed} }}"),
            Router::Zero => write!(f, "Zero"),
            Router::Fitted(r) => write!(f, "Fitted {{ layers: {}, tokens: {} }}", r.layers.len(), r.tokens),
        }
    }
}

pub fn upcycle(
    dense: &Path,
    out: &Path,
    n_expert: usize,
    n_expert_used: usize,
    layout: ExpertLayout,
    router: Router,
) -> Result<()> {
    let src = GgufFile::open(dense)?;
    let md = src.metadata();
    let unsupported = |what: String| Error::Unsupported { path: dense.to_path_buf(), what };
    if md.str("general.architecture")? != "llama" {
        return Err(unsupported(format!("upcycle needs a llama model, found '{}'", md.str("general.architecture")?)));
    }
    if md.opt_u64("llama.expert_count")?.unwrap_or(0) > 0 {
        return Err(unsupported("the model already has experts".into()));
    }
    if n_expert == 0 || !(1..=n_expert).contains(&n_expert_used) {
        return Err(Error::InvalidArgument(format!(
            "upcycle: need n_expert >= 1 and 1 <= n_expert_used <= n_expert, got {n_expert} and {n_expert_used}"
        )));
    }
    let n_embd = md.u64("llama.embedding_length")?;
    let n_layer = md.u64("llama.block_count")? as usize;

    for l in 0..n_layer {
        for kind in ["gate", "up", "down"] {
            src.require(&ffn_name(l, kind, layout, None))?;
        }
    }

    let mut w = GgufWriter::new();
    for (k, v) in &md.map {
        w.add_kv(k.clone(), v.clone());
    }
    w.add_kv("llama.expert_count", Value::U32(n_expert as u32));
    w.add_kv("llama.expert_used_count", Value::U32(n_expert_used as u32));

    let mut routed = HashSet::new();
    for t in src.tensors() {
        let Some((l, kind)) = dense_ffn(&t.name) else {
            let bytes = src.tensor_bytes(t);
            w.add_tensor_with(&t.name, t.qtype, &t.dims, move |o: &mut dyn Write| o.write_all(bytes))?;
            continue;
        };
        if routed.insert(l) {
            let name = format!("blk.{l}.ffn_gate_inp.weight");
            let n_e = n_expert as u64;
            match &router {
                &Router::Random { seed } => {
                    let (stream, dist) = (stream_seed(seed, &name), Uniform::weights(n_embd));
                    w.add_tensor_with(&name, QType::F32, &[n_embd, n_e], move |o: &mut dyn Write| {
                        write_rows(o, QType::F32, n_embd, n_e, stream, dist)
                    })?;
                }
                Router::Zero => w.add_tensor(&name, QType::F32, &[n_embd, n_e], vec![0u8; (n_embd * n_e * 4) as usize])?,
                Router::Fitted(f) => {
                    let rows = f.layers.get(l).filter(|r| r.len() as u64 == n_embd * n_e && f.n_embd as u64 == n_embd).ok_or_else(|| {
                        Error::InvalidArgument(format!("upcycle: no fitted {n_e}x{n_embd} router for layer {l}"))
                    })?;
                    w.add_tensor(&name, QType::F32, &[n_embd, n_e], rows.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?
                }
            }
        }
        add_experts(&mut w, &src, t, l, kind, n_expert, layout)?;
    }
    w.write(out)
}

/// `blk.N.ffn_{gate,up,down}.weight` → (N, kind).
fn dense_ffn(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (l, rest) = rest.split_once('.')?;
    let kind = rest.strip_prefix("ffn_")?.strip_suffix(".weight")?;
    if !matches!(kind, "gate" | "up" | "down") {
        return None;
    }
    Some((l.parse().ok()?, kind))
}

fn add_experts<'a>(
    w: &mut GgufWriter<'a>,
    src: &'a GgufFile,
    t: &TensorInfo,
    l: usize,
    kind: &str,
    n_expert: usize,
    layout: ExpertLayout,
) -> Result<()> {
    if t.dims.len() != 2 {
        return Err(Error::TensorShape {
            path: src.path().to_path_buf(),
            tensor: t.name.clone(),
            found: t.dims.clone(),
            expected: vec![t.ne(0), t.ne(1)],
        });
    }
    let bytes = src.tensor_bytes(t);
    match layout {
        ExpertLayout::Merged => {
            let dims = [t.dims[0], t.dims[1], n_expert as u64];
            w.add_tensor_with(&ffn_name(l, kind, layout, Some(0)), t.qtype, &dims, move |o: &mut dyn Write| {
                (0..n_expert).try_for_each(|_| o.write_all(bytes))
            })
        }
        ExpertLayout::PerExpert => (0..n_expert).try_for_each(|e| {
            w.add_tensor_with(&ffn_name(l, kind, layout, Some(e)), t.qtype, &t.dims, move |o: &mut dyn Write| {
                o.write_all(bytes)
            })
        }),
    }
}
