//! The generation loop: prompt → logits → sampler → tokens, with timings.
//! The CLI only prints; this module decides what runs.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::model::Session;
use crate::sampler::Sampler;
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
    /// Forward passes run for generated tokens (one fewer than generated
    /// tokens: the last one is sampled but never fed back).
    pub decode_evals: usize,
    /// Time spent in those forward passes and in sampling.
    pub generation_time: Duration,
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

pub struct GenerateOptions {
    /// Tokens to generate at most (the stop at end-of-generation tokens
    /// comes first unless `ignore_eos`).
    pub n_predict: usize,
    pub ignore_eos: bool,
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
    let mut logits = session.prefill_last_observed(prompt, |done| {
        first.get_or_insert_with(|| t0.elapsed());
        on_prompt_batch(done);
    })?;
    stats.prompt_time = t0.elapsed();
    stats.first_token_time = first.unwrap_or(stats.prompt_time);
    // A model file rewritten in place under us would give garbage: stop
    // with an error naming it instead (one fstat per token).
    weights.check_unchanged()?;

    let t1 = Instant::now();
    for i in 0..opts.n_predict {
        let next = sampler.sample(logits);
        sampler.accept(next);
        stats.generated_tokens += 1;
        // The end-of-generation token is reported too (it decodes to nothing).
        let go_on = on_token(next);
        if (!opts.ignore_eos && tokenizer.is_eog(next)) || !go_on || i + 1 == opts.n_predict {
            break;
        }
        logits = session.forward(next)?;
        weights.check_unchanged()?;
        stats.decode_evals += 1;
    }
    stats.generation_time = t1.elapsed();
    Ok(stats)
}
