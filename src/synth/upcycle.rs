//! Upcycling: a dense llama GGUF becomes an MoE whose experts are byte
//! copies of the dense FFN, plus an F32 router per layer, in the layout of
//! a target architecture ([`upcycle_to`]): Mixtral's (`llama`), or
//! Qwen3-MoE's, OLMoE's or Qwen2-MoE's. Tensors are streamed from the
//! source mapping into the new file, so the model is never held in RAM
//! (let alone twice).
//!
//! For a NEOX-RoPE target the Q and K rows are put back in the order the
//! Hugging Face checkpoint had (llama files carry them permuted for the
//! adjacent-pair RoPE; rows are whole quant blocks, so this is a byte
//! copy). What the target adds is neutral where it can be: QK-norm gains
//! of 1 (Qwen3-MoE, OLMoE: the norm itself still rescales Q and K, so
//! attention is not the dense model's), a shared expert that is the dense
//! FFN behind a gate of about sigmoid(0) = ½ (Qwen2-MoE), an `output.weight`
//! copied from the embeddings where the target has no tied output (OLMoE,
//! Qwen2-MoE). With renormalised
//! routing (`llama`, `qwen3moe`) the routed experts together compute the
//! dense FFN exactly; without (`olmoe`, `qwen2moe`) they compute it scaled
//! by the chosen experts' probability mass.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use moe_quant::QType;

use super::rng::{stream_seed, write_rows, Uniform};
use super::{ffn_name, ExpertLayout};
use crate::arch::{Arch, MoeKind, RopeKind};
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

/// Everything [`upcycle_to`] checks of its input, cheap (the file's header
/// only): the CLI calls it before the minutes of fitting routers.
pub fn check_upcycle(arch: Arch, dense: &Path, n_expert: usize, n_expert_used: usize, layout: ExpertLayout) -> Result<()> {
    check_source(arch, &GgufFile::open(dense)?, n_expert, n_expert_used, layout)
}

/// [`check_upcycle`] on the already opened dense model.
fn check_source(arch: Arch, src: &GgufFile, n_expert: usize, n_expert_used: usize, layout: ExpertLayout) -> Result<()> {
    let dense = src.path();
    let md = src.metadata();
    let unsupported = |what: String| Error::Unsupported { path: dense.to_path_buf(), what };
    if md.str("general.architecture")? != "llama" {
        return Err(unsupported(format!("upcycle needs a llama model, found '{}'", md.str("general.architecture")?)));
    }
    if md.opt_u64("llama.expert_count")?.unwrap_or(0) > 0 {
        return Err(unsupported("the model already has experts".into()));
    }
    if arch.traits().moe == MoeKind::Dense {
        return Err(Error::InvalidArgument(format!("upcycle: {arch} is a dense architecture; give an MoE one ({})", upcycle_targets())));
    }
    if !upcycles_to(arch) {
        return Err(Error::InvalidArgument(format!(
            "upcycle: {arch} computes another function than a llama model (sinks, windows, its clamped SwiGLU): its experts cannot be a dense FFN's; give one of {} (for {arch}: moe synth --preset)",
            upcycle_targets()
        )));
    }
    if layout == ExpertLayout::PerExpert && arch != Arch::Llama {
        return Err(Error::InvalidArgument(format!("upcycle: the per-expert layout is Mixtral's (llama) only, not {arch}'s")));
    }
    if n_expert == 0 || !(1..=n_expert).contains(&n_expert_used) {
        return Err(Error::InvalidArgument(format!(
            "upcycle: need n_expert >= 1 and 1 <= n_expert_used <= n_expert, got {n_expert} and {n_expert_used}"
        )));
    }
    let n_layer = md.u64("llama.block_count")? as usize;
    let n_head = md.u64("llama.attention.head_count")?;
    let n_head_kv = md.opt_u64("llama.attention.head_count_kv")?.unwrap_or(n_head);
    for l in 0..n_layer {
        for kind in ["gate", "up", "down"] {
            src.require(&ffn_name(l, kind, layout, None))?;
        }
    }
    if arch == Arch::Olmoe && n_head_kv != n_head {
        return Err(Error::InvalidArgument(format!(
            "upcycle: olmoe has no grouped-query attention (llama.cpp makes attn_k_norm n_embd wide), but {} has {n_head_kv} KV heads for {n_head} query heads; try qwen3moe",
            dense.display()
        )));
    }

    Ok(())
}

