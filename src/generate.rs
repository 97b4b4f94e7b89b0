//! The generation loop: prompt → logits → sampler → tokens, with timings.
//! The CLI only prints; this module decides what runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::model::Session;
use crate::sampler::Sampler;
use crate::speculative::{DraftOptions, DraftStats, Speculator};
use crate::tokenizer::Tokenizer;

/// Timings and counts of one generation, as llama.cpp reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub prompt_time: Duration,
    /// From the start of the prompt until its first token has been
    /// processed (the end of the first micro-batch).
    pub first_token_time: Duration,
    pub generated_tokens: usize,
    /// Generated tokens fed back through the model (one fewer than
    /// generated tokens: the last one is sampled but never fed back). With
    /// drafting, several are fed per forward pass (`draft.passes`).
    pub decode_evals: usize,
    /// Time spent in those forward passes and in sampling.
    pub generation_time: Duration,
    /// Drafting's counts (all passes single-token when it is off).
    pub draft: DraftStats,
    /// Whether [`GenerateOptions::interrupt`] stopped it (then
    /// `prompt_tokens` counts the prompt tokens processed).
    pub interrupted: bool,
}

impl GenerationStats {
    pub fn prompt_tok_per_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_time)
    }
    pub fn generation_tok_per_s(&self) -> f64 {
        rate(self.decode_evals, self.generation_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// Tokens to generate at most (the stop at end-of-generation tokens
    /// comes first unless `ignore_eos`).
    pub n_predict: usize,
    pub ignore_eos: bool,
    /// Speculative decoding (off by default); the output is the same.
    pub draft: DraftOptions,
    /// Stops the generation once set (by a Ctrl-C handler): after the
    /// prompt micro-batch or the token being computed.
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// Feeds `prompt` to `session`, then samples up to `n_predict` tokens,
/// calling `on_token` with each new id. Returns when done, after an
/// end-of-generation token, or when `on_token` returns `false`.
pub fn generate(
    session: &mut Session<'_>,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_token: impl FnMut(u32) -> bool,
) -> Result<GenerationStats> {
    generate_observed(session, tokenizer, sampler, prompt, opts, |_| {}, on_token)
}

/// [`generate`], also calling `on_prompt_batch(range)` right after each
/// prompt micro-batch (the prompt tokens `range`) has run: once per token
/// with a batch size of 1.
pub fn generate_observed(
    session: &mut Session<'_>,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_prompt_batch: impl FnMut(std::ops::Range<usize>),
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<GenerationStats> {
    let mut stats = GenerationStats { prompt_tokens: prompt.len(), ..Default::default() };
    let t0 = Instant::now();
    for &t in prompt {
        sampler.accept(t);
    }
    let weights = session.model().file().file();
    let mut first = None;
    let interrupted = || opts.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
    let mut processed = 0;
    let logits = session.prefill_last_observed(prompt, |done| {
        first.get_or_insert_with(|| t0.elapsed());
        processed = done.end;
        on_prompt_batch(done);
        !interrupted()
    })?;
    stats.prompt_time = t0.elapsed();
    stats.first_token_time = first.unwrap_or(stats.prompt_time);
    if interrupted() {
        stats.prompt_tokens = processed;
        stats.interrupted = true;
        return Ok(stats);
    }
    // A model file rewritten in place under us would give garbage: stop
    // with an error naming it instead (one fstat per pass).
    weights.check_unchanged()?;

    let t1 = Instant::now();
    let mut spec = Speculator::new(opts.draft);
    let is_stop = |t: u32| !opts.ignore_eos && tokenizer.is_eog(t);
    if opts.n_predict > 0 {
        let first = sampler.sample(logits);
        sampler.accept(first);
        stats.generated_tokens = 1;
        // The end-of-generation token is reported too (it decodes to nothing).
        let mut go_on = on_token(first) && !is_stop(first);
        // The prompt and every token taken; the last is not yet run.
        let mut context = prompt.to_vec();
        context.push(first);
        while go_on && stats.generated_tokens < opts.n_predict {
            if interrupted() {
                stats.interrupted = true;
                break;
            }
            let limit = opts.n_predict - stats.generated_tokens;
            let pass = spec.advance(session, sampler, &context, limit, &mut |t| on_token(t) && !is_stop(t))?;
            // A model file rewritten in place under us would give garbage.
            weights.check_unchanged()?;
            context.extend_from_slice(&pass.tokens);
            stats.generated_tokens += pass.tokens.len();
            stats.decode_evals += pass.tokens.len();
            go_on = !pass.stopped;
        }
    }
    stats.generation_time = t1.elapsed();
    stats.draft = *spec.stats();
    Ok(stats)
}
