//! `ChatTemplate`: a Hugging Face chat template compiled by minijinja, set
//! up the way transformers renders it (`trim_blocks`, `lstrip_blocks`, loop
//! controls, `raise_exception`, `strftime_now`, its `tojson`, the Python
//! string and dict methods templates call, and Python's way of printing
//! values and of the `iterable` / `sequence` tests).

use std::fmt;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};

use super::builtin;
use super::conversation::Message;
use crate::error::{Error, Result};
use crate::tokenizer::{ModelKind, Tokenizer};

const NAME: &str = "chat_template";

/// The work one render may do, in minijinja's fuel (about one unit per
/// instruction and per 64 bytes created). A template is untrusted input (it
/// comes with the GGUF), and without a bound a nested loop renders for
/// hours or a string grows until the process is killed. Real renders use
/// a few thousand units per turn (SmolLM2's template over 100 turns: ~8k);
/// this bounds a render to ~0.1 s and ~256 MB.
pub const RENDER_FUEL: u64 = 4_000_000;

/// Where a template came from (printed on stderr, named in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// The GGUF's `tokenizer.chat_template`.
    Gguf(PathBuf),
    /// A built-in, named by `--chat-template` or guessed from the vocab.
    Builtin { name: &'static str, guessed: bool },
    /// `--chat-template-file FILE`.
    File(PathBuf),
    /// `--chat-template '{% ... %}'`, given inline.
    Inline,
}

impl fmt::Display for TemplateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateSource::Gguf(p) => write!(f, "tokenizer.chat_template of {}", p.display()),
            TemplateSource::Builtin { name, guessed: false } => write!(f, "built-in '{name}'"),
            TemplateSource::Builtin { name, guessed: true } => {
                write!(f, "built-in '{name}' (the file has no tokenizer.chat_template; chosen from its special tokens)")
            }
            TemplateSource::File(p) => write!(f, "{}", p.display()),
            TemplateSource::Inline => write!(f, "--chat-template"),
        }
    }
}

pub struct RenderOptions {
    /// End with the header of an assistant turn, for the model to answer.
    pub add_generation_prompt: bool,
}

pub struct ChatTemplate {
    env: Environment<'static>,
    source: TemplateSource,
    bos_token: String,
    eos_token: String,
    /// Variables every render passes (`--chat-template-kwargs`, e.g.
    /// `enable_thinking`), under those a render names itself.
    kwargs: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate").field("source", &self.source).finish()
    }
}

impl ChatTemplate {
    /// Compiles `text`. `bos_token`/`eos_token` are the texts the template
    /// sees as `bos_token` and `eos_token`.
    pub fn new(text: String, source: TemplateSource, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(|e| template_error(&source, &e))?;
        env.set_syntax(syntax);
        env.set_fuel(Some(RENDER_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", super::json::tojson);
        env.set_formatter(super::python::formatter);
        env.add_filter("string", super::python::string);
        env.add_test("iterable", super::python::is_iterable);
        env.add_test("sequence", super::python::is_sequence);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, text).map_err(|e| template_error(&source, &e))?;
        Ok(ChatTemplate { env, source, bos_token: bos_token.into(), eos_token: eos_token.into(), kwargs: serde_json::Map::new() })
    }

    /// The template a model's chat runs with: `file` (`--chat-template-file`)
    /// first, then `name` (`--chat-template`: a built-in's name, or a
    /// template given inline), then the GGUF's own, then the built-in the
    /// vocab's special tokens point to.
    pub fn for_model(tokenizer: &Tokenizer, model_path: &Path, name: Option<&str>, file: Option<&Path>) -> Result<ChatTemplate> {
        let (bos, eos) = special_texts(tokenizer);
        let (text, source) = if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
            (text, TemplateSource::File(path.to_path_buf()))
        } else if let Some(name) = name {
            match builtin::by_name(name) {
                Some((name, text)) => (text.to_string(), TemplateSource::Builtin { name, guessed: false }),
                None if name.contains("{%") || name.contains("{{") => (name.to_string(), TemplateSource::Inline),
                None => {
                    return Err(Error::InvalidArgument(format!(
                    "--chat-template '{name}': unknown template; built-ins: {} (or give a Jinja template, or --chat-template-file FILE)",
                    builtin::names().join(", ")
                )))
                }
            }
        } else if let Some(text) = tokenizer.chat_template() {
            (text.to_string(), TemplateSource::Gguf(model_path.to_path_buf()))
        } else {
            let name = builtin::guess(|t| tokenizer.token_id(t).is_some(), tokenizer.kind() == ModelKind::Spm);
            let (name, text) = builtin::by_name(name).expect("guess returns a built-in name");
            (text.to_string(), TemplateSource::Builtin { name, guessed: true })
        };
        ChatTemplate::new(text, source, &bos, &eos)
    }

