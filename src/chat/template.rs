//! `ChatTemplate`: a Hugging Face chat template compiled by minijinja, set
//! up the way transformers renders it (`trim_blocks`, `lstrip_blocks`, loop
//! controls, `raise_exception`, `strftime_now`, its `tojson`, the Python
//! string and dict methods templates call, and Python's way of printing
//! values and of the `iterable` / `sequence` tests).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};

use super::builtin;
use super::conversation::Message;
use super::limits::{on_big_stack, MAX_TEMPLATE_BYTES, MAX_TEXT_BYTES, MAX_VALUE_DEPTH, RECURSION_LIMIT, RENDER_FUEL};
use super::{source_guard, text_filters, text_guard, value_guard};
use crate::error::{Error, Result};
use crate::tokenizer::{ModelKind, Tokenizer};

const NAME: &str = "chat_template";

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
    /// The template writes gpt-oss's harmony format ([`super::harmony`]).
    harmony: bool,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate").field("source", &self.source).finish()
    }
}

impl ChatTemplate {
    /// Compiles `text`. `bos_token`/`eos_token` are the texts the template
    /// sees as `bos_token` and `eos_token`. The template is untrusted: see
    /// [`super::limits`] for the bounds it is compiled and rendered within.
    pub fn new(text: String, source: TemplateSource, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let harmony = super::harmony::is_harmony_template(&text);
        let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(|e| template_error(&source, &e))?;
        let text = on_big_stack(|| source_guard::guarded_source(&text, syntax.clone()))
            .map_err(|e| thread_error(&source, e))?
            .map_err(|what| Error::ChatTemplate { origin: source.to_string(), what })?;
        let env = on_big_stack(|| {
            let mut env = Environment::new();
            env.set_syntax(syntax);
            env.set_fuel(Some(RENDER_FUEL));
            env.set_recursion_limit(RECURSION_LIMIT);
            env.set_unknown_method_callback(text_filters::unknown_method);
            env.add_filter("tojson", super::json::tojson);
            env.set_formatter(super::python::formatter);
            env.add_filter("string", super::python::string);
            env.add_filter("join", text_filters::join);
            env.add_filter("pprint", text_filters::pprint);
            env.add_filter(value_guard::VALUE_FILTER, value_guard::checked_value);
            env.add_filter(value_guard::NAMESPACE_VALUE_FILTER, value_guard::namespace_value);
            env.add_filter(text_guard::STR_FILTER, text_guard::str_filter);
            env.add_filter(text_guard::PRINTABLE_FILTER, text_guard::printable);
            env.add_filter(text_guard::COMPARED_FILTER, text_guard::compared);
            env.add_filter(text_guard::PRINTF_FILTER, text_filters::printf_format_string);
            env.add_function("debug", text_filters::debug);
            env.add_test("iterable", super::python::is_iterable);
            env.add_test("sequence", super::python::is_sequence);
            env.add_function("raise_exception", raise_exception);
            env.add_function("strftime_now", strftime_now);
            env.add_template_owned(NAME, text).map(|()| env)
        })
        .map_err(|e| thread_error(&source, e))?
        .map_err(|e| template_error(&source, &e))?;
        Ok(ChatTemplate { env, source, bos_token: bos_token.into(), eos_token: eos_token.into(), kwargs: serde_json::Map::new(), harmony })
    }

