//! A multi-turn chat keeps the conversation in the KV cache and evaluates
//! only each turn's new tokens, and that loses nothing: with greedy
//! sampling, every answer is the one a fresh session gives for the whole
//! rendered conversation. Real model: SmolLM2-135M-Instruct.

mod common;

use moe::chat::{prompt_tokens, ChatOptions, ChatSession, ChatTemplate, Message, TurnEnd};
use moe::generate::{generate, GenerateOptions};
use moe::model::{KvType, Model};
use moe::sampler::{Sampler, SamplerParams};
use moe::tokenizer::Tokenizer;

const SYSTEM: &str = "You are a helpful assistant. Answer briefly.";
const QUESTIONS: [&str; 3] = ["What is the capital of France?", "And of Italy?", "Name a famous painter from one of them."];
const N_PREDICT: usize = 24;

fn greedy() -> Sampler {
    Sampler::new(SamplerParams { temp: 0.0, ..Default::default() })
}

/// The answer a fresh session gives to the whole rendered conversation.
fn from_scratch(model: &Model, tok: &Tokenizer, template: &ChatTemplate, messages: &[Message], stops: &[u32]) -> Vec<u32> {
    let prompt = prompt_tokens(template, tok, messages).unwrap();
    let mut session = model.session_with_kv(prompt.len() + N_PREDICT, KvType::F16).unwrap();
    let mut out = Vec::new();
    generate(&mut session, tok, &mut greedy(), &prompt, &GenerateOptions { n_predict: N_PREDICT, ignore_eos: true, ..Default::default() }, |id| {
        if stops.contains(&id) {
            return false;
        }
        out.push(id);
        true
    })
    .unwrap();
    out
}

fn open() -> (Model, Tokenizer) {
    let path = common::smollm2();
    let model = Model::open(&path).unwrap();
    let tok = Tokenizer::from_metadata(model.metadata()).unwrap();
    (model, tok)
}

#[test]
fn kv_reuse_is_lossless_and_evaluates_only_new_tokens() {
    let path = common::smollm2();
    let (model, tok) = open();
    let template = ChatTemplate::for_model(&tok, &path, None, None).unwrap();
    let session = model.session_with_kv(2048, KvType::F16).unwrap();
    let opts = ChatOptions { n_predict: Some(N_PREDICT), context_shift: false, ..Default::default() };
    let mut chat = ChatSession::new(session, &tok, template, Some(SYSTEM.into()), opts);
    let im_end = tok.token_id("<|im_end|>").unwrap();
    assert!(chat.stop_tokens().contains(&im_end), "the template's end of turn stops an answer");

    let reference_template = ChatTemplate::for_model(&tok, &path, None, None).unwrap();
    let mut history = vec![Message::new("system", SYSTEM)];
    let mut kv_before = 0;
    for (i, q) in QUESTIONS.iter().enumerate() {
        let mut streamed = String::new();
        let st = chat
            .respond(q, &mut greedy(), |piece| {
                streamed.push_str(piece);
                true
            })
            .unwrap();
        history.push(Message::new("user", *q));
        let want = from_scratch(&model, &tok, &reference_template, &history, chat.stop_tokens());
        assert_eq!(st.tokens, want, "turn {i}: {:?} vs from scratch {:?}", st.answer, tok.decode(&want, true));
        assert!(!st.tokens.is_empty(), "turn {i}");
        assert_eq!(streamed, st.answer, "turn {i}: what streamed is the answer");
        history.push(Message::new("assistant", st.answer.clone()));

        // Only what the KV cache does not hold is evaluated.
        let prompt = prompt_tokens(&reference_template, &tok, &history[..history.len() - 1]).unwrap();
        assert_eq!(st.prompt_tokens, prompt.len());
        assert_eq!(st.reused_tokens + st.evaluated_tokens, st.prompt_tokens, "turn {i}");
        if i == 0 {
            assert_eq!(st.reused_tokens, 0);
        } else {
            // Everything up to the previous answer's last evaluated token
            // is reused; new: its end-of-turn, the user turn, the header.
            assert!(st.reused_tokens + 2 >= kv_before, "turn {i}: reused {} of {kv_before} in the KV", st.reused_tokens);
            let user = tok.encode(q, false, true).unwrap().len();
            assert!(st.evaluated_tokens <= user + 12, "turn {i}: evaluated {} tokens for a {user}-token message", st.evaluated_tokens);
        }
        kv_before = chat.kv_len();
        // Every answer token is run but the last of a length-limited answer.
        assert_eq!(kv_before, st.prompt_tokens + st.tokens.len() - usize::from(st.end == TurnEnd::Length), "turn {i}");
    }
    let totals = chat.totals();
    assert_eq!(totals.turns, 3);
    assert!(totals.evaluated_tokens < totals.prompt_tokens / 2, "{totals:?}");
}

