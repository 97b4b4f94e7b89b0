//! `ChatSession`: a conversation kept in one inference session. Each turn
//! renders the whole conversation with the chat template, tokenizes it, and
//! evaluates only what the KV cache does not hold yet (the tokens after the
//! longest common prefix with what it holds); the answer streams out until
//! an end-of-turn token.

use std::time::{Duration, Instant};

use super::conversation::{common_prefix, Conversation, Message};
use super::harmony::{HarmonyView, Reasoning};
use super::template::{ChatTemplate, RenderOptions};
use crate::error::{Error, Result};
use crate::model::Session;
use crate::sampler::Sampler;
use crate::speculative::{DraftOptions, DraftStats, Speculator};
use crate::stop::StopStrings;
use crate::tokenizer::{StreamDecoder, Tokenizer};

#[derive(Debug, Clone, Default)]
pub struct ChatOptions {
    /// Most tokens an answer may have (`None`: until an end-of-turn token
    /// or the end of the context).
    pub n_predict: Option<usize>,
    /// When the conversation no longer fits, drop the oldest exchanges
    /// (never the system prompt) instead of stopping.
    pub context_shift: bool,
    /// Speculative decoding (the answers are the same).
    pub draft: DraftOptions,
    /// Stop strings (`--stop`): an answer ends where its text first
    /// contains one, and is kept and shown cut before it.
    pub stop: Vec<String>,
    /// How a harmony answer's reasoning (analysis and commentary channels)
    /// is shown (`--reasoning`); other templates' answers are shown whole.
    pub reasoning: Reasoning,
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TurnEnd {
    /// The model produced an end-of-turn (or end-of-generation) token.
    #[default]
    EndOfTurn,
    /// `n_predict` tokens were generated.
    Length,
    /// The caller stopped it (Ctrl-C).
    Interrupted,
    /// The context filled up (and no exchange was left to drop).
    ContextFull,
    /// The text reached one of the stop strings ([`ChatOptions::stop`]).
    StopString,
}

/// What one turn cost.
#[derive(Debug, Clone, Default)]
pub struct TurnStats {
    /// The rendered conversation, in tokens, when the turn started.
    pub prompt_tokens: usize,
    /// Of those, how many the KV cache already held (not evaluated again).
    pub reused_tokens: usize,
    /// Tokens run through the model as prompt: the new ones, plus any the
    /// context shift made evaluate again.
    pub evaluated_tokens: usize,
    /// The answer's tokens, without the end-of-turn token.
    pub tokens: Vec<u32>,
    pub answer: String,
    /// Decode steps (forward passes of single generated tokens).
    pub decode_evals: usize,
    pub prompt_time: Duration,
    pub generation_time: Duration,
    /// Exchanges dropped by the context shift during this turn.
    pub dropped_exchanges: usize,
    pub end: TurnEnd,
    /// Drafting's counts for this turn.
    pub draft: DraftStats,
}

impl TurnStats {
    pub fn generation_tok_per_s(&self) -> f64 {
        rate(self.decode_evals, self.generation_time)
    }
    pub fn prompt_tok_per_s(&self) -> f64 {
        rate(self.evaluated_tokens, self.prompt_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// Totals over a chat's turns (`/stats`).
#[derive(Debug, Clone, Default)]
pub struct ChatTotals {
    pub turns: usize,
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    pub evaluated_tokens: usize,
    pub generated_tokens: usize,
    pub decode_evals: usize,
    pub prompt_time: Duration,
    pub generation_time: Duration,
    pub dropped_exchanges: usize,
    pub draft: DraftStats,
}

pub struct ChatSession<'m> {
    session: Session<'m>,
    tokenizer: &'m Tokenizer,
    template: ChatTemplate,
    conv: Conversation,
    /// The tokens whose keys and values the session holds, positions 0..len.
    kv_tokens: Vec<u32>,
    /// Tokens that end an answer.
    stops: Vec<u32>,
    opts: ChatOptions,
    totals: ChatTotals,
    /// Runs the decode passes; its acceptance and cost estimates carry
    /// over from turn to turn.
    spec: Speculator,
}

impl<'m> ChatSession<'m> {
    pub fn new(
        session: Session<'m>,
        tokenizer: &'m Tokenizer,
        template: ChatTemplate,
        system: Option<String>,
        opts: ChatOptions,
    ) -> ChatSession<'m> {
        let stops = stop_tokens(&template, tokenizer);
        ChatSession {
            session,
            tokenizer,
            template,
            conv: Conversation::new(system),
            kv_tokens: Vec::new(),
            stops,
            spec: Speculator::new(opts.draft),
            opts,
            totals: ChatTotals::default(),
        }
    }

    pub fn conversation(&self) -> &Conversation {
        &self.conv
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    pub fn session(&self) -> &Session<'m> {
        &self.session
    }

    /// The answer length, context-shift and drafting settings.
    pub fn options(&self) -> &ChatOptions {
        &self.opts
    }

    /// The answer length and context-shift settings, for the next turns
    /// (drafting is set when the session is made).
    pub fn options_mut(&mut self) -> &mut ChatOptions {
        &mut self.opts
    }

    pub fn totals(&self) -> &ChatTotals {
        &self.totals
    }

    /// Positions in use in the KV cache.
    pub fn kv_len(&self) -> usize {
        self.kv_tokens.len()
    }

    /// The tokens that end an answer, ascending.
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stops
    }

