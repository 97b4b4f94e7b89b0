//! One inference session: the KV cache and every scratch buffer, allocated
//! once. `forward` runs one token through the model and never allocates.

use std::time::{Duration, Instant};

use moe_offload::ExpertKey;
use moe_quant::QMatrix;

use super::act_cache::ActCache;
use super::moe::route;
use super::attention::{dot_f32, weighted_values, LaneScratch, Mode, ValueLayout};
use super::ops::{rms_norm, rope_apply, rope_cache, swiglu};
use super::weights::{FfnWeights, Weight};
use super::Model;
use crate::error::{Error, Result};

/// How the forward pass predicts the experts of the next layer, to hint
/// them to the expert source (`ExpertSource::prefetch`) while the current
/// layer computes. A prediction only warms a cache: results never depend on
/// it, and it never touches a buffer the forward pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefetch {
    /// No predictions, no hints.
    Off,
    /// Right after layer l routes, apply layer l+1's router to layer l's
    /// FFN input (the residual normalised with layer l's `ffn_norm`). One
    /// router matvec (n_expert × n_embd), no norm; the reads overlap layer
    /// l's experts and layer l+1's attention.
    #[default]
    RouterOnFfnInput,
    /// After layer l's MoE, normalise the residual with layer l+1's
    /// `ffn_norm` and apply layer l+1's router: the true router input but
    /// for layer l+1's attention, so more accurate, but the reads overlap
    /// only that attention.
    RouterOnResidual,
}

/// What one layer's MoE did in a session (the cache keeps the I/O side).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LayerRunStats {
    /// Experts predicted for this layer (k per prediction).
    pub predicted: u64,
    /// How many of those the router then chose.
    pub predicted_chosen: u64,
    /// Time in this layer's expert kernels (inside `with_expert`, so
    /// waiting for reads is not counted).
    pub expert_compute: Duration,
}

impl LayerRunStats {
    /// Fraction of predicted experts that were chosen; `None` before any
    /// prediction.
    pub fn prediction_accuracy(&self) -> Option<f64> {
        (self.predicted > 0).then(|| self.predicted_chosen as f64 / self.predicted as f64)
    }

    /// Adds `o`'s counts and times (for totals over layers).
    pub fn add(&mut self, o: &LayerRunStats) {
        self.predicted += o.predicted;
        self.predicted_chosen += o.predicted_chosen;
        self.expert_compute += o.expert_compute;
    }
}

