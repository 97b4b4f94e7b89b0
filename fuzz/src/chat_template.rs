//! The chat-template target. A GGUF's `tokenizer.chat_template` is
//! untrusted input, and so is every message a user types. The first input
//! byte picks what the rest is:
//! - even: a template (lossily UTF-8), compiled and rendered over a fixed
//!   conversation, as `moe chat` renders a GGUF's template; with bit 2 set
//!   (4, 6) the template is written compactly, `n_lo n_hi prefix \0 unit \0
//!   suffix` for `prefix + unit * n + suffix`, so that a few bytes reach
//!   the bounds of `moe::chat::limits`: 50,000 brackets, a chain of
//!   thousands of `+` or `not`, a source past `MAX_TEMPLATE_BYTES`;
//! - odd: a conversation (`role \0 content \0 role \0 ...`, lossily UTF-8),
//!   rendered by every shipped template: the built-ins and the models' own
//!   templates in tests/fixtures/chat.
//!
//! Checked, besides "no panic", "no abort" and "no hang" (the bounds of
//! `moe::chat::limits` keep every input fast and small):
//! - every error is a chat-template error that names where the template
//!   came from;
//! - ChatML renders exactly its formula, `<|im_start|>ROLE\nCONTENT<|im_end|>\n`
//!   per message, then the generation prompt;
//! - every template that renders a conversation of user/assistant turns
//!   puts each message's content into the prompt, as given (templates that
//!   `trim` it: trimmed).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use moe::chat::{builtin, ChatTemplate, Message, RenderOptions, TemplateSource};

/// Where the template of an input came from, as errors must name it.
const INPUT: &str = "fuzz-input.jinja";

struct Shipped {
    template: ChatTemplate,
    /// Named in its errors.
    origin: String,
    /// Applies Python's `str.strip` to contents (Llama 3).
    trims: bool,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/chat")
}

/// The built-ins and the fixture templates, compiled once per process.
fn shipped() -> &'static [Shipped] {
    static S: OnceLock<Vec<Shipped>> = OnceLock::new();
    S.get_or_init(|| {
        let mut v = Vec::new();
        for name in builtin::names() {
            let (name, text) = builtin::by_name(name).expect("a listed built-in");
            let source = TemplateSource::Builtin { name, guessed: false };
            let origin = source.to_string();
            let template = ChatTemplate::new(text.to_string(), source, "<s>", "</s>").expect("a built-in compiles");
            v.push(Shipped { template, origin, trims: text.contains("| trim") });
        }
        for file in ["smollm2.jinja", "mixtral.jinja", "llama3.jinja", "llama3.2.jinja"] {
            let path = fixtures().join(file);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let trims = text.contains("| trim");
            let template = ChatTemplate::new(text, TemplateSource::File(path.clone()), "<s>", "</s>").expect("a fixture compiles");
            v.push(Shipped { template, origin: path.display().to_string(), trims });
        }
        v
    })
}

fn assert_names(e: &moe::Error, origin: &str) {
    let msg = e.to_string();
    assert!(matches!(e, moe::Error::ChatTemplate { .. }), "not a chat-template error: {msg} ({e:?})");
    assert!(msg.contains(origin), "error does not name {origin}: {msg}");
}

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let opts = RenderOptions { add_generation_prompt: mode & 2 != 0 };
    if mode & 1 == 0 {
        let text = if mode & 4 == 0 { String::from_utf8_lossy(rest).into_owned() } else { expand(rest) };
        check_template(&text, &opts);
    } else {
        check_conversation(&parse_conversation(rest), &opts);
    }
}

fn check_template(text: &str, opts: &RenderOptions) {
    let source = TemplateSource::File(INPUT.into());
    let t = match ChatTemplate::new(text.to_string(), source, "<s>", "</s>") {
        Ok(t) => t,
        Err(e) => return assert_names(&e, INPUT),
    };
    let conversation = [Message::new("system", "Be brief."), Message::new("user", "Hi!"), Message::new("assistant", "Hello.")];
    if let Err(e) = t.render(&conversation, opts) {
        assert_names(&e, INPUT);
    }
}

/// `n_lo n_hi prefix \0 unit \0 suffix` as `prefix + unit * n + suffix`
/// (lossily UTF-8), at most a little past `MAX_TEMPLATE_BYTES`.
fn expand(bytes: &[u8]) -> String {
    let (n, rest) = match bytes {
        [lo, hi, rest @ ..] => (u16::from_le_bytes([*lo, *hi]) as usize, rest),
        _ => (0, bytes),
    };
    let mut parts = rest.splitn(3, |&b| b == 0).map(String::from_utf8_lossy);
    let (prefix, unit, suffix) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let n = n.min((moe::chat::limits::MAX_TEMPLATE_BYTES + 64) / unit.len().max(1));
    format!("{prefix}{}{suffix}", unit.repeat(n))
}

/// `role \0 content \0 ...`; a role without content gets "".
fn parse_conversation(bytes: &[u8]) -> Vec<Message> {
    let parts: Vec<String> = bytes.split(|&b| b == 0).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    parts.chunks(2).map(|c| Message::new(&c[0], c.get(1).cloned().unwrap_or_default())).collect()
}

fn check_conversation(messages: &[Message], opts: &RenderOptions) {
    let alternating = messages.iter().enumerate().all(|(i, m)| m.role == if i % 2 == 0 { "user" } else { "assistant" });
    for s in shipped() {
        let out = match s.template.render(messages, opts) {
            Ok(out) => out,
            Err(e) => {
                assert_names(&e, &s.origin);
                // Refusing is fine for odd conversations, not for a plain one.
                assert!(!alternating || messages.is_empty(), "{} refused user/assistant turns: {e}", s.origin);
                continue;
            }
        };
        if s.origin == "built-in 'chatml'" {
            let mut want: String = messages.iter().map(|m| format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content)).collect();
            if opts.add_generation_prompt {
                want.push_str("<|im_start|>assistant\n");
            }
            assert_eq!(out, want, "chatml");
        }
        if alternating {
            for m in messages {
                let content = if s.trims { m.content.trim() } else { m.content.as_str() };
                assert!(out.contains(content), "{}: {:?} is not in the prompt {out:?}", s.origin, content);
            }
        }
    }
}