    /// Forgets the turns (the system prompt stays, and so does its part of
    /// the KV cache, reused by the next turn).
    pub fn reset(&mut self) {
        self.conv.clear();
    }

    /// Replaces the conversation (`/load`); the next turn evaluates what of
    /// it the KV cache does not hold.
    pub fn set_conversation(&mut self, conv: Conversation) {
        self.conv = conv;
    }

    /// The conversation as the model will see it when it answers.
    pub fn rendered_prompt(&self) -> Result<Vec<u32>> {
        prompt_tokens(&self.template, self.tokenizer, &self.conv.messages())
    }

    /// Adds `user`'s message and generates the answer, calling `on_text`
    /// with each piece of it as it is decoded; `on_text` returning `false`
    /// stops the answer (kept, as generated so far). A conversation that no
    /// longer fits is an [`Error::ContextFull`] (the message is not kept).
    pub fn respond(&mut self, user: &str, sampler: &mut Sampler, mut on_text: impl FnMut(&str) -> bool) -> Result<TurnStats> {
        self.conv.push_user(user);
        let mut st = TurnStats::default();
        let prompt = match self.fit_prompt(&mut st) {
            Ok(p) => p,
            Err(e) => {
                self.conv.pop();
                return Err(e);
            }
        };
        st.prompt_tokens = prompt.len();
        let t0 = Instant::now();
        let (reused, evaluated) = eval_suffix(&mut self.session, &mut self.kv_tokens, &prompt, sampler)?;
        st.reused_tokens = reused;
        st.evaluated_tokens = evaluated;
        st.prompt_time = t0.elapsed();

        let t1 = Instant::now();
        let mut decoder = StreamDecoder::new(self.tokenizer, true);
        let mut stop_strings = StopStrings::new(self.opts.stop.iter().cloned());
        // The answer's text as shown (cut before a stop string).
        let mut shown = String::new();
        // Harmony: the answer's channels apart; the final one is the answer.
        let mut harmony = self.template.is_harmony().then(|| HarmonyView::new(self.opts.reasoning));
        let view = |text: &str, harmony: &mut Option<HarmonyView>, finish: bool| match harmony {
            Some(h) => h.push(text, finish),
            None => text.to_string(),
        };
        let n_ctx = self.session.n_ctx();
        let (stops, n_predict) = (self.stops.clone(), self.opts.n_predict);
        let drafts_before = *self.spec.stats();
        // Takes `t` into the answer; false: the answer ends there (a stop
        // token is not part of it).
        let mut take = |t: u32, st: &mut TurnStats| -> bool {
            if stops.binary_search(&t).is_ok() {
                st.end = TurnEnd::EndOfTurn;
                return false;
            }
            st.tokens.push(t);
            let text = stop_strings.push(&decoder.push(t));
            shown.push_str(&text);
            let text = view(&text, &mut harmony, false);
            if !text.is_empty() && !on_text(&text) {
                st.end = TurnEnd::Interrupted;
                return false;
            }
            if stop_strings.stopped() {
                st.end = TurnEnd::StopString;
                return false;
            }
            if n_predict.is_some_and(|n| st.tokens.len() >= n) {
                st.end = TurnEnd::Length;
                return false;
            }
            true
        };
        // `pending`: taken, not yet run (the KV cache holds `kv_tokens`).
        // The speculator records the tokens it returns in the sampler; the
        // ones sampled here are recorded here.
        let mut pending = sampler.sample(self.session.last_logits());
        let mut go_on = take(pending, &mut st);
        if go_on {
            sampler.accept(pending);
        }
        while go_on {
            if self.session.pos() == n_ctx {
                // No room to run `pending`: shift (which runs the shorter
                // conversation and the answer so far, `pending` included) or stop.
                if !self.shift_mid_answer(sampler, &mut st)? {
                    st.end = TurnEnd::ContextFull;
                    break;
                }
                pending = sampler.sample(self.session.last_logits());
                go_on = take(pending, &mut st);
                if go_on {
                    sampler.accept(pending);
                }
                continue;
            }
            let limit = n_predict.map_or(usize::MAX, |n| n.saturating_sub(st.tokens.len()).max(1));
            // The pass runs `pending` (and keeps it whatever it drafts).
            self.kv_tokens.push(pending);
            let pass = match self.spec.advance(&mut self.session, sampler, &self.kv_tokens, limit, &mut |t| take(t, &mut st)) {
                Ok(pass) => pass,
                Err(e) => {
                    self.kv_tokens.pop();
                    return Err(e);
                }
            };
            let (&last, fed) = pass.tokens.split_last().expect("a pass returns a token");
            self.kv_tokens.extend_from_slice(fed);
            st.decode_evals += pass.tokens.len();
            pending = last;
            go_on = !pass.stopped;
        }
        st.draft = self.spec.stats().since(&drafts_before);
        let mut tail = stop_strings.push(&decoder.finish());
        tail.push_str(&stop_strings.finish());
        shown.push_str(&tail);
        let tail = view(&tail, &mut harmony, true);
        if !tail.is_empty() {
            on_text(&tail);
        }
        st.generation_time = t1.elapsed();
        st.answer = if let Some(h) = harmony {
            h.answer()
        } else if stop_strings.is_empty() {
            self.tokenizer.decode(&st.tokens, true)
        } else {
            shown
        };
        self.conv.push_assistant(st.answer.clone());
        self.add_totals(&st);
        Ok(st)
    }

