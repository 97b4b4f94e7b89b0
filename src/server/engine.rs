//! The engine thread of `moe serve`: it owns the model and `--parallel`
//! slots (a session with its own KV cache each), takes jobs from a
//! channel, and streams each job's text back on the job's own channel.
//!
//! A job goes to the free slot whose KV cache holds the longest prefix of
//! its prompt (a follow-up turn of a conversation evaluates only its new
//! tokens, as `moe chat` does). Active slots take decode steps in turn, so
//! every request gets exactly the tokens it would get alone: each slot's
//! KV cache and sampler are its own. A job whose client went away (its
//! channel closed) is cancelled at its next step and its slot freed.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::{Receiver, TryRecvError};
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::{LayerCache, Metrics};
use crate::chat::common_prefix;
use crate::error::Result;
use crate::model::{decode_together, KvType, Model, Session};
use crate::sampler::{Sampler, SamplerParams};
use crate::speculative::{DraftOptions, Speculator};
use crate::stop::StopStrings;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// One request for the engine: a prompt in tokens and how to continue it.
pub struct Job {
    pub prompt: Vec<u32>,
    /// Most tokens to generate (already capped to the slot's context).
    pub max_tokens: usize,
    pub sampling: SamplerParams,
    /// Stop strings: the text ends before the first one.
    pub stop: Vec<String>,
    /// Tokens that end the text (end of turn, end of generation); none for
    /// `ignore_eos`.
    pub stop_tokens: Vec<u32>,
    pub events: UnboundedSender<Event>,
}

/// What a job sends back, in order: text pieces, then `Done` (or `Failed`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Text(String),
    Done(Usage),
    Failed(String),
}

/// Why generation ended, as OpenAI's `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-turn token or a stop string.
    Stop,
    /// `max_tokens`, or the end of the slot's context.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// A finished job's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Of the prompt, the tokens the slot's KV cache already held.
    pub reused_tokens: usize,
    pub completion_tokens: usize,
    pub finish: Finish,
    /// Generation time (after the prompt), seconds.
    pub generation_s: f64,
    pub prompt_s: f64,
}

/// What the engine needs, made on its thread by the loader.
pub struct Loaded {
    pub model: Model,
    pub n_ctx_per_slot: usize,
    pub kv_type: KvType,
    pub n_batch: usize,
    /// Drafting (`--draft`), for a greedy request decoding alone.
    pub draft: DraftOptions,
}

/// A slot: a session and the tokens its KV cache holds.
struct Slot<'m, 't> {
    session: Session<'m>,
    kv_tokens: Vec<u32>,
    job: Option<Active<'t>>,
}

impl Slot<'_, '_> {
    /// Ends the slot's job with `error`. The session's state is unknown
    /// after a failed pass: its next job evaluates its whole prompt.
    fn fail(&mut self, error: &crate::error::Error) {
        self.session.truncate(0);
        self.kv_tokens.clear();
        if let Some(a) = self.job.take() {
            let _ = a.job.events.send(Event::Failed(error.to_string()));
        }
    }
}

/// A job being generated in a slot.
struct Active<'t> {
    job: Job,
    sampler: Sampler,
    stop_strings: StopStrings,
    /// Taken, not yet run through the model.
    pending: u32,
    /// `pending` is in the text already (a drafting pass emitted it).
    emitted: bool,
    /// Prompt tokens in the KV cache; generation starts when it is the
    /// whole prompt.
    prefilled: usize,
    generated: usize,
    reused: usize,
    prompt_s: f64,
    started: Instant,
    decoder: StreamDecoder<'t>,
}

