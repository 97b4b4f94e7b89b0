//! Speculative decoding with drafts that cost nothing to make: prompt
//! lookup ([`NgramDrafter`]) proposes the next k tokens, and one forward
//! pass verifies the fed token plus all k ([`Session::forward_steps`]).
//! In an MoE the pass groups its tokens by expert, so an expert that
//! several of them route to is read from disk once for all of them: when
//! drafts are accepted, fewer bytes are read per generated token.
//!
//! Lossless, token for token, greedy or sampled: the verification pass
//! computes each token's logits with a decode step's arithmetic, bit for
//! bit, and each position is sampled exactly as without drafting, with the
//! same random draw ([`accepts`]). The KV cache is rolled back past the
//! first rejected draft.

mod adaptive;
mod ngram;

use std::time::Instant;

pub use adaptive::{AdaptiveK, PROBE_EVERY};
pub use ngram::NgramDrafter;

use crate::error::Result;
use crate::model::Session;
use crate::sampler::Sampler;

#[cfg(test)]
mod tests;

/// Speculative sampling's acceptance rule for a drafter that proposes one
/// token `draft` with certainty (q = δ_draft): accept with probability
/// min(1, p(draft) / q(draft)) = p(draft), else draw from the residual
/// max(0, p − q), normalised: p without the draft. Realised with one
/// uniform draw u (the one the sampler uses anyway): `token`, the
/// sampler's pick for u, is the draft with probability p(draft), which
/// accepts it; otherwise `token` is distributed as p given token ≠ draft,
/// which is the residual. So the accepted-or-corrected token is the very
/// token the sampler would pick without drafting, and a seeded run gives
/// the same text with and without `--draft`.
pub fn accepts(draft: Option<u32>, token: u32) -> bool {
    draft == Some(token)
}

/// `--draft N --draft-ngram MIN..MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftOptions {
    /// Most tokens drafted per pass; 0 turns drafting off.
    pub max: usize,
    pub ngram: NgramDrafter,
    /// Pick k per pass from measured acceptance and cost (else always `max`).
    pub adaptive: bool,
}

impl Default for DraftOptions {
    fn default() -> Self {
        DraftOptions { max: 0, ngram: NgramDrafter::default(), adaptive: true }
    }
}

/// What drafting did over a generation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DraftStats {
    /// Forward passes that fed generated tokens.
    pub passes: usize,
    /// Of those, passes that verified at least one draft.
    pub draft_passes: usize,
    pub proposed: usize,
    pub accepted: usize,
    /// Tokens these passes produced (sampled, drafts included).
    pub tokens: usize,
    /// Expert bytes read during the passes, and during single-token passes
    /// alone (the cost of a token without drafting, measured in the same run).
    pub bytes_read: u64,
    pub single_passes: usize,
    pub single_bytes_read: u64,
}

impl DraftStats {
    pub fn acceptance(&self) -> Option<f64> {
        (self.proposed > 0).then(|| self.accepted as f64 / self.proposed as f64)
    }
    pub fn tokens_per_pass(&self) -> Option<f64> {
        (self.passes > 0).then(|| self.tokens as f64 / self.passes as f64)
    }
    pub fn bytes_per_token(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.bytes_read as f64 / self.tokens as f64)
    }
    /// Bytes a single-token pass read on average in this run.
    pub fn bytes_per_single_pass(&self) -> Option<f64> {
        (self.single_passes > 0).then(|| self.single_bytes_read as f64 / self.single_passes as f64)
    }
    /// One line for `--stats` and `/stats`.
    pub fn summary(&self) -> String {
        use crate::offload_setup::human;
        let mut s = format!(
            "{} passes for {} tokens ({:.2} per pass); {} passes verified {} drafted tokens, {} accepted ({:.1}%)",
            self.passes,
            self.tokens,
            self.tokens_per_pass().unwrap_or(0.0),
            self.draft_passes,
            self.proposed,
            self.accepted,
            100.0 * self.acceptance().unwrap_or(0.0)
        );
        if let Some(per_token) = self.bytes_per_token().filter(|_| self.bytes_read > 0) {
            s += &format!("; expert reads {} per generated token", human(per_token as u64));
            if let Some(single) = self.bytes_per_single_pass().filter(|&b| b > 0.0) {
                s += &format!(
                    " vs {} per single-token pass ({:.0}% {})",
                    human(single as u64),
                    100.0 * (1.0 - per_token / single).abs(),
                    if per_token <= single { "fewer" } else { "more" }
                );
            }
        }
        s
    }

    /// The counts since `before` (an earlier copy of these).
    pub fn since(&self, before: &DraftStats) -> DraftStats {
        DraftStats {
            passes: self.passes - before.passes,
            draft_passes: self.draft_passes - before.draft_passes,
            proposed: self.proposed - before.proposed,
            accepted: self.accepted - before.accepted,
            tokens: self.tokens - before.tokens,
            bytes_read: self.bytes_read - before.bytes_read,
            single_passes: self.single_passes - before.single_passes,
            single_bytes_read: self.single_bytes_read - before.single_bytes_read,
        }
    }

    /// `DraftStats` of two generations together.
    pub fn add(&mut self, o: &DraftStats) {
        self.passes += o.passes;
        self.draft_passes += o.draft_passes;
        self.proposed += o.proposed;
        self.accepted += o.accepted;
        self.tokens += o.tokens;
        self.bytes_read += o.bytes_read;
        self.single_passes += o.single_passes;
        self.single_bytes_read += o.single_bytes_read;
    }
}