/// [`upcycle_to`] the `llama` architecture (Mixtral's layout).
pub fn upcycle(dense: &Path, out: &Path, n_expert: usize, n_expert_used: usize, layout: ExpertLayout, router: Router) -> Result<()> {
    upcycle_to(Arch::Llama, dense, out, n_expert, n_expert_used, layout, router)
}

/// Writes `out`: every tensor and key of the dense llama model `dense`, as
/// architecture `arch` (keys renamed `llama.*` → `{arch}.*`), with each
/// `blk.N.ffn_{gate,up,down}.weight` replaced by `n_expert` identical
/// experts in `layout` (merged: the expert index is ne2, each slab a byte
/// copy of the dense tensor), an F32 router `blk.N.ffn_gate_inp.weight` of
/// dims `[n_embd, n_expert]` (see [`Router`]), the expert count keys set,
/// and what `arch` needs beyond that (see the module doc).
pub fn upcycle_to(
    arch: Arch,
    dense: &Path,
    out: &Path,
    n_expert: usize,
    n_expert_used: usize,
    layout: ExpertLayout,
    router: Router,
) -> Result<()> {
    let src = GgufFile::open(dense)?;
    check_source(arch, &src, n_expert, n_expert_used, layout)?;
    let md = src.metadata();
    let n_embd = md.u64("llama.embedding_length")?;
    let n_ff = md.u64("llama.feed_forward_length")?;
    let n_head = md.u64("llama.attention.head_count")?;
    let n_head_kv = md.opt_u64("llama.attention.head_count_kv")?.unwrap_or(n_head);
    let head_dim = md.opt_u64("llama.attention.key_length")?.unwrap_or(n_embd / n_head.max(1));

    let traits = arch.traits();
    let mut w = GgufWriter::new();
    for (k, v) in &md.map {
        match k.strip_prefix("llama.") {
            Some(rest) => w.add_kv(format!("{}.{rest}", arch.name()), v.clone()),
            None => w.add_kv(k.clone(), v.clone()),
        };
    }
    let key = |k: &str| format!("{}.{k}", arch.name());
    w.add_kv("general.architecture", Value::String(arch.name().into()));
    w.add_kv(key("expert_count"), Value::U32(n_expert as u32));
    w.add_kv(key("expert_used_count"), Value::U32(n_expert_used as u32));
    if traits.expert_ff_key {
        w.add_kv(key("expert_feed_forward_length"), Value::U32(n_ff as u32));
    }
    if traits.shared_expert {
        w.add_kv(key("expert_shared_feed_forward_length"), Value::U32(n_ff as u32));
    }

    // A tied source (SmolLM2) into an architecture llama.cpp loads only
    // with `output.weight`: the output is a copy of the embeddings.
    if !traits.tied_output && src.tensor("output.weight").is_none() {
        copy_tensor(&mut w, &src, src.require("token_embd.weight")?, "output.weight")?;
    }
    let mut routed = HashSet::new();
    for t in src.tensors() {
        if let Some((l, kind @ ("q" | "k"))) = attn_qk(&t.name) {
            if traits.rope == RopeKind::Neox {
                let heads = if kind == "q" { n_head } else { n_head_kv };
                add_unpermuted(&mut w, &src, t, heads)?;
            } else {
                copy_tensor(&mut w, &src, t, &t.name)?;
            }
            // Q's norm for "q", K's for "k" (t.ne(1) is that tensor's row count).
            let widths = traits.qk_norm.widths(head_dim as usize, t.ne(1) as usize, t.ne(1) as usize);
            if let Some((n, _)) = widths {
                let n = n as u64;
                let ones: Vec<u8> = (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect();
                w.add_tensor(&format!("blk.{l}.attn_{kind}_norm.weight"), QType::F32, &[n], ones)?;
            }
            continue;
        }
        let Some((l, kind)) = dense_ffn(&t.name) else {
            copy_tensor(&mut w, &src, t, &t.name)?;
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
            if traits.shared_expert {
                // A gate near sigmoid(0) = ½: tiny random weights, never all
                // zero (llama.cpp computes the sigmoid as silu(g)/g, NaN at 0).
                let name = format!("blk.{l}.ffn_gate_inp_shexp.weight");
                let (stream, dist) = (stream_seed(0, &name), Uniform { center: 0.0, half_width: 1e-3 });
                w.add_tensor_with(&name, QType::F32, &[n_embd], move |o: &mut dyn Write| write_rows(o, QType::F32, n_embd, 1, stream, dist))?;
            }
        }
        if traits.shared_expert {
            copy_tensor(&mut w, &src, t, &format!("blk.{l}.ffn_{kind}_shexp.weight"))?;
        }
        add_experts(&mut w, &src, t, l, kind, n_expert, layout)?;
    }
    w.write(out)
}

/// Adds `t`'s bytes, streamed from the source mapping, under `name`.
fn copy_tensor<'a>(w: &mut GgufWriter<'a>, src: &'a GgufFile, t: &TensorInfo, name: &str) -> Result<()> {
    let bytes = src.tensor_bytes(t);
    w.add_tensor_with(name, t.qtype, &t.dims, move |o: &mut dyn Write| o.write_all(bytes))
}

