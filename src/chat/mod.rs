//! Chat: the model's own prompt format and the conversation kept in the
//! KV cache.
//!
//! [`ChatTemplate`] renders messages with the GGUF's
//! `tokenizer.chat_template` (a Hugging Face Jinja template, run by
//! minijinja with the extras transformers adds: `raise_exception`,
//! `strftime_now`, its `tojson`, loop controls, Python string methods,
//! Python's printing of values), or with a named built-in ([`builtin`])
//! when a file has none. A template is untrusted input: it compiles and
//! renders within the bounds of [`limits`] or fails with an error.
//! [`Conversation`] keeps the turns and decides what goes to the model:
//! the whole conversation is rendered again each turn and only the tokens
//! the KV cache does not hold yet are evaluated. [`ChatSession`] runs it;
//! with gpt-oss's harmony format it shows the answer's final channel and
//! the reasoning as [`Reasoning`] says ([`harmony`]).

pub mod builtin;
mod conversation;
pub mod harmony;
mod json;
pub mod limits;
mod python;
mod session;
mod source_guard;
mod template;
mod text_filters;
mod text_guard;
mod value_guard;

pub use conversation::{common_prefix, Conversation, Message};
pub use harmony::Reasoning;
pub use session::{encode_rendered, prompt_tokens, stop_tokens, ChatOptions, ChatSession, ChatTotals, TurnEnd, TurnStats};
pub use template::{ChatTemplate, RenderOptions, TemplateSource};