/// What a pass produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The tokens handed to `emit`, in order (at least one).
    pub tokens: Vec<u32>,
    /// `emit` returned false for the last of them.
    pub stopped: bool,
}

/// Runs decode passes, drafting when [`DraftOptions::max`] > 0.
pub struct Speculator {
    opts: DraftOptions,
    adaptive: AdaptiveK,
    stats: DraftStats,
    /// The verification pass's logits, [token][n_vocab].
    logits: Vec<f32>,
}

impl Speculator {
    pub fn new(opts: DraftOptions) -> Speculator {
        Speculator { opts, adaptive: AdaptiveK::new(opts.max), stats: DraftStats::default(), logits: Vec::new() }
    }

    pub fn stats(&self) -> &DraftStats {
        &self.stats
    }

    /// Feeds `pending`, the last token of `context` (taken, not yet in the
    /// KV cache, which holds the rest of `context` or more), together with
    /// up to `limit - 1` tokens drafted from `context`, then samples
    /// position by position and hands each token to `emit`, up to `limit`
    /// tokens: the drafts that stand, then the sampler's own token where the
    /// first draft fell (or after the last). `emit` returning false makes
    /// that token the last.
    ///
    /// Afterwards the KV cache holds what it held, `pending`, and every
    /// token returned but the last (the next `pending`), as after one
    /// decode step per token. Every returned token but a refused last one
    /// has been recorded in the sampler (`Sampler::accept`).
    pub fn advance(
        &mut self,
        session: &mut Session<'_>,
        sampler: &mut Sampler,
        context: &[u32],
        limit: usize,
        emit: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Pass> {
        let pending = *context.last().expect("the context ends with the pending token");
        let start = session.pos();
        let room = session.n_ctx().saturating_sub(start + 1);
        let k = if self.opts.adaptive { self.adaptive.choose() } else { self.opts.max };
        let k = k.min(limit.saturating_sub(1)).min(room);
        let drafts = if k > 0 { self.opts.ngram.propose(context, k) } else { Vec::new() };
        let mut batch = Vec::with_capacity(drafts.len() + 1);
        batch.push(pending);
        batch.extend_from_slice(&drafts);
        let experts = session.model().experts();
        let before = experts.stats().map(|s| s.total().bytes_read);
        let t0 = Instant::now();
        let n_vocab = session.model().config().n_vocab;
        self.logits.clear();
        self.logits.extend_from_slice(session.forward_steps(&batch)?);
        let secs = t0.elapsed().as_secs_f64();
        let bytes = match (before, experts.stats()) {
            (Some(b), Some(a)) => a.total().bytes_read.saturating_sub(b),
            _ => 0,
        };

        let mut pass = Pass { tokens: Vec::new(), stopped: false };
        let mut accepted = 0;
        for (i, logits) in self.logits.chunks_exact(n_vocab).enumerate() {
            let draft = drafts.get(i).copied();
            let t = sampler.sample(logits);
            pass.tokens.push(t);
            if !emit(t) {
                pass.stopped = true;
                break;
            }
            sampler.accept(t);
            if !accepts(draft, t) {
                break;
            }
            accepted += 1;
            if pass.tokens.len() == limit {
                break;
            }
        }
        // Keep pending and the returned tokens fed in this pass but the last.
        // Never past a ring's reach: a pass is at most RING_SLACK tokens.
        let kept = session.truncate(start + pass.tokens.len());
        debug_assert_eq!(kept, start + pass.tokens.len(), "a rejected draft rewinds within every ring");

        self.adaptive.record(batch.len(), drafts.len(), accepted, secs);
        let s = &mut self.stats;
        s.passes += 1;
        s.tokens += pass.tokens.len();
        s.bytes_read += bytes;
        if drafts.is_empty() {
            s.single_passes += 1;
            s.single_bytes_read += bytes;
        } else {
            s.draft_passes += 1;
            s.proposed += drafts.len();
            s.accepted += accepted;
        }
        Ok(pass)
    }
}