#[test]
fn context_shift_keeps_the_system_prompt_and_drops_the_oldest_turns() {
    let path = common::smollm2();
    let (model, tok) = open();
    let n_ctx = 160;
    let template = ChatTemplate::for_model(&tok, &path, None, None).unwrap();
    let opts = ChatOptions { n_predict: Some(N_PREDICT), context_shift: true, ..Default::default() };
    let mut chat = ChatSession::new(model.session_with_kv(n_ctx, KvType::F16).unwrap(), &tok, template, Some(SYSTEM.into()), opts);
    let reference_template = ChatTemplate::for_model(&tok, &path, None, None).unwrap();
    let mut dropped = 0;
    for q in QUESTIONS.iter().chain(&QUESTIONS) {
        let before = chat.conversation().messages();
        let st = chat.respond(q, &mut greedy(), |_| true).unwrap();
        dropped += st.dropped_exchanges;
        assert!(chat.kv_len() <= n_ctx);
        if st.dropped_exchanges > 0 {
            // The answer is the one the shortened conversation gets from scratch.
            let mut shortened = chat.conversation().messages();
            shortened.pop();
            assert_eq!(shortened[0], Message::new("system", SYSTEM), "the system prompt stays");
            assert!(shortened.len() < before.len() + 1);
            let want = from_scratch(&model, &tok, &reference_template, &shortened, chat.stop_tokens());
            // Mid-answer shifts evaluate the answer again; compare only then
            // the shift happened before the answer.
            if st.end != TurnEnd::ContextFull {
                assert_eq!(st.tokens[..want.len().min(st.tokens.len())], want[..want.len().min(st.tokens.len())]);
            }
        }
    }
    assert!(dropped > 0, "six turns in 160 positions must shift");
}

#[test]
fn a_full_context_is_a_clear_error_without_the_shift() {
    let path = common::smollm2();
    let (model, tok) = open();
    let template = ChatTemplate::for_model(&tok, &path, None, None).unwrap();
    let opts = ChatOptions { n_predict: Some(N_PREDICT), context_shift: false, ..Default::default() };
    let mut chat = ChatSession::new(model.session_with_kv(100, KvType::F16).unwrap(), &tok, template, Some(SYSTEM.into()), opts);
    let mut err = None;
    for q in QUESTIONS.iter().chain(&QUESTIONS) {
        match chat.respond(q, &mut greedy(), |_| true) {
            Ok(st) => assert!(chat.kv_len() <= 100, "{st:?}"),
            Err(e) => {
                err = Some(e.to_string());
                break;
            }
        }
    }
    let e = err.expect("100 positions fill up");
    assert!(e.contains("context is full") && e.contains("--context-shift") && e.contains("/reset"), "{e}");
    // The message that did not fit is not kept: the conversation alternates.
    let turns = chat.conversation().turns();
    assert_eq!(turns.last().unwrap().role, "assistant");
}

