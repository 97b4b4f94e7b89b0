//! The OpenAI request bodies `moe serve` accepts, read from JSON by hand so
//! that every refusal names the field: a field we do not support is a 400
//! naming it (never silently ignored), a wrong type a 400 naming the field
//! and the type expected. Errors are OpenAI's error object,
//! `{"error": {"message", "type", "param", "code"}}`.

use serde_json::{json, Map, Value};

use crate::sampler::SamplerParams;

/// An error response: its HTTP status and OpenAI's error object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`,
    /// `not_found_error`, `server_error`, `unavailable_error`.
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError { status: 400, message: message.into(), kind: "invalid_request_error", param: Some(param.into()), code: None }
    }

    pub fn new(status: u16, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), kind, param: None, code }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

/// How to generate, from a request (`None`: the server's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub max_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
    pub ignore_eos: bool,
}

impl Params {
    /// The sampler's parameters: the request's where given, else `defaults`;
    /// `random_seed` when neither has a seed.
    pub fn sampling(&self, defaults: &SamplerParams, random_seed: impl FnOnce() -> u64) -> SamplerParams {
        SamplerParams {
            temp: self.temperature.unwrap_or(defaults.temp),
            top_k: self.top_k.unwrap_or(defaults.top_k),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            min_p: self.min_p.unwrap_or(defaults.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(defaults.repeat_penalty),
            repeat_last_n: defaults.repeat_last_n,
            presence_penalty: self.presence_penalty.unwrap_or(defaults.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(defaults.frequency_penalty),
            seed: self.seed.unwrap_or_else(random_seed),
        }
    }
}

/// A chat request: the messages (contents made plain text) and the extra
/// variables its template sees (`tools`, `chat_template_kwargs`' entries).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Value,
    pub vars: Map<String, Value>,
    pub params: Params,
}

/// A completion request: the raw prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: String,
    pub params: Params,
}

/// The fields both endpoints read (besides their own).
const COMMON: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "user",
    "logprobs",
    "ignore_eos",
];

/// `POST /v1/chat/completions`.
pub fn chat_request(body: &Value) -> Result<ChatRequest, ApiError> {
    let obj = object(body)?;
    check_fields(obj, &["messages", "max_completion_tokens", "tools", "tool_choice", "chat_template_kwargs", "response_format", "parallel_tool_calls"])?;
    let mut params = params(obj)?;
    if let Some(n) = max_tokens(obj, "max_completion_tokens")? {
        params.max_tokens = Some(n);
    }
    let messages = match obj.get("messages") {
        Some(Value::Array(list)) if !list.is_empty() => Value::Array(list.iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<_, _>>()?),
        Some(Value::Array(_)) => return Err(ApiError::invalid("messages", "'messages' is empty")),
        Some(_) => return Err(ApiError::invalid("messages", "'messages' must be an array of messages")),
        None => return Err(ApiError::invalid("messages", "'messages' is required")),
    };
    let mut vars = Map::new();
    match obj.get("tools") {
        None | Some(Value::Null) => {}
        Some(tools @ Value::Array(_)) => {
            vars.insert("tools".into(), tools.clone());
        }
        Some(_) => return Err(ApiError::invalid("tools", "'tools' must be an array")),
    }
    match obj.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "auto" || s == "none" => {}
        Some(_) => return Err(ApiError::invalid("tool_choice", "only 'auto' and 'none' are supported for 'tool_choice'")),
    }
    match obj.get("parallel_tool_calls") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(_) => return Err(ApiError::invalid("parallel_tool_calls", "'parallel_tool_calls' must be a boolean")),
    }
    match obj.get("chat_template_kwargs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(kwargs)) => vars.extend(kwargs.iter().map(|(k, v)| (k.clone(), v.clone()))),
        Some(_) => return Err(ApiError::invalid("chat_template_kwargs", "'chat_template_kwargs' must be an object")),
    }
    match obj.get("response_format") {
        None | Some(Value::Null) => {}
        Some(Value::Object(f)) if f.get("type").and_then(Value::as_str) == Some("text") && f.len() == 1 => {}
        Some(_) => return Err(ApiError::invalid("response_format", "only {\"type\": \"text\"} is supported for 'response_format'")),
    }
    Ok(ChatRequest { model: opt_string(obj, "model")?, messages, vars, params })
}