/// Runs the engine until the job channel closes: takes jobs, generates,
/// streams. `tokenizer` decodes the generated tokens.
pub fn run(loaded: Loaded, tokenizer: Arc<Tokenizer>, parallel: usize, jobs: Receiver<Job>, metrics: Arc<Metrics>) -> Result<()> {
    let Loaded { model, n_ctx_per_slot, kv_type, n_batch, draft } = loaded;
    let mut spec = (draft.max > 0).then(|| Speculator::new(draft));
    let mut slots = Vec::with_capacity(parallel);
    for _ in 0..parallel {
        let mut session = model.session_with_kv(n_ctx_per_slot, kv_type)?;
        session.set_batch_size(n_batch)?;
        slots.push(Slot { session, kv_tokens: Vec::new(), job: None });
    }
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut open = true;
    while open || !waiting.is_empty() || slots.iter().any(|s| s.job.is_some()) {
        // New jobs: block only when there is nothing else to do.
        let idle = waiting.is_empty() && slots.iter().all(|s| s.job.is_none());
        if open && idle {
            match jobs.recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => open = false,
            }
        }
        while open {
            match jobs.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        // Waiting jobs to free slots, each to the slot that holds most of its prompt.
        while let Some(job) = waiting.front() {
            if job.events.is_closed() {
                waiting.pop_front();
                metrics.queued.fetch_sub(1, Ordering::Relaxed);
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let best = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.job.is_none())
                .max_by_key(|(_, s)| common_prefix(&s.kv_tokens, &job.prompt))
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let job = waiting.pop_front().expect("a front job");
            metrics.queued.fetch_sub(1, Ordering::Relaxed);
            metrics.active.fetch_add(1, Ordering::Relaxed);
            start(&mut slots[i], job, &tokenizer, &metrics);
        }
        // Slots with prompt left evaluate a micro-batch of it; every other
        // active slot takes its pending token, and those that go on run it
        // together.
        let mut go = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(a) = &slot.job else { continue };
            if a.prefilled < a.job.prompt.len() {
                if !prefill_step(slot, n_batch, &metrics) {
                    slot.job = None;
                }
            } else {
                if take(slot, &metrics) {
                    go.push(i);
                } else {
                    slot.job = None;
                }
            }
        }
        match (go.as_slice(), spec.as_mut()) {
            ([], _) => {}
            // Alone and greedy: drafting gives the same tokens, faster
            // where the text repeats its context. (Sampled requests never
            // draft, so a seed gives the same text however busy the server.)
            (&[i], Some(spec)) if slots[i].job.as_ref().is_some_and(|a| a.job.sampling.temp <= 0.0) => {
                draft_pass(&mut slots[i], spec, &metrics);
                metrics.drafted.store(spec.stats().proposed as u64, Ordering::Relaxed);
                metrics.draft_accepted.store(spec.stats().accepted as u64, Ordering::Relaxed);
            }
            _ => run_together(&mut slots, &go),
        }
        let active = slots.iter().filter(|s| s.job.is_some()).count() as u64;
        if metrics.active.swap(active, Ordering::Relaxed) != active {
            publish_cache_stats(&model, &metrics);
        }
    }
    Ok(())
}

/// Puts the job in the slot: the prompt tokens the slot's KV cache holds
/// already are kept; the rest is evaluated a micro-batch per round
/// ([`prefill_step`]), so a long prompt does not stop the other slots'
/// answers meanwhile.
fn start<'t>(slot: &mut Slot<'_, 't>, job: Job, tokenizer: &'t Tokenizer, metrics: &Metrics) {
    let keep = common_prefix(&slot.kv_tokens, &job.prompt).min(job.prompt.len().saturating_sub(1));
    // A sliding-window layer's ring may keep less (then 0).
    let keep = slot.session.truncate(keep);
    slot.kv_tokens.truncate(keep);
    let mut sampler = Sampler::new(job.sampling.clone());
    for &t in &job.prompt {
        sampler.accept(t);
    }
    metrics.prompt_tokens.fetch_add(job.prompt.len() as u64, Ordering::Relaxed);
    metrics.evaluated_tokens.fetch_add((job.prompt.len() - keep) as u64, Ordering::Relaxed);
    slot.job = Some(Active {
        sampler,
        stop_strings: StopStrings::new(job.stop.iter().cloned()),
        pending: 0,
        emitted: false,
        prefilled: keep,
        generated: 0,
        reused: keep,
        prompt_s: 0.0,
        started: Instant::now(),
        decoder: StreamDecoder::new(tokenizer, true),
        job,
    });
}

