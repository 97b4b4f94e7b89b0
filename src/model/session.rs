//! One inference session: the KV cache, the activation buffers and the
//! API that feeds tokens (prompts, decode steps, verification passes).
//! Tokens run in micro-batches through [`super::forward`]: a prompt in
//! batches of up to `n_batch` tokens (each weight matrix streamed once per
//! batch), a decode step as a batch of one, which allocates nothing.

use std::time::Duration;

use super::attention::Mode;
use super::batch::Batch;
use super::kv_cache::{KvCache, KvType};
use super::moe_ffn::MoeScratch;
use super::observe::ForwardObserver;
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
pub(super) enum Want<'f> {
    /// Only the last token's, into `Session::logits`.
    Last,
    /// Every token's, each passed to the callback with its index in the prompt.
    All { first: usize, on_logits: &'f mut dyn FnMut(usize, &[f32]) },
}

pub struct Session<'m> {
    pub(super) model: &'m Model,
    pub(super) n_ctx: usize,
    n_batch: usize,
    /// Number of positions already in the KV cache.
    pub(super) pos: usize,
    pub(super) kv: KvCache,
    pub(super) batch: Batch,
    pub(super) moe: MoeScratch,
    /// [n_layer].
    pub(super) layer_stats: Vec<LayerRunStats>,
    /// The last token's logits [n_vocab].
    pub(super) logits: Vec<f32>,
    /// Every token's logits when a prompt wants them all [token][n_vocab].
    pub(super) all_logits: Vec<f32>,
    /// Told about every micro-batch, FFN input and routing, if set.
    pub(super) observer: Option<Box<dyn ForwardObserver + 'm>>,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m Model, n_ctx: usize, kv_type: KvType) -> Result<Session<'m>> {
        Session::with_ring_slack(model, n_ctx, kv_type, super::kv_cache::RING_SLACK)
    }

    /// [`Session::new`] whose sliding-window layers keep rings of their
    /// window plus `slack` positions (tests wrap small rings this way;
    /// passes are cut to fit, see [`Session::set_batch_size`]).
    pub fn with_ring_slack(model: &'m Model, n_ctx: usize, kv_type: KvType, slack: usize) -> Result<Session<'m>> {
        let c = model.config();
        if n_ctx == 0 {
            return Err(Error::InvalidArgument("context size must be at least 1".into()));
        }
        if n_ctx as u64 > crate::config::MAX_CONTEXT {
            return Err(Error::InvalidArgument(format!("a context of {n_ctx} positions is more than {} (llama.cpp's contexts are 32-bit too); lower -c/--ctx-size", crate::config::MAX_CONTEXT)));
        }
        let mut batch = Batch::default();
        batch.resize(c, 1);
        let mut s = Session {
            model,
            n_ctx,
            n_batch: DEFAULT_BATCH,
            pos: 0,
            kv: KvCache::with_ring_slack(c, n_ctx, kv_type, slack)?,
            batch,
            moe: MoeScratch::default(),
            layer_stats: vec![LayerRunStats::default(); c.n_layer],
            logits: vec![0.0; c.n_vocab],
            all_logits: Vec::new(),
            observer: None,
        };
        s.set_batch_size(DEFAULT_BATCH)?;
        Ok(s)
    }

    /// The KV cache's bytes (a sliding-window layer's ring does not grow
    /// with the context).
    pub fn kv_bytes(&self) -> u64 {
        self.kv.bytes()
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
    /// A sliding-window layer's ring takes at most its slack
    /// ([`super::kv_cache::RING_SLACK`]) tokens a pass: a larger batch is
    /// cut to that (a token's logits do not depend on how its prompt is
    /// split).
    pub fn set_batch_size(&mut self, n_batch: usize) -> Result<()> {
        if n_batch == 0 {
            return Err(Error::InvalidArgument("the batch size must be at least 1".into()));
        }
        self.n_batch = n_batch.min(self.kv.max_pass()).max(1);
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
        self.kv.rewound(0);
    }

    /// The logits after the last token run.
    pub fn last_logits(&self) -> &[f32] {
        &self.logits
    }

    /// Forgets the positions from `pos` on, keeping `0..pos`: the next
    /// token runs at `pos` (a chat keeps the conversation's common prefix).
    /// Returns the positions kept: `pos`, or 0 where a sliding-window
    /// layer's ring no longer holds the window before `pos` (it was
    /// overwritten since; the caller runs the tokens again from 0, as
    /// llama.cpp does with its SWA cache).
    pub fn truncate(&mut self, pos: usize) -> usize {
        let pos = self.pos.min(pos);
        let kept = if self.kv.can_rewind_to(pos) { pos } else { 0 };
        self.pos = kept;
        self.kv.rewound(kept);
        kept
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
        self.prefill_last_observed(tokens, |_| true)
    }

    /// [`Self::prefill_last`], calling `on_batch(range)` after each
    /// micro-batch with the prompt positions it covered; when it returns
    /// `false` the prompt stops there (the logits are then the last
    /// processed token's, and [`Self::pos`] says how far it got).
    pub fn prefill_last_observed(&mut self, tokens: &[u32], mut on_batch: impl FnMut(std::ops::Range<usize>) -> bool) -> Result<&[f32]> {
        self.check_prompt(tokens)?;
        for (i, chunk) in tokens.chunks(self.n_batch).enumerate() {
            self.run_batch(chunk, &mut Want::Last)?;
            let first = i * self.n_batch;
            if !on_batch(first..first + chunk.len()) {
                break;
            }
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

    pub(super) fn check_prompt(&self, tokens: &[u32]) -> Result<()> {
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
}