    fn add_totals(&mut self, st: &TurnStats) {
        let t = &mut self.totals;
        t.turns += 1;
        t.prompt_tokens += st.prompt_tokens;
        t.reused_tokens += st.reused_tokens;
        t.evaluated_tokens += st.evaluated_tokens;
        t.generated_tokens += st.tokens.len();
        t.decode_evals += st.decode_evals;
        t.prompt_time += st.prompt_time;
        t.generation_time += st.generation_time;
        t.dropped_exchanges += st.dropped_exchanges;
        t.draft.add(&st.draft);
    }

    /// Room an answer should have when the prompt is placed: with the
    /// context shift, a quarter of the context (at most 256 tokens), so the
    /// shift happens between turns rather than mid-answer.
    fn reserve(&self) -> usize {
        if self.opts.context_shift {
            (self.session.n_ctx() / 4).clamp(1, 256)
        } else {
            1
        }
    }

    /// The rendered prompt, after dropping the oldest exchanges if the
    /// context shift is on and it does not fit.
    fn fit_prompt(&mut self, st: &mut TurnStats) -> Result<Vec<u32>> {
        let n_ctx = self.session.n_ctx();
        loop {
            let prompt = self.rendered_prompt()?;
            if prompt.len() + self.reserve() <= n_ctx {
                return Ok(prompt);
            }
            if self.opts.context_shift && self.conv.drop_oldest_exchange() {
                st.dropped_exchanges += 1;
                continue;
            }
            if prompt.len() < n_ctx {
                return Ok(prompt);
            }
            return Err(Error::ContextFull {
                what: format!(
                    "the conversation is {} tokens and the context holds {n_ctx}; {}",
                    prompt.len(),
                    if self.opts.context_shift {
                        "the system prompt and this message alone do not fit: raise -c/--ctx-size".to_string()
                    } else {
                        "/reset to start over, or run with --context-shift (drops the oldest turns) or a larger -c/--ctx-size".to_string()
                    }
                ),
            });
        }
    }

