//! One inference session: the KV cache and the activation buffers. Tokens
//! run in micro-batches: a prompt in batches of up to `n_batch` tokens
//! (each weight matrix streamed once per batch), a decode step as a batch
//! of one, which allocates nothing.

use std::time::Duration;

use super::attention::{attend_head, Mode};
use super::batch::{row, row_mut, Batch};
use super::ffn::MoeScratch;
use super::flash_attention::attend_group_f16;
use super::kv_cache::{KvCache, KvData, KvType};
use super::observe::ForwardObserver;
use super::ops::{rms_norm, rope_apply, rope_cache};
use super::weights::FfnWeights;
use super::Model;
use crate::error::{Error, Result};

/// How the forward pass predicts the experts of the next layer, to hint
/// them to the expert source (`ExpertSource::prefetch`) while the current
/// layer computes. A prediction only warms a cache: results never depend on
/// it, and it never touches a buffer the forward pass reads. Decode steps
/// only: a prompt batch requests all its experts at once.
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

/// llama.cpp's default micro-batch (`-ub 512`).
pub const DEFAULT_BATCH: usize = 512;

/// Which logits a micro-batch computes.
enum Want<'f> {
    /// Only the last token's, into `Session::logits`.
    Last,
    /// Every token's, each passed to the callback with its index in the prompt.
    All { first: usize, on_logits: &'f mut dyn FnMut(usize, &[f32]) },
}