    /// Variables for every render, as llama.cpp's `--chat-template-kwargs`
    /// (`{"enable_thinking": false}` turns Qwen3's thinking off).
    pub fn with_kwargs(mut self, kwargs: serde_json::Map<String, serde_json::Value>) -> ChatTemplate {
        self.kwargs = kwargs;
        self
    }

    pub fn kwargs(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.kwargs
    }

    pub fn source(&self) -> &TemplateSource {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// Renders `messages` (role and content).
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String> {
        self.render_value(Value::from(minijinja::value::Serde(messages)), opts, None)
    }

    /// Renders messages given as JSON (any fields a template reads: tool
    /// calls, content parts, ...), with `extra` variables (`tools`,
    /// `date_string`, ...) on top of the standard ones.
    pub fn render_json(
        &self,
        messages: &serde_json::Value,
        opts: &RenderOptions,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<String> {
        self.render_value(json_value(messages), opts, extra)
    }

    fn render_value(
        &self,
        messages: Value,
        opts: &RenderOptions,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<String> {
        let tmpl = self.env.get_template(NAME).map_err(|e| template_error(&self.source, &e))?;
        // What transformers passes: the messages, tools and documents (None
        // unless given), add_generation_prompt and the special tokens.
        let mut ctx: Vec<(String, Value)> = vec![
            ("messages".into(), messages),
            ("tools".into(), Value::from(())),
            ("documents".into(), Value::from(())),
            ("add_generation_prompt".into(), Value::from(opts.add_generation_prompt)),
            ("bos_token".into(), Value::from(self.bos_token.as_str())),
            ("eos_token".into(), Value::from(self.eos_token.as_str())),
        ];
        for (k, v) in self.kwargs.iter().chain(extra.into_iter().flatten()) {
            ctx.retain(|(name, _)| name != k);
            ctx.push((k.clone(), json_value(v)));
        }
        tmpl.render(Value::from_pairs(ctx)).map_err(|e| template_error(&self.source, &e))
    }
}

/// A JSON value as a template value (by hand: serde_json's
/// `arbitrary_precision`, which a dependency turns on, would make numbers
/// maps through serde).
pub(super) fn json_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::from(s.as_str()),
        J::Array(a) => Value::from(a.iter().map(json_value).collect::<Vec<_>>()),
        J::Object(o) => Value::from_pairs(o.iter().map(|(k, v)| (k.as_str(), json_value(v)))),
    }
}

/// The texts of BOS and EOS ("" where the vocab has none).
fn special_texts(tokenizer: &Tokenizer) -> (String, String) {
    let text = |id: Option<u32>| id.and_then(|id| tokenizer.token_text(id)).unwrap_or("").to_string();
    (text(tokenizer.bos()), text(tokenizer.eos()))
}

fn template_error(source: &TemplateSource, e: &JinjaError) -> Error {
    let what = match (e.detail(), e.line()) {
        _ if e.kind() == ErrorKind::OutOfFuel => {
            format!("rendering did more than the {RENDER_FUEL} units of work a chat template may do (a loop that does not end, or output that keeps growing?)")
        }
        (Some(d), Some(line)) if d.starts_with(RAISED) => format!("{d} (line {line})"),
        _ => e.to_string(),
    };
    Error::ChatTemplate { origin: source.to_string(), what }
}

const RAISED: &str = "the template raised an exception";

/// `raise_exception(message)`: the template refuses the conversation.
fn raise_exception(message: String) -> std::result::Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, format!("{RAISED}: {message}")))
}

/// `strftime_now(format)`: the local time, formatted as Python's strftime.
fn strftime_now(format: String) -> std::result::Result<Value, JinjaError> {
    use chrono::format::{Item, StrftimeItems};
    use std::fmt::Write;
    let items: Vec<Item<'_>> = StrftimeItems::new(&format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(JinjaError::new(ErrorKind::InvalidOperation, format!("strftime_now: invalid format {format:?}")));
    }
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format_with_items(items.into_iter()))
        .map_err(|_| JinjaError::new(ErrorKind::InvalidOperation, format!("strftime_now: cannot format {format:?}")))?;
    Ok(Value::from(out))
}