/// `POST /v1/completions`.
pub fn completion_request(body: &Value) -> Result<CompletionRequest, ApiError> {
    let obj = object(body)?;
    check_fields(obj, &["prompt", "echo", "suffix"])?;
    if obj.get("echo").is_some_and(|e| e != &Value::Bool(false) && !e.is_null()) {
        return Err(ApiError::invalid("echo", "'echo' is not supported"));
    }
    if obj.get("suffix").is_some_and(|s| !s.is_null()) {
        return Err(ApiError::invalid("suffix", "'suffix' is not supported"));
    }
    let prompt = match obj.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_string(),
        Some(Value::Array(_)) => return Err(ApiError::invalid("prompt", "'prompt' must be one string (several prompts in one request are not supported)")),
        Some(_) => return Err(ApiError::invalid("prompt", "'prompt' must be a string")),
        None => return Err(ApiError::invalid("prompt", "'prompt' is required")),
    };
    Ok(CompletionRequest { model: opt_string(obj, "model")?, prompt, params: params(obj)? })
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| ApiError::new(400, "invalid_request_error", None, "the request body must be a JSON object"))
}

/// Refuses a field that is neither common nor one of `own`.
fn check_fields(obj: &Map<String, Value>, own: &[&str]) -> Result<(), ApiError> {
    match obj.keys().find(|k| !COMMON.contains(&k.as_str()) && !own.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid(k, format!("'{k}' is not supported by this server"))),
        None => Ok(()),
    }
}

fn params(obj: &Map<String, Value>) -> Result<Params, ApiError> {
    let mut p = Params {
        max_tokens: max_tokens(obj, "max_tokens")?,
        temperature: opt_f32(obj, "temperature")?,
        top_p: opt_f32(obj, "top_p")?,
        min_p: opt_f32(obj, "min_p")?,
        repeat_penalty: opt_f32(obj, "repeat_penalty")?,
        ..Params::default()
    };
    if let Some(k) = opt_i64(obj, "top_k")? {
        p.top_k = Some(i32::try_from(k).map_err(|_| ApiError::invalid("top_k", "'top_k' is out of range"))?);
    }
    p.seed = match obj.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => match (v.as_u64(), v.as_i64()) {
            (Some(s), _) => Some(s),
            (None, Some(-1)) => None,
            _ => return Err(ApiError::invalid("seed", "'seed' must be a non-negative integer (or -1: random)")),
        },
    };
    p.stream = opt_bool(obj, "stream")?.unwrap_or(false);
    p.ignore_eos = opt_bool(obj, "ignore_eos")?.unwrap_or(false);
    match obj.get("stream_options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            if let Some(k) = o.keys().find(|k| *k != "include_usage") {
                return Err(ApiError::invalid("stream_options", format!("'stream_options.{k}' is not supported")));
            }
            p.include_usage = opt_bool(o, "include_usage")?.unwrap_or(false);
        }
        Some(_) => return Err(ApiError::invalid("stream_options", "'stream_options' must be an object")),
    }
    p.stop = match obj.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && a.len() <= MAX_STOP => a.iter().filter_map(|s| s.as_str().map(String::from)).collect(),
        Some(_) => return Err(ApiError::invalid("stop", format!("'stop' must be a string or an array of at most {MAX_STOP} strings"))),
    };
    for (name, field) in [("presence_penalty", &mut p.presence_penalty), ("frequency_penalty", &mut p.frequency_penalty)] {
        *field = opt_f32(obj, name)?;
        if field.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
            return Err(ApiError::invalid(name, format!("'{name}' must be between -2 and 2")));
        }
    }
    if opt_i64(obj, "n")?.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n", "only one choice per request ('n': 1) is supported"));
    }
    match obj.get("logprobs") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(_) => return Err(ApiError::invalid("logprobs", "'logprobs' is not supported")),
    }
    if obj.get("user").is_some_and(|u| !u.is_string() && !u.is_null()) {
        return Err(ApiError::invalid("user", "'user' must be a string"));
    }
    Ok(p)
}

/// The most stop strings a request may give (OpenAI's limit).
pub const MAX_STOP: usize = 4;