#[test]
fn context_shift_mid_answer_drops_old_turns_and_goes_on() {
    let path = common::smollm2();
    let (model, tok) = open();
    let n_ctx = 192;
    let template = ChatTemplate::for_model(&tok, &path, None, None).unwrap();
    let opts = ChatOptions { n_predict: Some(8), context_shift: true, ..Default::default() };
    let mut chat = ChatSession::new(model.session_with_kv(n_ctx, KvType::F16).unwrap(), &tok, template, Some(SYSTEM.into()), opts);
    for q in QUESTIONS {
        let st = chat.respond(q, &mut greedy(), |_| true).unwrap();
        assert_eq!(st.dropped_exchanges, 0);
    }
    let before = chat.kv_len();
    // An answer longer than the room left: the context fills mid-answer.
    chat.options_mut().n_predict = Some(n_ctx - before + 40);
    let st = chat.respond("Write a long story about a dragon.", &mut greedy(), |_| true).unwrap();
    assert!(st.dropped_exchanges > 0, "{st:?}");
    assert!(st.tokens.len() > n_ctx - before, "the answer went on past the end of the context: {} tokens", st.tokens.len());
    assert!(chat.kv_len() <= n_ctx);
    let m = chat.conversation().messages();
    assert_eq!(m[0], Message::new("system", SYSTEM));
    assert_eq!(m.last().unwrap().role, "assistant");
    assert_eq!(m[m.len() - 2], Message::new("user", "Write a long story about a dragon."));
    assert!(m.len() < 2 + 2 * QUESTIONS.len() + 1, "old turns were dropped: {}", m.len());
    // The KV cache holds exactly the shortened conversation and the answer.
    let mut expected = prompt_tokens(&ChatTemplate::for_model(&tok, &path, None, None).unwrap(), &tok, &m[..m.len() - 1]).unwrap();
    expected.extend_from_slice(&st.tokens);
    if st.end == TurnEnd::Length {
        expected.pop();
    }
    assert_eq!(chat.kv_len(), expected.len());
}

/// `--stop`: an answer ends where its text first contains a stop string,
/// is shown and kept cut before it, and the next turn answers as a fresh
/// session given that cut answer does.
#[test]
fn stop_strings_cut_the_answer_and_the_next_turn_is_lossless() {
    let path = common::smollm2();
    let (model, tok) = open();
    let new_chat = |stop: Vec<String>| {
        let template = ChatTemplate::for_model(&tok, &path, None, None).unwrap();
        let session = model.session_with_kv(2048, KvType::F16).unwrap();
        let opts = ChatOptions { n_predict: Some(N_PREDICT), stop, ..Default::default() };
        ChatSession::new(session, &tok, template, Some(SYSTEM.into()), opts)
    };
    // The whole answer, then the same chat stopped at its second word.
    let full = new_chat(Vec::new()).respond(QUESTIONS[0], &mut greedy(), |_| true).unwrap().answer;
    let word = full.split_whitespace().nth(1).unwrap_or_else(|| panic!("a two-word answer: {full:?}")).to_string();
    let cut = &full[..full.find(&word).unwrap()];
    let mut chat = new_chat(vec!["never appears".into(), word.clone()]);
    let mut streamed = String::new();
    let st = chat
        .respond(QUESTIONS[0], &mut greedy(), |piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(st.end, TurnEnd::StopString, "{full:?} stopped at {word:?}");
    assert_eq!((st.answer.as_str(), streamed.as_str()), (cut, cut), "{full:?} stopped at {word:?}");
    assert_eq!(chat.conversation().messages().last().unwrap().content, cut);
    // The next turn runs on the cut answer as a fresh session would.
    let st = chat.respond(QUESTIONS[1], &mut greedy(), |_| true).unwrap();
    let history = [Message::new("system", SYSTEM), Message::new("user", QUESTIONS[0]), Message::new("assistant", cut), Message::new("user", QUESTIONS[1])];
    let reference_template = ChatTemplate::for_model(&tok, &path, None, None).unwrap();
    let want = from_scratch(&model, &tok, &reference_template, &history, chat.stop_tokens());
    let want_text = tok.decode(&want, true);
    let want_cut = want_text.find(&word).map_or(want_text.as_str(), |at| &want_text[..at]);
    assert_eq!(st.answer, want_cut, "turn 2 after a cut answer");
}