/// Evaluates the next micro-batch (`n_batch` tokens) of the slot's prompt;
/// after the last, samples the first token. False when the job failed (or
/// its client left).
fn prefill_step(slot: &mut Slot<'_, '_>, n_batch: usize, metrics: &Metrics) -> bool {
    let Some(a) = slot.job.as_mut() else { return false };
    if a.job.events.is_closed() {
        metrics.cancelled.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let t0 = Instant::now();
    let chunk = &a.job.prompt[a.prefilled..(a.prefilled + n_batch).min(a.job.prompt.len())];
    if let Err(e) = slot.session.prefill_last(chunk) {
        slot.fail(&e);
        return false;
    }
    slot.kv_tokens.extend_from_slice(chunk);
    a.prefilled += chunk.len();
    a.prompt_s += t0.elapsed().as_secs_f64();
    if a.prefilled == a.job.prompt.len() {
        a.pending = a.sampler.sample(slot.session.last_logits());
        a.started = Instant::now();
    }
    true
}

/// Takes the pending token into the job's text; true when the job goes on
/// (the token is then to be run), false when it is over (finished or
/// cancelled).
fn take(slot: &mut Slot<'_, '_>, metrics: &Metrics) -> bool {
    let a = slot.job.as_mut().expect("an active job");
    if a.job.events.is_closed() {
        metrics.cancelled.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let finish = if std::mem::take(&mut a.emitted) {
        // Emitted (and recorded) by a drafting pass; it still needs room to run.
        (slot.session.pos() >= slot.session.n_ctx()).then_some(Finish::Length)
    } else {
        let t = a.pending;
        let finish = emit(a, t);
        if finish.is_none() {
            a.sampler.accept(t);
        }
        finish.or((slot.session.pos() >= slot.session.n_ctx()).then_some(Finish::Length))
    };
    match finish {
        None => true,
        Some(finish) => {
            done(a, finish, metrics);
            false
        }
    }
}

/// Takes `t` into the job's text; why the job ends with it, if it does.
fn emit(a: &mut Active<'_>, t: u32) -> Option<Finish> {
    if a.job.stop_tokens.contains(&t) {
        return Some(Finish::Stop);
    }
    a.generated += 1;
    let text = a.stop_strings.push(&a.decoder.push(t));
    if !text.is_empty() {
        let _ = a.job.events.send(Event::Text(text));
    }
    if a.stop_strings.stopped() {
        return Some(Finish::Stop);
    }
    (a.generated >= a.job.max_tokens).then_some(Finish::Length)
}

/// Ends the job: the text held back, then its usage.
fn done(a: &mut Active<'_>, finish: Finish, metrics: &Metrics) {
    let mut tail = a.stop_strings.push(&a.decoder.finish());
    tail.push_str(&a.stop_strings.finish());
    if !tail.is_empty() {
        let _ = a.job.events.send(Event::Text(tail));
    }
    let usage = Usage {
        prompt_tokens: a.job.prompt.len(),
        reused_tokens: a.reused,
        completion_tokens: a.generated,
        finish,
        generation_s: a.started.elapsed().as_secs_f64(),
        prompt_s: a.prompt_s,
    };
    metrics.record_done(&usage);
    let _ = a.job.events.send(Event::Done(usage));
}

/// Runs the slot's pending token with drafted ones after it in one pass
/// ([`Speculator::advance`]), emitting the tokens that stand; the last of
/// them is the next pending token, emitted (and recorded in the sampler)
/// already.
fn draft_pass(slot: &mut Slot<'_, '_>, spec: &mut Speculator, metrics: &Metrics) {
    let Some(a) = slot.job.as_mut() else { return };
    slot.kv_tokens.push(a.pending);
    let limit = a.job.max_tokens.saturating_sub(a.generated).max(1);
    // The speculator samples and records with the job's sampler; `emit`
    // needs the rest of the job meanwhile.
    let placeholder = Sampler::new(a.sampler.params().clone());
    let mut sampler = std::mem::replace(&mut a.sampler, placeholder);
    let mut finish = None;
    let result = spec.advance(&mut slot.session, &mut sampler, &slot.kv_tokens, limit, &mut |t| {
        finish = emit(a, t);
        finish.is_none()
    });
    a.sampler = sampler;
    match result {
        Ok(pass) => {
            let (&last, fed) = pass.tokens.split_last().expect("a pass returns a token");
            slot.kv_tokens.extend_from_slice(fed);
            match finish {
                Some(f) => {
                    done(a, f, metrics);
                    slot.job = None;
                }
                None => {
                    a.pending = last;
                    a.emitted = true;
                }
            }
        }
        Err(e) => slot.fail(&e),
    }
}

/// Runs the pending tokens of the slots `go` in one pass (an expert that
/// several of them route to is read once), and samples each one's next.
/// A failure fails them all and clears their caches.
fn run_together(slots: &mut [Slot<'_, '_>], go: &[usize]) {
    let tokens: Vec<u32> = go.iter().map(|&i| slots[i].job.as_ref().map_or(0, |a| a.pending)).collect();
    let mut sessions: Vec<&mut Session<'_>> = slots.iter_mut().enumerate().filter(|(i, _)| go.contains(i)).map(|(_, s)| &mut s.session).collect();
    let result = decode_together(&mut sessions, &tokens);
    for (&i, &t) in go.iter().zip(&tokens) {
        let slot = &mut slots[i];
        match &result {
            Ok(()) => {
                let Some(a) = slot.job.as_mut() else { continue };
                slot.kv_tokens.push(t);
                a.pending = a.sampler.sample(slot.session.last_logits());
            }
            Err(e) => slot.fail(e),
        }
    }
}

/// The expert cache's per-layer counters, for `/metrics`.
fn publish_cache_stats(model: &Model, metrics: &Metrics) {
    let Some(stats) = model.experts().stats() else { return };
    let layers = stats
        .layers
        .iter()
        .map(|l| LayerCache { hits: l.hits, misses: l.misses, bytes_read: l.bytes_read, stall_s: l.stall_time.as_secs_f64() })
        .collect();
    if let Ok(mut m) = metrics.layers.lock() {
        *m = layers;
    }
}