/// A message with its content made plain text (a list of text parts is
/// joined; other parts are refused).
fn message(i: usize, m: &Value) -> Result<Value, ApiError> {
    let param = format!("messages[{i}]");
    let Some(obj) = m.as_object() else { return Err(ApiError::invalid(&param, format!("'{param}' must be an object")) ) };
    if !obj.get("role").is_some_and(Value::is_string) {
        return Err(ApiError::invalid(&format!("{param}.role"), format!("'{param}.role' must be a string")));
    }
    let mut obj = obj.clone();
    let content = match obj.get("content") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::invalid(
                            &format!("{param}.content[{j}]"),
                            format!("content parts of type {} are not supported (text only)", kind.unwrap_or("(none)")),
                        ))
                    }
                }
            }
            Value::String(text)
        }
        Some(_) => return Err(ApiError::invalid(&format!("{param}.content"), format!("'{param}.content' must be a string or an array of text parts"))),
    };
    obj.insert("content".into(), content);
    Ok(Value::Object(obj))
}

fn opt_f32(obj: &Map<String, Value>, name: &str) -> Result<Option<f32>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().filter(|x| x.is_finite()).map(|x| Some(x as f32)).ok_or_else(|| ApiError::invalid(name, format!("'{name}' must be a number"))),
    }
}

fn opt_i64(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| ApiError::invalid(name, format!("'{name}' must be an integer"))),
    }
}

fn opt_usize(obj: &Map<String, Value>, name: &str) -> Result<Option<usize>, ApiError> {
    match opt_i64(obj, name)? {
        None | Some(-1) => Ok(None),
        Some(n) => usize::try_from(n).map(Some).map_err(|_| ApiError::invalid(name, format!("'{name}' must be a non-negative integer (or -1)"))),
    }
}

/// A token budget: at least 1 (-1 or none: the server's default).
fn max_tokens(obj: &Map<String, Value>, name: &str) -> Result<Option<usize>, ApiError> {
    match opt_usize(obj, name)? {
        Some(0) => Err(ApiError::invalid(name, format!("'{name}' must be at least 1 (or -1: as many as fit)"))),
        n => Ok(n),
    }
}

fn opt_bool(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(name, format!("'{name}' must be a boolean"))),
    }
}

fn opt_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(name, format!("'{name}' must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_chat_request_and_names_what_it_refuses() {
        let r = chat_request(&json!({
            "model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
            "max_completion_tokens": 5, "temperature": 0, "stop": ["x", "y"], "stream": true,
            "stream_options": {"include_usage": true}, "seed": 7, "n": 1, "presence_penalty": 0,
        }))
        .unwrap();
        assert_eq!(r.messages, json!([{"role": "user", "content": "ab"}]));
        assert_eq!(r.params.max_tokens, Some(5));
        assert_eq!((r.params.stream, r.params.include_usage, r.params.seed), (true, true, Some(7)));
        assert_eq!(r.params.stop, ["x", "y"]);
        let refused = |body: Value| chat_request(&body).unwrap_err();
        let e = refused(json!({"messages": [{"role": "user", "content": "a"}], "functions": []}));
        assert_eq!((e.status, e.param.as_deref()), (400, Some("functions")));
        let e = refused(json!({"messages": [{"role": "user", "content": "a"}], "temperature": "hot"}));
        assert_eq!((e.param.as_deref(), e.message.as_str()), (Some("temperature"), "'temperature' must be a number"));
        assert_eq!(refused(json!({"messages": []})).param.as_deref(), Some("messages"));
        assert_eq!(refused(json!({"messages": [{"content": "a"}]})).param.as_deref(), Some("messages[0].role"));
        assert_eq!(refused(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})).param.as_deref(), Some("messages[0].content[0]"));
        assert_eq!(refused(json!({"messages": [{"role": "user", "content": "a"}], "presence_penalty": 2.5})).param.as_deref(), Some("presence_penalty"));
        assert_eq!(refused(json!({"messages": [{"role": "user", "content": "a"}], "n": 2})).param.as_deref(), Some("n"));
        assert_eq!(refused(json!([1])).status, 400);
    }

    #[test]
    fn reads_a_completion_request() {
        let r = completion_request(&json!({"prompt": "Once", "max_tokens": -1, "seed": -1})).unwrap();
        assert_eq!((r.prompt.as_str(), r.params.max_tokens, r.params.seed), ("Once", None, None));
        assert_eq!(completion_request(&json!({"prompt": ["a", "b"]})).unwrap_err().param.as_deref(), Some("prompt"));
        assert_eq!(completion_request(&json!({"prompt": "a", "echo": true})).unwrap_err().param.as_deref(), Some("echo"));
        assert_eq!(completion_request(&json!({"prompt": "a", "messages": []})).unwrap_err().param.as_deref(), Some("messages"));
        assert_eq!(completion_request(&json!({"prompt": "a", "max_tokens": 0})).unwrap_err().param.as_deref(), Some("max_tokens"));
    }
}