    /// The template a model's chat runs with: `file` (`--chat-template-file`)
    /// first, then `name` (`--chat-template`: a built-in's name, or a
    /// template given inline), then the GGUF's own, then the built-in the
    /// vocab's special tokens point to.
    pub fn for_model(tokenizer: &Tokenizer, model_path: &Path, name: Option<&str>, file: Option<&Path>) -> Result<ChatTemplate> {
        let (bos, eos) = special_texts(tokenizer);
        let (text, source) = if let Some(path) = file {
            (read_template(path)?, TemplateSource::File(path.to_path_buf()))
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

    /// Whether answers come in harmony's channels (gpt-oss).
    pub fn is_harmony(&self) -> bool {
        self.harmony
    }

    pub fn source(&self) -> &TemplateSource {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// Renders `messages` (role and content).
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String> {
        let messages = Value::from(minijinja::value::Serde(messages));
        on_big_stack(|| self.render_value(messages, opts, None)).map_err(|e| thread_error(&self.source, e))?
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
        let messages = json_value(messages, 0).ok_or_else(|| too_deep(&self.source, "messages"))?;
        on_big_stack(|| self.render_value(messages, opts, extra)).map_err(|e| thread_error(&self.source, e))?
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
            ctx.push((k.clone(), json_value(v, 0).ok_or_else(|| too_deep(&self.source, k))?));
        }
        let mut prompt = PromptWriter { bytes: Vec::new(), full: false };
        let rendered = tmpl.render_captured_to(Value::from_pairs(ctx), &mut prompt).map(drop);
        if prompt.full {
            let what = format!("the prompt would be longer than {} MiB (MAX_TEXT_BYTES)", MAX_TEXT_BYTES >> 20);
            return Err(Error::ChatTemplate { origin: self.source.to_string(), what });
        }
        rendered.map_err(|e| template_error(&self.source, &e))?;
        String::from_utf8(prompt.bytes).map_err(|_| Error::ChatTemplate { origin: self.source.to_string(), what: "the prompt is not UTF-8".into() })
    }
}

/// Where a render writes its prompt: refuses to grow it past
/// [`MAX_TEXT_BYTES`].
struct PromptWriter {
    bytes: Vec<u8>,
    /// A write was refused.
    full: bool,
}

impl io::Write for PromptWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > MAX_TEXT_BYTES {
            self.full = true;
            return Err(io::Error::other("the prompt is too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A JSON value as a template value (by hand: serde_json's
/// `arbitrary_precision`, which a dependency turns on, would make numbers
/// maps through serde); `None` if it is nested deeper than
/// [`MAX_VALUE_DEPTH`] (`depth`: its own depth).
pub(super) fn json_value(v: &serde_json::Value, depth: usize) -> Option<Value> {
    use serde_json::Value as J;
    if depth > MAX_VALUE_DEPTH {
        return None;
    }
    Some(match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::from(s.as_str()),
        J::Array(a) => Value::from(a.iter().map(|v| json_value(v, depth + 1)).collect::<Option<Vec<_>>>()?),
        J::Object(o) => {
            Value::from_pairs(o.iter().map(|(k, v)| Some((k.as_str(), json_value(v, depth + 1)?))).collect::<Option<Vec<_>>>()?)
        }
    })
}

fn too_deep(source: &TemplateSource, input: &str) -> Error {
    Error::ChatTemplate { origin: source.to_string(), what: format!("{input}: a value nested more than {MAX_VALUE_DEPTH} levels deep (MAX_VALUE_DEPTH)") }
}

fn thread_error(source: &TemplateSource, e: io::Error) -> Error {
    Error::ChatTemplate { origin: source.to_string(), what: format!("cannot start the thread templates run on: {e}") }
}

/// The text of a template file; only the first bytes past
/// [`MAX_TEMPLATE_BYTES`] of a longer one (compiling refuses it).
fn read_template(path: &Path) -> Result<String> {
    use std::io::Read;
    let io_error = |e| Error::Io { path: path.to_path_buf(), source: e };
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(MAX_TEMPLATE_BYTES as u64 + 1).read_to_end(&mut bytes)).map_err(io_error)?;
    if bytes.len() > MAX_TEMPLATE_BYTES {
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    String::from_utf8(bytes).map_err(|e| io_error(io::Error::new(io::ErrorKind::InvalidData, e)))
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

/// The longest `strftime_now` format (real templates use "%d %b %Y"):
/// each specifier can print tens of bytes.
const MAX_STRFTIME_FORMAT_BYTES: usize = 4096;

const RAISED: &str = "the template raised an exception";

/// `raise_exception(message)`: the template refuses the conversation.
fn raise_exception(state: &minijinja::State, message: &Value) -> std::result::Result<Value, JinjaError> {
    let message = super::python::str_of(state, message)?;
    Err(JinjaError::new(ErrorKind::InvalidOperation, format!("{RAISED}: {message}")))
}

/// `strftime_now(format)`: the local time, formatted as Python's strftime.
fn strftime_now(format: &str) -> std::result::Result<Value, JinjaError> {
    use chrono::format::{Item, StrftimeItems};
    use std::fmt::Write;
    if format.len() > MAX_STRFTIME_FORMAT_BYTES {
        return Err(JinjaError::new(ErrorKind::InvalidOperation, format!("strftime_now: a format longer than {MAX_STRFTIME_FORMAT_BYTES} bytes")));
    }
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(JinjaError::new(ErrorKind::InvalidOperation, format!("strftime_now: invalid format {format:?}")));
    }
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format_with_items(items.into_iter()))
        .map_err(|_| JinjaError::new(ErrorKind::InvalidOperation, format!("strftime_now: cannot format {format:?}")))?;
    Ok(Value::from(out))
}
