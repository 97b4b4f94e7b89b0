//! A layer's routed experts over a micro-batch (Mixtral, Qwen2/3-MoE,
//! OLMoE): the router, the batch's tokens grouped by expert so that each
//! chosen expert's weights are fetched and streamed once per batch whatever
//! number of tokens chose it, the shared expert where there is one, and the
//! predictions that hint the next layers' experts to the expert source.

use std::time::{Duration, Instant};

use moe_offload::ExpertKey;
use moe_quant::{QMatrix, QType};

use super::act_cache::{quantize_rows, ActCache};
use super::batch::{row, row_mut, Batch};
use super::ffn::{act_rows, shared_expert};
use super::observe::ForwardObserver;
use super::ops::{add_bias, rms_norm};
use super::router::{route, Routing};
use super::session::{LayerRunStats, Prefetch};
use super::weights::{ExpertBiases, ExpertTypes, FfnWeights};
use super::Model;
use crate::error::Result;

/// MoE buffers of a session, grown on demand like [`super::batch::Batch`].
#[derive(Default)]
pub struct MoeScratch {
    /// Router logits, then probabilities [token][n_expert].
    router: Vec<f32>,
    /// Each token's chosen experts and weights [token][n_expert_used].
    chosen: Vec<(usize, f32)>,
    route_tmp: Vec<(usize, f32)>,
    /// Per expert, the (token, slot) pairs that chose it.
    members: Vec<Vec<(usize, usize)>>,
    /// The experts chosen by any token, in expert order.
    keys: Vec<ExpertKey>,
    /// Those not run yet (scratch of `run_experts`).
    pending: Vec<ExpertKey>,
    /// One expert's tokens' quantized inputs (gate type, then up type if it
    /// differs) and hidden rows (down's type).
    gathered: Vec<u8>,
    gathered_up: Vec<u8>,
    hidden: Vec<u8>,
    /// One expert's outputs [its tokens][n_embd].
    out: Vec<f32>,
    /// Each token's expert outputs by slot [token][n_expert_used][n_embd].
    slots: Vec<f32>,
    /// Prefetch (decode steps only): the next layer's router output, its
    /// top-k and their keys, for layer `predicted_for`.
    pf_router: Vec<f32>,
    pf_chosen: Vec<(usize, f32)>,
    pf_keys: Vec<ExpertKey>,
    /// Predictions beyond the next layer (prefetch depth > 1), not scored.
    pf_far_keys: Vec<ExpertKey>,
    predicted_for: Option<usize>,
    /// `Prefetch::RouterOnResidual`: the residual normalised for the next
    /// layer, and its quantized copies.
    pf_xb: Vec<f32>,
    pf_act: ActCache,
    /// The shared expert's sigmoid gates [token] and outputs [token][n_embd].
    shared_gates: Vec<f32>,
    shared_out: Vec<f32>,
}

impl MoeScratch {
    /// Forgets a prediction (a new token starts).
    pub fn reset_prediction(&mut self) {
        self.predicted_for = None;
    }
}