    /// The context filled up mid-answer: with the context shift, drop the
    /// oldest exchanges and evaluate the shorter conversation plus the answer
    /// so far. Returns whether the answer can go on.
    fn shift_mid_answer(&mut self, sampler: &mut Sampler, st: &mut TurnStats) -> Result<bool> {
        if !self.opts.context_shift {
            return Ok(false);
        }
        let n_ctx = self.session.n_ctx();
        while self.conv.drop_oldest_exchange() {
            st.dropped_exchanges += 1;
            let mut tokens = self.rendered_prompt()?;
            tokens.extend_from_slice(&st.tokens);
            if tokens.len() + self.reserve() <= n_ctx || (tokens.len() < n_ctx && self.conv.turns().len() < 3) {
                let t = Instant::now();
                let (_, evaluated) = eval_suffix(&mut self.session, &mut self.kv_tokens, &tokens, sampler)?;
                st.evaluated_tokens += evaluated;
                st.prompt_time += t.elapsed();
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Evaluates `tokens` in `session`, whose positions hold `kv`: keeps their
/// common prefix (all but the last token at most, whose logits are wanted)
/// and runs the rest. Returns (tokens reused, tokens evaluated).
fn eval_suffix(session: &mut Session<'_>, kv: &mut Vec<u32>, tokens: &[u32], sampler: &mut Sampler) -> Result<(usize, usize)> {
    let keep = common_prefix(kv, tokens).min(tokens.len().saturating_sub(1));
    // A sliding-window layer's ring may keep less (then 0).
    let keep = session.truncate(keep);
    kv.truncate(keep);
    let new = &tokens[keep..];
    session.prefill_last(new)?;
    kv.extend_from_slice(new);
    for &t in new {
        sampler.accept(t);
    }
    Ok((keep, new.len()))
}

/// A rendered conversation's tokens, as the model reads them: special-token
/// texts parsed, and BOS added where the vocab wants it unless the template
/// wrote it already.
pub fn prompt_tokens(template: &ChatTemplate, tokenizer: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>> {
    let text = template.render(messages, &RenderOptions { add_generation_prompt: true })?;
    encode_rendered(template, tokenizer, &text)
}

/// [`prompt_tokens`] of an already rendered text.
pub fn encode_rendered(template: &ChatTemplate, tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    if let Some(bos) = tokenizer.bos().filter(|_| tokenizer.adds_bos()) {
        if template.bos_token().is_empty() || !text.starts_with(template.bos_token()) {
            ids.push(bos);
        }
    }
    ids.extend(tokenizer.encode(text, false, true)?);
    Ok(ids)
}

/// The tokens that end an answer: the vocab's end-of-generation tokens
/// (EOS, EOT, `<|im_end|>`, `<|endoftext|>`, ...) and the template's end
/// of turn.
pub fn stop_tokens(template: &ChatTemplate, tokenizer: &Tokenizer) -> Vec<u32> {
    let mut stops = tokenizer.eog_ids().to_vec();
    stops.extend(end_of_turn_token(template, tokenizer));
    stops.sort_unstable();
    stops.dedup();
    stops
}

/// The token that closes an assistant message in `template`: the first
/// token after an answer's text, if it is a control token (`<|im_end|>`,
/// `<|eot_id|>`, `</s>`, `<end_of_turn>`).
fn end_of_turn_token(template: &ChatTemplate, tokenizer: &Tokenizer) -> Option<u32> {
    const MARK: &str = "MOE_ANSWER_END_MARK";
    let messages = [Message::new("user", "x"), Message::new("assistant", MARK), Message::new("user", "y")];
    let text = template.render(&messages, &RenderOptions { add_generation_prompt: false }).ok()?;
    let after = &text[text.find(MARK)? + MARK.len()..];
    let first = *tokenizer.encode(after, false, true).ok()?.first()?;
    tokenizer.is_control(first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{builtin, TemplateSource};
    use crate::gguf::{Array, Metadata, Value};

    /// A Qwen-like byte-level BPE vocab: letters, `Ċ` (newline), then
    /// `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (ids 27, 28, 29), typed
    /// `special_type` (3: control, as Qwen GGUFs have them; 1: normal), with
    /// EOS `eos`.
    fn qwen_vocab(special_type: i32, eos: u32) -> Tokenizer {
        let mut tokens: Vec<String> = ('a'..='z').map(String::from).collect();
        tokens.push("Ċ".into());
        let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
        let types: Vec<i32> = tokens.iter().map(|_| 1).chain(specials.iter().map(|_| special_type)).collect();
        tokens.extend(specials.iter().map(|s| s.to_string()));
        let mut md = Metadata::new(std::path::Path::new("qwen-like.gguf"));
        let strings = |v: Vec<String>| Value::from(Array::from_strings(v));
        md.map.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
        md.map.insert("tokenizer.ggml.pre".into(), Value::String("qwen2".into()));
        md.map.insert("tokenizer.ggml.tokens".into(), strings(tokens));
        md.map.insert("tokenizer.ggml.token_type".into(), Array::from(types).into());
        md.map.insert("tokenizer.ggml.merges".into(), strings(Vec::new()));
        md.map.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(27));
        md.map.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(eos));
        Tokenizer::from_metadata(&md).unwrap()
    }

    /// A Qwen chat's answer ends at `<|im_end|>`, whether the vocab has it
    /// as EOS (instruct models) or as a control token beside an
    /// `<|endoftext|>` EOS (base models), with Qwen3's own template or the
    /// built-in ChatML; `<|endoftext|>` ends it too.
    #[test]
    fn qwen_turns_end_at_im_end() {
        let qwen3 = include_str!("../../tests/fixtures/chat/qwen3.jinja");
        for (special_type, eos) in [(3, 29), (3, 27), (1, 27)] {
            let tok = qwen_vocab(special_type, eos);
            let (im_end, end_of_text) = (tok.token_id("<|im_end|>").unwrap(), tok.token_id("<|endoftext|>").unwrap());
            assert!(tok.is_control(im_end) && tok.is_eog(im_end) && tok.is_eog(end_of_text), "type {special_type}, eos {eos}");
            for text in [qwen3, builtin::CHATML] {
                let t = ChatTemplate::new(text.into(), TemplateSource::Inline, "", "<|im_end|>").unwrap();
                assert_eq!(end_of_turn_token(&t, &tok), Some(im_end));
                assert_eq!(stop_tokens(&t, &tok), [end_of_text, im_end]);
            }
        }
    }
}