pub struct Session<'m> {
    model: &'m Model,
    n_ctx: usize,
    /// Number of positions already in the KV cache.
    pos: usize,
    /// [n_layer][n_ctx][kv_dim], f32.
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
    /// Residual stream [n_embd].
    x: Vec<f32>,
    /// Normalised input of the current sub-layer [n_embd].
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Concatenated head outputs [q_dim].
    attn: Vec<f32>,
    /// Output of a projection back to [n_embd].
    proj: Vec<f32>,
    /// Attention scores of one head [n_ctx].
    scores: Vec<f32>,
    /// Summation lanes of the attention value sum [head_dim][64].
    lanes: LaneScratch,
    /// FFN hidden [n_ff].
    gate: Vec<f32>,
    up: Vec<f32>,
    /// One expert's output [n_embd].
    expert_out: Vec<f32>,
    /// Router logits, then probabilities [n_expert].
    router: Vec<f32>,
    chosen: Vec<(usize, f32)>,
    /// `chosen` as cache keys [n_expert_used].
    keys: Vec<ExpertKey>,
    /// Prefetch: the next layer's router output [n_expert], its top-k and
    /// their keys [n_expert_used], for layer `predicted_for`.
    pf_router: Vec<f32>,
    pf_chosen: Vec<(usize, f32)>,
    pf_keys: Vec<ExpertKey>,
    /// Predictions beyond the next layer (prefetch depth > 1), not scored.
    pf_far_keys: Vec<ExpertKey>,
    predicted_for: Option<usize>,
    /// Prefetch (`RouterOnResidual`): the residual normalised for the next
    /// layer [n_embd], and its quantized copies.
    pf_xb: Vec<f32>,
    pf_act: ActCache,
    /// [n_layer].
    layer_stats: Vec<LayerRunStats>,
    rope: Vec<f32>,
    logits: Vec<f32>,
    /// Quantized copies of `xb`.
    act: ActCache,
    /// Quantized copies of the FFN hidden vector.
    act_ff: ActCache,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m Model, n_ctx: usize) -> Result<Session<'m>> {
        let c = model.config();
        if n_ctx == 0 {
            return Err(Error::InvalidArgument("context size must be at least 1".into()));
        }
        let kv = c.n_layer * n_ctx * c.kv_dim();
        Ok(Session {
            model,
            n_ctx,
            pos: 0,
            k_cache: vec![0.0; kv],
            v_cache: vec![0.0; kv],
            x: vec![0.0; c.n_embd],
            xb: vec![0.0; c.n_embd],
            q: vec![0.0; c.q_dim()],
            k: vec![0.0; c.kv_dim()],
            v: vec![0.0; c.kv_dim()],
            attn: vec![0.0; c.q_dim()],
            proj: vec![0.0; c.n_embd],
            scores: vec![0.0; n_ctx],
            lanes: LaneScratch::new(c.head_dim),
            gate: vec![0.0; c.n_ff],
            up: vec![0.0; c.n_ff],
            expert_out: vec![0.0; c.n_embd],
            router: vec![0.0; c.n_expert],
            chosen: Vec::with_capacity(c.n_expert_used),
            keys: Vec::with_capacity(c.n_expert_used),
            pf_router: vec![0.0; c.n_expert],
            pf_chosen: Vec::with_capacity(c.n_expert_used),
            pf_keys: Vec::with_capacity(c.n_expert_used),
            pf_far_keys: Vec::with_capacity(c.n_expert_used),
            predicted_for: None,
            pf_xb: vec![0.0; c.n_embd],
            pf_act: ActCache::default(),
            layer_stats: vec![LayerRunStats::default(); c.n_layer],
            rope: vec![0.0; c.head_dim],
            logits: vec![0.0; c.n_vocab],
            act: ActCache::default(),
            act_ff: ActCache::default(),
        })
    }

    /// Positions already processed.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Per-layer prediction and expert-compute figures since the session
    /// started, indexed by layer.
    pub fn layer_stats(&self) -> &[LayerRunStats] {
        &self.layer_stats
    }

    /// Forgets all positions (the KV cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Runs `token` at the next position and returns the logits for the
    /// token after it (a decode step).
    pub fn forward(&mut self, token: u32) -> Result<&[f32]> {
        self.forward_mode(token, Mode::Single)
    }

    /// Runs a prompt: every token in order, calling `on_logits(i, logits)`
    /// after token `i`. Returns the logits after the last token. Arithmetic
    /// follows llama.cpp's batched evaluation when there are 2 or more
    /// tokens (see [`super::attention`]).
    pub fn prefill(&mut self, tokens: &[u32], mut on_logits: impl FnMut(usize, &[f32])) -> Result<&[f32]> {
        let mode = if tokens.len() >= 2 { Mode::Batch } else { Mode::Single };
        let Some((&last, head)) = tokens.split_last() else {
            return Err(Error::InvalidArgument("the prompt is empty (no tokens); give -p TEXT".into()));
        };
        if self.pos + tokens.len() > self.n_ctx {
            return Err(Error::InvalidArgument(format!(
                "{} prompt tokens do not fit: {} of {} positions are free; raise -c/--ctx-size",
                tokens.len(),
                self.n_ctx - self.pos,
                self.n_ctx
            )));
        }
        for (i, &t) in head.iter().enumerate() {
            let logits = self.forward_mode(t, mode)?;
            on_logits(i, logits);
        }
        self.forward_mode(last, mode)?;
        on_logits(head.len(), &self.logits);
        Ok(&self.logits)
    }

    fn forward_mode(&mut self, token: u32, mode: Mode) -> Result<&[f32]> {
        let model = self.model;
        let c = model.config();
        if token as usize >= c.n_vocab {
            return Err(Error::InvalidArgument(format!("token id {token} is outside the vocabulary (0..{})", c.n_vocab)));
        }
        if self.pos >= self.n_ctx {
            return Err(Error::InvalidArgument(format!("the context is full ({} positions); raise -c/--ctx-size", self.n_ctx)));
        }
        let w = model.weights();
        self.predicted_for = None;
        self.embed(token);
        rope_cache(&mut self.rope, self.pos, c.head_dim, c.rope_base);
        for l in 0..c.n_layer {
            self.attention(l, mode);
            rms_norm(&mut self.xb, &self.x, &w.layers[l].ffn_norm, c.rms_eps);
            self.act.invalidate();
            match &w.layers[l].ffn {
                FfnWeights::Dense { gate, up, down } => self.dense_ffn(gate, up, down),
                FfnWeights::Moe { router, .. } => self.moe_ffn(l, router)?,
            }
        }
        rms_norm(&mut self.xb, &self.x, &w.output_norm, c.rms_eps);
        self.act.invalidate();
        self.matvec(&w.output, Input::Xb, Output::Logits);
        self.pos += 1;
        Ok(&self.logits)
    }

    /// The residual stream starts as the token's embedding row.
    fn embed(&mut self, token: u32) {
        let e = &self.model.weights().token_embd;
        let m = self.model.matrix(e);
        moe_quant::dequantize_row(e.qtype, m.row(token as usize), &mut self.x);
    }

    fn attention(&mut self, l: usize, mode: Mode) {
        let model = self.model;
        let c = model.config();
        let lw = &model.weights().layers[l];
        rms_norm(&mut self.xb, &self.x, &lw.attn_norm, c.rms_eps);
        self.act.invalidate();
        self.matvec(&lw.wq, Input::Xb, Output::Q);
        self.matvec(&lw.wk, Input::Xb, Output::K);
        self.matvec(&lw.wv, Input::Xb, Output::V);
        rope_apply(&mut self.q, &self.rope, c.head_dim);
        rope_apply(&mut self.k, &self.rope, c.head_dim);

        let kv_dim = c.kv_dim();
        let layer_base = l * self.n_ctx * kv_dim;
        let at = layer_base + self.pos * kv_dim;
        self.k_cache[at..at + kv_dim].copy_from_slice(&self.k);
        self.v_cache[at..at + kv_dim].copy_from_slice(&self.v);

        let hd = c.head_dim;
        let group = c.n_head / c.n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        let n = self.pos + 1;
        for h in 0..c.n_head {
            let kvh = h / group;
            let q = &self.q[h * hd..(h + 1) * hd];
            let scores = &mut self.scores[..n];
            for (t, s) in scores.iter_mut().enumerate() {
                let k = &self.k_cache[layer_base + t * kv_dim + kvh * hd..][..hd];
                *s = dot_f32(k, q) * scale;
            }
            let layout = ValueLayout { offset: layer_base + kvh * hd, stride: kv_dim };
            weighted_values(scores, &self.v_cache, layout, &mut self.attn[h * hd..(h + 1) * hd], mode, &mut self.lanes);
        }
        self.act_ff.invalidate();
        self.matvec(&lw.wo, Input::Attn, Output::Proj);
        add_into(&mut self.x, &self.proj);
    }

    fn dense_ffn(&mut self, gate: &Weight, up: &Weight, down: &Weight) {
        self.matvec(gate, Input::Xb, Output::Gate);
        self.matvec(up, Input::Xb, Output::Up);
        swiglu(&mut self.gate, &self.up);
        self.act_ff.invalidate();
        self.matvec(down, Input::Gate, Output::Proj);
        add_into(&mut self.x, &self.proj);
    }

    fn moe_ffn(&mut self, l: usize, router: &Weight) -> Result<()> {
        let model = self.model;
        let c = model.config();
        let FfnWeights::Moe { types, .. } = &model.weights().layers[l].ffn else {
            unreachable!("moe_ffn is only called for MoE layers")
        };
        self.matvec(router, Input::Xb, Output::Router);
        route(&mut self.router, c.n_expert_used, &mut self.chosen);
        self.keys.clear();
        self.keys.extend(self.chosen.iter().map(|&(e, _)| ExpertKey { layer: l as u32, expert: e as u32 }));
        self.score_prediction(l);
        // Start every missing chosen expert's read now, in parallel; then
        // hint the next layer's, which queue behind these.
        model.experts().request(&self.keys);
        if model.prefetch() == Prefetch::RouterOnFfnInput {
            self.predict(l + 1, Input::Xb);
            for far in l + 2..=l + model.prefetch_depth() {
                self.predict_far(far);
            }
        }
        self.proj.fill(0.0);
        let mut compute = Duration::ZERO;
        for i in 0..self.chosen.len() {
            let (_, weight) = self.chosen[i];
            let key = self.keys[i];
            let (xb, gate, up, out) = (&self.xb, &mut self.gate, &mut self.up, &mut self.expert_out);
            let (act, act_ff) = (&mut self.act, &mut self.act_ff);
            model.experts().with_expert(key, &mut |b| {
                let t = Instant::now();
                let x = act.get(types.gate.vec_dot_type(), xb);
                expert_matrix(types.gate, c.n_ff, c.n_embd, b.gate).matvec(x, gate);
                let x = act.get(types.up.vec_dot_type(), xb);
                expert_matrix(types.up, c.n_ff, c.n_embd, b.up).matvec(x, up);
                swiglu(gate, up);
                act_ff.invalidate();
                let h = act_ff.get(types.down.vec_dot_type(), gate);
                expert_matrix(types.down, c.n_embd, c.n_ff, b.down).matvec(h, out);
                compute += t.elapsed();
            })?;
            for (p, &o) in self.proj.iter_mut().zip(self.expert_out.iter()) {
                *p += o * weight;
            }
        }
        add_into(&mut self.x, &self.proj);
        self.layer_stats[l].expert_compute += compute;
        if model.prefetch() == Prefetch::RouterOnResidual {
            if let Some(next) = model.weights().layers.get(l + 1) {
                rms_norm(&mut self.pf_xb, &self.x, &next.ffn_norm, c.rms_eps);
                self.pf_act.invalidate();
                self.predict(l + 1, Input::PfXb);
            }
        }
        Ok(())
    }

    /// Predicts the experts of layer `next` (if it is an MoE layer) by
    /// applying its router to `input`, and hints them to the expert source.
    /// Writes only prefetch scratch (`pf_*`), never forward-pass state.
    fn predict(&mut self, next: usize, input: Input) {
        let model = self.model;
        let Some(FfnWeights::Moe { router, .. }) = model.weights().layers.get(next).map(|l| &l.ffn) else {
            return;
        };
        self.matvec(router, input, Output::PfRouter);
        route(&mut self.pf_router, model.config().n_expert_used, &mut self.pf_chosen);
        self.pf_keys.clear();
        self.pf_keys.extend(self.pf_chosen.iter().map(|&(e, _)| ExpertKey { layer: next as u32, expert: e as u32 }));
        model.experts().prefetch(&self.pf_keys);
        self.predicted_for = Some(next);
    }

    /// As [`predict`](Self::predict) with `xb` as input, for a layer beyond
    /// the next one; not scored (`predicted_for` stays the next layer).
    fn predict_far(&mut self, layer: usize) {
        let model = self.model;
        let Some(FfnWeights::Moe { router, .. }) = model.weights().layers.get(layer).map(|l| &l.ffn) else {
            return;
        };
        self.matvec(router, Input::Xb, Output::PfRouter);
        route(&mut self.pf_router, model.config().n_expert_used, &mut self.pf_chosen);
        self.pf_far_keys.clear();
        self.pf_far_keys.extend(self.pf_chosen.iter().map(|&(e, _)| ExpertKey { layer: layer as u32, expert: e as u32 }));
        model.experts().prefetch(&self.pf_far_keys);
    }

    /// Counts how many of the experts predicted for layer `l` its router
    /// chose (`keys`).
    fn score_prediction(&mut self, l: usize) {
        if self.predicted_for != Some(l) {
            return;
        }
        self.predicted_for = None;
        let s = &mut self.layer_stats[l];
        s.predicted += self.pf_keys.len() as u64;
        s.predicted_chosen += self.pf_keys.iter().filter(|k| self.keys.contains(k)).count() as u64;
    }

    /// `out = W · input`, quantizing the input once per activation type.
    fn matvec(&mut self, w: &Weight, input: Input, output: Output) {
        let m = self.model.matrix(w);
        let act_type = w.qtype.vec_dot_type();
        let x = match input {
            Input::Xb => self.act.get(act_type, &self.xb),
            Input::Attn => self.act_ff.get(act_type, &self.attn),
            Input::Gate => self.act_ff.get(act_type, &self.gate),
            Input::PfXb => self.pf_act.get(act_type, &self.pf_xb),
        };
        let out = match output {
            Output::Q => &mut self.q,
            Output::K => &mut self.k,
            Output::V => &mut self.v,
            Output::Proj => &mut self.proj,
            Output::Gate => &mut self.gate,
            Output::Up => &mut self.up,
            Output::Router => &mut self.router,
            Output::Logits => &mut self.logits,
            Output::PfRouter => &mut self.pf_router,
        };
        m.matvec(x, out);
    }
}

#[derive(Clone, Copy)]
enum Input {
    Xb,
    Attn,
    Gate,
    /// Prefetch only: `pf_xb`.
    PfXb,
}

#[derive(Clone, Copy)]
enum Output {
    Q,
    K,
    V,
    Proj,
    Gate,
    Up,
    Router,
    Logits,
    /// Prefetch only: `pf_router`.
    PfRouter,
}

fn expert_matrix(qtype: moe_quant::QType, rows: usize, cols: usize, bytes: &[u8]) -> QMatrix<'_> {
    QMatrix::new(qtype, rows, cols, bytes).expect("expert slab sizes are validated when the model is bound")
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