/// Layer `l`'s MoE FFN on `batch.xb` (normalised), into `batch.proj`:
/// Σ_s w_s · expert_s(xb) (+ the shared expert). Hints predicted experts
/// of the next layers (decode steps) and scores earlier predictions in
/// `stats`.
pub(super) fn moe_ffn(
    model: &Model,
    l: usize,
    b: &mut Batch,
    m: &mut MoeScratch,
    stats: &mut LayerRunStats,
    observer: Option<&mut (dyn ForwardObserver + '_)>,
) -> Result<()> {
    let c = model.config();
    let FfnWeights::Moe { router, router_bias, types, expert_biases, shared, .. } = &model.weights().layers[l].ffn else {
        unreachable!("moe_ffn is only called for MoE layers")
    };
    let routing = Routing::of(&c.traits, router_bias.as_deref());
    let (n, k, n_exp) = (b.n, c.n_expert_used, c.n_expert);
    m.router.resize(n * n_exp, 0.0);
    m.chosen.resize(n * k, (0, 0.0));
    m.members.resize_with(n_exp, Vec::new);
    let x = b.act.get(router.qtype.vec_dot_type(), &b.xb[..n * c.n_embd], c.n_embd);
    model.matrix(router).matmul(x, n, &mut m.router);
    for mem in &mut m.members {
        mem.clear();
    }
    for j in 0..n {
        route(&mut m.router[j * n_exp..(j + 1) * n_exp], k, routing, &mut m.route_tmp);
        m.chosen[j * k..(j + 1) * k].copy_from_slice(&m.route_tmp);
        for (s, &(e, _)) in m.route_tmp.iter().enumerate() {
            m.members[e].push((j, s));
        }
    }
    if let Some(o) = observer {
        o.routed(l, &m.chosen[..n * k], k);
    }
    m.keys.clear();
    m.keys.extend((0..n_exp).filter(|&e| !m.members[e].is_empty()).map(|e| ExpertKey { layer: l as u32, expert: e as u32 }));
    score_prediction(m, l, stats);
    // Start every missing chosen expert's read now, in parallel; then hint
    // the next layers', which queue behind these.
    model.experts().request(&m.keys);
    if n == 1 && model.prefetch() == Prefetch::RouterOnFfnInput {
        predict(model, l + 1, b, m, false);
        for far in l + 2..=l + model.prefetch_depth() {
            hint_layer(model, far, b, m, false, true);
        }
    }
    if let Some(s) = shared {
        // While the routed experts' reads are under way.
        shared_expert(model, s, b, &mut m.shared_gates, &mut m.shared_out);
    }
    stats.expert_compute += run_experts(model, *types, expert_biases.as_deref(), b, m)?;
    // Each token's experts, summed in slot order: Σ_s w_s · out_s, then
    // the shared expert's gated output.
    for j in 0..n {
        let proj = row_mut(&mut b.proj, c.n_embd, j);
        proj.fill(0.0);
        for s in 0..k {
            let w = m.chosen[j * k + s].1;
            for (p, &o) in proj.iter_mut().zip(row(&m.slots, c.n_embd, j * k + s)) {
                *p += o * w;
            }
        }
        if shared.is_some() {
            for (p, &o) in proj.iter_mut().zip(row(&m.shared_out, c.n_embd, j)) {
                *p += o;
            }
        }
    }
    Ok(())
}

/// [`Prefetch::RouterOnResidual`], called after layer `l`'s residual add
/// of a decode step: normalises the residual with layer l+1's `ffn_norm`
/// and hints the experts its router picks.
pub(super) fn predict_from_residual(model: &Model, l: usize, b: &mut Batch, m: &mut MoeScratch) {
    let c = model.config();
    if let Some(next) = model.weights().layers.get(l + 1) {
        m.pf_xb.resize(c.n_embd, 0.0);
        rms_norm(&mut m.pf_xb, &b.x[..c.n_embd], &next.ffn_norm, c.rms_eps);
        m.pf_act.invalidate();
        predict(model, l + 1, b, m, true);
    }
}

/// Runs every chosen expert on its tokens and files each output under its
/// (token, slot). Returns the time spent computing (waits for reads
/// excluded).
fn run_experts(model: &Model, types: ExpertTypes, biases: Option<&ExpertBiases>, b: &mut Batch, m: &mut MoeScratch) -> Result<Duration> {
    let c = model.config();
    let (n, k, ff) = (b.n, c.n_expert_used, c.n_ff_exp);
    m.slots.resize(n * k * c.n_embd, 0.0);
    let (gate_t, up_t) = (types.gate.vec_dot_type(), types.up.vec_dot_type());
    let mut compute = Duration::ZERO;
    // Ready experts first, so that compute overlaps the reads still under
    // way (results do not depend on the order: each output goes to its own
    // slot).
    let mut pending = std::mem::take(&mut m.pending);
    pending.clear();
    pending.extend_from_slice(&m.keys);
    while !pending.is_empty() {
        let i = pending.iter().position(|&k| model.experts().is_ready(k)).unwrap_or(0);
        let key = pending.remove(i);
        let members = &m.members[key.expert as usize];
        let ne = members.len();
        gather(b.act.get(gate_t, &b.xb[..n * c.n_embd], c.n_embd), gate_t, c.n_embd, members, &mut m.gathered);
        if up_t != gate_t {
            gather(b.act.get(up_t, &b.xb[..n * c.n_embd], c.n_embd), up_t, c.n_embd, members, &mut m.gathered_up);
        }
        let up_in = if up_t == gate_t { &m.gathered } else { &m.gathered_up };
        let (gate, up, hidden, out) = (&mut b.gate[..ne * ff], &mut b.up[..ne * ff], &mut m.hidden, &mut m.out);
        out.resize(ne * c.n_embd, 0.0);
        model.experts().with_expert(key, &mut |bytes| {
            let t = Instant::now();
            expert_matrix(types.gate, ff, c.n_embd, bytes.gate).matmul(&m.gathered, ne, gate);
            expert_matrix(types.up, ff, c.n_embd, bytes.up).matmul(up_in, ne, up);
            let e = key.expert as usize;
            if let Some(bs) = biases {
                add_bias(up, &bs.up[e * ff..(e + 1) * ff]);
                add_bias(gate, &bs.gate[e * ff..(e + 1) * ff]);
            }
            act_rows(c.traits.ffn_act, gate, up, ff);
            quantize_rows(types.down.vec_dot_type(), gate, ff, hidden);
            expert_matrix(types.down, c.n_embd, ff, bytes.down).matmul(hidden, ne, out);
            if let Some(bs) = biases {
                add_bias(out, &bs.down[e * c.n_embd..(e + 1) * c.n_embd]);
            }
            compute += t.elapsed();
        })?;
        for (i, &(j, s)) in members.iter().enumerate() {
            row_mut(&mut m.slots, c.n_embd, j * k + s).copy_from_slice(row(out, c.n_embd, i));
        }
    }
    m.pending = pending;
    Ok(compute)
}

/// Predicts the experts of layer `next` (if it is an MoE layer) by applying
/// its router to the current FFN input (or, with `from_residual`, to
/// `pf_xb`), and hints them to the expert source; the prediction is scored
/// when that layer routes.
fn predict(model: &Model, next: usize, b: &mut Batch, m: &mut MoeScratch, from_residual: bool) {
    if hint_layer(model, next, b, m, from_residual, false) {
        m.predicted_for = Some(next);
    }
}

/// Routes `layer`'s router on the prediction input and hints the top-k
/// (kept in `pf_keys`, or `pf_far_keys` when `far`: layers beyond the
/// next, not scored). Writes only prefetch scratch, never forward-pass
/// state. False for a dense layer.
fn hint_layer(model: &Model, layer: usize, b: &mut Batch, m: &mut MoeScratch, from_residual: bool, far: bool) -> bool {
    let c = model.config();
    let Some(FfnWeights::Moe { router, router_bias, .. }) = model.weights().layers.get(layer).map(|l| &l.ffn) else {
        return false;
    };
    let routing = Routing::of(&c.traits, router_bias.as_deref());
    let t = router.qtype.vec_dot_type();
    let x = if from_residual {
        m.pf_act.get(t, &m.pf_xb, c.n_embd)
    } else {
        b.act.get(t, &b.xb[..c.n_embd], c.n_embd)
    };
    m.pf_router.resize(c.n_expert, 0.0);
    model.matrix(router).matvec(x, &mut m.pf_router);
    route(&mut m.pf_router, c.n_expert_used, routing, &mut m.pf_chosen);
    let keys = if far { &mut m.pf_far_keys } else { &mut m.pf_keys };
    keys.clear();
    keys.extend(m.pf_chosen.iter().map(|&(e, _)| ExpertKey { layer: layer as u32, expert: e as u32 }));
    model.experts().prefetch(keys);
    true
}

/// Counts how many of the experts predicted for layer `l` its router chose.
fn score_prediction(m: &mut MoeScratch, l: usize, stats: &mut LayerRunStats) {
    if m.predicted_for != Some(l) {
        return;
    }
    m.predicted_for = None;
    stats.predicted += m.pf_keys.len() as u64;
    stats.predicted_chosen += m.pf_keys.iter().filter(|k| m.keys.contains(k)).count() as u64;
}

/// Copies the quantized rows of `members`' tokens out of `act` (rows of
/// `cols` elements of `act_type`).
fn gather(act: &[u8], act_type: QType, cols: usize, members: &[(usize, usize)], out: &mut Vec<u8>) {
    let rb = act_type.row_bytes_usize(cols).expect("activation rows are whole blocks");
    out.clear();
    for &(j, _) in members {
        out.extend_from_slice(&act[j * rb..(j + 1) * rb]);
    }
}

fn expert_matrix(qtype: QType, rows: usize, cols: usize, bytes: &[u8]) -> QMatrix<'_> {
    QMatrix::new(qtype, rows, cols, bytes).expect("expert slab sizes are validated when the model is bound")
}