/// Whether a dense llama model's FFN can be `arch`'s experts: an MoE
/// architecture whose pass is llama's otherwise (not gpt-oss).
fn upcycles_to(arch: Arch) -> bool {
    let t = arch.traits();
    t.moe != MoeKind::Dense && t.ffn_act == crate::arch::FfnAct::SwiGlu && !t.attn_sinks && t.swa_pattern == 0
}

/// The architectures [`upcycle_to`] writes, for messages.
pub fn upcycle_targets() -> String {
    Arch::ALL.iter().filter(|&&a| upcycles_to(a)).map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

/// `blk.N.attn_{q,k}.weight` → (N, "q" | "k").
fn attn_qk(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (l, rest) = rest.split_once('.')?;
    let kind = rest.strip_prefix("attn_")?.strip_suffix(".weight")?;
    matches!(kind, "q" | "k").then_some((l.parse().ok()?, kind))
}

/// Adds Q or K with its rows in the Hugging Face order: llama.cpp's
/// converter permuted each head's rows so that HF row `a·hd/2 + i` (a ∈
/// {0, 1}) became row `2i + a`; here output row `a·hd/2 + i` of each head
/// is input row `2i + a`.
fn add_unpermuted<'a>(w: &mut GgufWriter<'a>, src: &'a GgufFile, t: &TensorInfo, heads: u64) -> Result<()> {
    let rows = t.ne(1);
    if t.dims.len() != 2 || heads == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) {
        return Err(Error::TensorShape {
            path: src.path().to_path_buf(),
            tensor: t.name.clone(),
            found: t.dims.clone(),
            expected: vec![t.ne(0), heads * (rows / heads.max(1) / 2 * 2).max(2)],
        });
    }
    let rb = t.row_bytes() as usize;
    let hd = (rows / heads) as usize;
    let bytes = src.tensor_bytes(t);
    w.add_tensor_with(&t.name, t.qtype, &t.dims, move |o: &mut dyn Write| {
        for h in 0..heads as usize {
            for a in 0..2 {
                for i in 0..hd / 2 {
                    let r = h * hd + 2 * i + a;
                    o.write_all(&bytes[r * rb..(r + 1) * rb])?;
                }
            }
        }
        Ok(())
    })
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