pub struct Session<'m> {
    pub(super) model: &'m Model,
    n_ctx: usize,
    n_batch: usize,
    /// Number of positions already in the KV cache.
    pos: usize,
    kv: KvCache,
    pub(super) batch: Batch,
    pub(super) moe: MoeScratch,
    /// [n_layer].
    pub(super) layer_stats: Vec<LayerRunStats>,
    /// The last token's logits [n_vocab].
    logits: Vec<f32>,
    /// Every token's logits when a prompt wants them all [token][n_vocab].
    all_logits: Vec<f32>,
    /// Told about every micro-batch, FFN input and routing, if set.
    pub(super) observer: Option<Box<dyn ForwardObserver + 'm>>,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m Model, n_ctx: usize, kv_type: KvType) -> Result<Session<'m>> {
        let c = model.config();
        if n_ctx == 0 {
            return Err(Error::InvalidArgument("context size must be at least 1".into()));
        }
        let mut batch = Batch::default();
        batch.resize(c, 1);
        Ok(Session {
            model,
            n_ctx,
            n_batch: DEFAULT_BATCH,
            pos: 0,
            kv: KvCache::new(c, n_ctx, kv_type),
            batch,
            moe: MoeScratch::default(),
            layer_stats: vec![LayerRunStats::default(); c.n_layer],
            logits: vec![0.0; c.n_vocab],
            all_logits: Vec::new(),
            observer: None,
        })
    }

    /// Positions already processed.
    /// The model this session runs.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Sets the largest micro-batch a prompt is split into (llama.cpp's
    /// `-ub`); 1 feeds a prompt one token at a time, as decode steps.
    pub fn set_batch_size(&mut self, n_batch: usize) -> Result<()> {
        if n_batch == 0 {
            return Err(Error::InvalidArgument("the batch size must be at least 1".into()));
        }
        self.n_batch = n_batch;
        Ok(())
    }

    /// Per-layer prediction and expert-compute figures since the session
    /// started, indexed by layer.
    pub fn layer_stats(&self) -> &[LayerRunStats] {
        &self.layer_stats
    }

    /// Installs (or, with `None`, removes) an observer of the forward pass;
    /// returns the previous one.
    pub fn set_observer(&mut self, observer: Option<Box<dyn ForwardObserver + 'm>>) -> Option<Box<dyn ForwardObserver + 'm>> {
        std::mem::replace(&mut self.observer, observer)
    }

    /// Forgets all positions (the KV cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// The logits after the last token run.
    pub fn last_logits(&self) -> &[f32] {
        &self.logits
    }

    /// Forgets the positions from `pos` on, keeping `0..pos`: the next
    /// token runs at `pos` (a chat keeps the conversation's common prefix).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Runs `token` at the next position and returns the logits for the
    /// token after it (a decode step).
    pub fn forward(&mut self, token: u32) -> Result<&[f32]> {
        self.prefill_last(&[token])
    }

    /// Runs a prompt and returns the logits after its last token, computing
    /// no others. Arithmetic follows llama.cpp's: a micro-batch of two or
    /// more tokens is evaluated as its batched graph is (see
    /// [`super::attention`]), a batch of one as a decode step.
    pub fn prefill_last(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.prefill_last_observed(tokens, |_| {})
    }

    /// [`Self::prefill_last`], calling `on_batch(range)` after each
    /// micro-batch with the prompt positions it covered.
    pub fn prefill_last_observed(&mut self, tokens: &[u32], mut on_batch: impl FnMut(std::ops::Range<usize>)) -> Result<&[f32]> {
        self.check_prompt(tokens)?;
        for (i, chunk) in tokens.chunks(self.n_batch).enumerate() {
            self.run_batch(chunk, &mut Want::Last)?;
            let first = i * self.n_batch;
            on_batch(first..first + chunk.len());
        }
        Ok(&self.logits)
    }

    /// Runs `tokens` at the next positions in one pass (experts shared by
    /// several tokens are fetched once), computing each token's logits with
    /// the arithmetic of a decode step: bit for bit what `forward` on each
    /// in turn would give. Returns every token's logits, [token][n_vocab]:
    /// speculative decoding's verification pass.
    pub fn forward_steps(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.check_prompt(tokens)?;
        self.run_batch_as(tokens, &mut Want::All { first: 0, on_logits: &mut |_, _| {} }, Mode::Single)?;
        let n_vocab = self.model.config().n_vocab;
        Ok(if tokens.len() == 1 { &self.logits[..] } else { &self.all_logits[..tokens.len() * n_vocab] })
    }

    /// Runs a prompt, calling `on_logits(i, logits)` with the logits after
    /// every token `i`. Returns the logits after the last token.
    pub fn prefill(&mut self, tokens: &[u32], mut on_logits: impl FnMut(usize, &[f32])) -> Result<&[f32]> {
        self.check_prompt(tokens)?;
        for (i, chunk) in tokens.chunks(self.n_batch).enumerate() {
            let first = i * self.n_batch;
            self.run_batch(chunk, &mut Want::All { first, on_logits: &mut on_logits })?;
        }
        Ok(&self.logits)
    }

    fn check_prompt(&self, tokens: &[u32]) -> Result<()> {
        let n_vocab = self.model.config().n_vocab;
        if tokens.is_empty() {
            return Err(Error::InvalidArgument("the prompt is empty (no tokens); give -p TEXT".into()));
        }
        if self.pos + tokens.len() > self.n_ctx {
            return Err(Error::InvalidArgument(match self.pos {
                p if p == self.n_ctx => format!("the context is full ({} positions); raise -c/--ctx-size", self.n_ctx),
                _ => format!(
                    "{} tokens do not fit: {} of {} positions are free; raise -c/--ctx-size",
                    tokens.len(),
                    self.n_ctx - self.pos,
                    self.n_ctx
                ),
            }));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::InvalidArgument(format!("token id {t} is outside the vocabulary (0..{n_vocab})")));
        }
        Ok(())
    }

    /// Runs one micro-batch through every layer, with llama.cpp's prompt
    /// arithmetic for two or more tokens, a decode step's for one.
    fn run_batch(&mut self, tokens: &[u32], want: &mut Want<'_>) -> Result<()> {
        self.run_batch_as(tokens, want, if tokens.len() >= 2 { Mode::Batch } else { Mode::Single })
    }

    /// [`Self::run_batch`] with attention in the given arithmetic (the only
    /// step whose float order depends on the batch; every other one treats
    /// each token alone).
    fn run_batch_as(&mut self, tokens: &[u32], want: &mut Want<'_>, mode: Mode) -> Result<()> {
        let model = self.model;
        let c = model.config();
        let w = model.weights();
        let n = tokens.len();
        self.batch.resize(c, n);
        self.moe.reset_prediction();
        if let Some(o) = &mut self.observer {
            o.batch_start(self.pos, n);
        }
        let e = &w.token_embd;
        for (j, &t) in tokens.iter().enumerate() {
            moe_quant::dequantize_row(e.qtype, model.matrix(e).row(t as usize), row_mut(&mut self.batch.x, c.n_embd, j));
            rope_cache(row_mut(&mut self.batch.rope, c.head_dim, j), self.pos + j, c.head_dim, c.rope_base);
        }
        for l in 0..c.n_layer {
            self.attention(l, mode);
            if l + 1 == c.n_layer && matches!(want, Want::Last) && self.observer.is_none() {
                // Only the last token's row feeds the logits asked for: its
                // FFN is the rest of the pass (as llama.cpp prunes with
                // inp_out_ids). Every token's K and V are stored already.
                // An observer sees every token's routing, so it keeps them.
                self.batch.keep_last(c.n_embd);
            }
            self.norm_rows(&w.layers[l].ffn_norm);
            if let Some(o) = &mut self.observer {
                o.ffn_input(l, &self.batch.xb[..n * c.n_embd], c.n_embd);
            }
            match &w.layers[l].ffn {
                FfnWeights::Dense { gate, up, down } => self.dense_ffn(gate, up, down),
                FfnWeights::Moe { router, .. } => self.moe_ffn(l, router)?,
            }
        }
        self.output(want);
        self.pos += n;
        if let Some(o) = &mut self.observer {
            o.batch_end();
        }
        Ok(())
    }

    /// `xb = rms_norm(x) · weight` for every token of the batch.
    fn norm_rows(&mut self, weight: &[f32]) {
        let c = self.model.config();
        let b = &mut self.batch;
        for j in 0..b.n {
            rms_norm(row_mut(&mut b.xb, c.n_embd, j), row(&b.x, c.n_embd, j), weight, c.rms_eps);
        }
        b.act.invalidate();
    }

    fn attention(&mut self, l: usize, mode: Mode) {
        let model = self.model;
        let c = model.config();
        let lw = &model.weights().layers[l];
        self.norm_rows(&lw.attn_norm);
        let n = self.batch.n;
        let b = &mut self.batch;
        for (wt, out, rows) in [(&lw.wq, &mut b.q, c.q_dim()), (&lw.wk, &mut b.k, c.kv_dim()), (&lw.wv, &mut b.v, c.kv_dim())] {
            let x = b.act.get(wt.qtype.vec_dot_type(), &b.xb[..n * c.n_embd], c.n_embd);
            model.matrix(wt).matmul(x, n, &mut out[..n * rows]);
        }
        for j in 0..n {
            let rope = row(&b.rope, c.head_dim, j);
            rope_apply(row_mut(&mut b.q, c.q_dim(), j), rope, c.head_dim);
            rope_apply(row_mut(&mut b.k, c.kv_dim(), j), rope, c.head_dim);
            self.kv.store(l, self.pos + j, row(&b.k, c.kv_dim(), j), row(&b.v, c.kv_dim(), j));
        }
        // One chunk per (token, KV head) in a batch, so that the query heads
        // sharing a KV head share its conversions (f16 cache); per (token,
        // head) for a single token, to keep both threads busy. Token j sees
        // positions 0..=pos + j. Results are the same either way.
        let (hd, n_head, group) = (c.head_dim, c.n_head, c.n_head / c.n_head_kv);
        let per_chunk = if n >= 2 { group } else { 1 };
        let chunks_per_token = n_head / per_chunk;
        let (kv, q, pos, n_ctx) = (&self.kv, &b.q, self.pos, self.n_ctx);
        let heads = |ch: usize, out: &mut [f32]| {
            let (j, h0) = (ch / chunks_per_token, ch % chunks_per_token * per_chunk);
            let qs = &row(q, c.q_dim(), j)[h0 * hd..(h0 + per_chunk) * hd];
            let layout = kv.layout(l, h0 / group, hd);
            match &kv.data {
                KvData::F32 { k, v } => {
                    for (qh, oh) in qs.chunks_exact(hd).zip(out.chunks_exact_mut(hd)) {
                        attend_head(qh, k, v, layout, pos + j + 1, n_ctx, oh, mode);
                    }
                }
                KvData::F16 { k, v } => attend_group_f16(qs, k, v, layout, hd, pos + j + 1, n_ctx, out),
            }
        };
        let work = n * n_head * (pos + n) * hd;
        moe_quant::pool::for_work(work >= PARALLEL_ATTENTION_MIN).for_each_slice_mut(&mut b.attn[..n * c.q_dim()], per_chunk * hd, &heads);
        b.act_ff.invalidate();
        let x = b.act_ff.get(lw.wo.qtype.vec_dot_type(), &b.attn[..n * c.q_dim()], c.q_dim());
        model.matrix(&lw.wo).matmul(x, n, &mut b.proj[..n * c.n_embd]);
        add_into(&mut b.x[..n * c.n_embd], &b.proj[..n * c.n_embd]);
    }

    /// The final norm and the output matrix, for the tokens `want` asks for.
    fn output(&mut self, want: &mut Want<'_>) {
        let model = self.model;
        let c = model.config();
        let w = model.weights();
        let n = self.batch.n;
        let first = match want {
            Want::Last => n - 1,
            Want::All { .. } => 0,
        };
        let b = &mut self.batch;
        for j in first..n {
            rms_norm(row_mut(&mut b.xb, c.n_embd, j), row(&b.x, c.n_embd, j), &w.output_norm, c.rms_eps);
        }
        b.act.invalidate();
        let rows = n - first;
        let x = b.act.get(w.output.qtype.vec_dot_type(), &b.xb[first * c.n_embd..n * c.n_embd], c.n_embd);
        let out = if rows == 1 {
            &mut self.logits[..]
        } else {
            self.all_logits.resize(rows * c.n_vocab, 0.0);
            &mut self.all_logits[..]
        };
        model.matrix(&w.output).matmul(x, rows, out);
        if rows > 1 {
            self.logits.copy_from_slice(row(&self.all_logits, c.n_vocab, rows - 1));
        }
        if let Want::All { first: at, on_logits } = want {
            for j in 0..rows {
                let l = if rows == 1 { &self.logits[..] } else { row(&self.all_logits, c.n_vocab, j) };
                on_logits(*at + j, l);
            }
        }
    }
}

/// Below this many multiply-adds (tokens × heads × positions × head_dim)
/// attention runs on the calling thread.
const PARALLEL_ATTENTION_MIN: usize = 1 << 15;

pub(super) fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
