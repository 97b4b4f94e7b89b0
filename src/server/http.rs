//! The HTTP side of `moe serve` (axum on tokio): the OpenAI endpoints,
//! `/health` and `/metrics`. Handlers render and tokenize the prompt, check
//! it against the slots' context, and hand a [`Job`] to the engine thread;
//! answers stream back as server-sent events or are gathered into one JSON
//! body.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use crossbeam::channel::Sender;
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::api::{self, ApiError, Params};
use super::engine::{Event, Job, Usage};
use super::metrics::Metrics;
use crate::chat::harmony::{Channel, HarmonySplitter};
use crate::chat::{encode_rendered, ChatTemplate, RenderOptions};
use crate::sampler::SamplerParams;
use crate::tokenizer::Tokenizer;

/// What the server is set to (from the command line).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The id `/v1/models` lists and requests may name.
    pub model_id: String,
    pub api_key: Option<String>,
    pub parallel: usize,
    /// Requests that may wait for a slot; more get a 503.
    pub queue: usize,
    pub n_ctx_per_slot: usize,
    /// Sampling defaults (the command line's), for fields a request leaves out.
    pub defaults: SamplerParams,
    /// Tokens an answer may have when a request does not say (`None`: until
    /// the end of the turn or of the context).
    pub default_max_tokens: Option<usize>,
    /// Largest request body (bytes).
    pub max_body_bytes: usize,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and its body.
    pub read_timeout: std::time::Duration,
}

/// What the loaded model gives the handlers.
pub struct Ready {
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
    /// Tokens that end a chat answer (end of generation and of turn).
    pub chat_stops: Vec<u32>,
}

pub struct AppState {
    pub cfg: ServerConfig,
    pub ready: OnceLock<Ready>,
    pub jobs: Sender<Job>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: Arc<AppState>) -> Router {
    let body_timeout = tower_http::timeout::RequestBodyTimeoutLayer::new(state.cfg.read_timeout);
    Router::new()
        .route("/", get(chat_page))
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/completions", post(completions))
        .fallback(not_found)
        .layer(body_timeout)
        .with_state(state)
}

fn error_response(state: &AppState, e: ApiError) -> Response {
    state.metrics.refused.fetch_add(1, Ordering::Relaxed);
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(e.body())).into_response()
}

async fn not_found(State(state): State<Arc<AppState>>, req: Request) -> Response {
    error_response(&state, ApiError::new(404, "not_found_error", None, format!("no endpoint {} {}", req.method(), req.uri().path())))
}

/// The chat page: one self-contained file (no build step, nothing fetched
/// from elsewhere), streaming from `/v1/chat/completions`.
pub const CHAT_PAGE: &str = include_str!("chat_page.html");

async fn chat_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"),
        ],
        CHAT_PAGE,
    )
        .into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.ready.get() {
        Some(_) => (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "loading model", "error": {"message": "loading the model", "type": "unavailable_error", "param": null, "code": 503}}))).into_response(),
    }
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return error_response(&state, e);
    }
    axum::Json(json!({"object": "list", "data": [{"id": state.cfg.model_id, "object": "model", "created": 0, "owned_by": "moe"}]})).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return error_response(&state, e);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

/// `--api-key`: `Authorization: Bearer KEY`.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.cfg.api_key else { return Ok(()) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(key.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(401, "authentication_error", Some("invalid_api_key"), "a valid API key is required: Authorization: Bearer KEY"))
    }
}

/// The parts every generating request goes through: auth, readiness, the
/// body as JSON.
async fn preamble<'s>(state: &'s AppState, headers: &HeaderMap, body: Body) -> Result<(&'s Ready, Value), ApiError> {
    authorize(state, headers)?;
    let ready = state.ready.get().ok_or_else(|| ApiError::new(503, "unavailable_error", None, "the model is still loading"))?;
    let bytes: Bytes = axum::body::to_bytes(body, state.cfg.max_body_bytes).await.map_err(|_| {
        ApiError::new(413, "invalid_request_error", None, format!("the request body is larger than {} bytes (or could not be read)", state.cfg.max_body_bytes))
    })?;
    let json = serde_json::from_slice(&bytes).map_err(|e| ApiError::new(400, "invalid_request_error", None, format!("the request body is not valid JSON: {e}")))?;
    Ok((ready, json))
}

fn check_model(state: &AppState, model: Option<&str>) -> Result<(), ApiError> {
    match model {
        Some(m) if m != state.cfg.model_id => Err(ApiError {
            status: 404,
            message: format!("the model '{m}' does not exist; this server runs '{}'", state.cfg.model_id),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
        }),
        _ => Ok(()),
    }
}

async fn chat_completions(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match chat_job(&state, &headers, body).await {
        Ok((job, rx, params)) => answer(&state, job, rx, params, Kind::Chat).await,
        Err(e) => error_response(&state, e),
    }
}

async fn completions(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match completion_job(&state, &headers, body).await {
        Ok((job, rx, params)) => answer(&state, job, rx, params, Kind::Completion).await,
        Err(e) => error_response(&state, e),
    }
}

type Prepared = (Job, mpsc::UnboundedReceiver<Event>, Params);

async fn chat_job(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Result<Prepared, ApiError> {
    let (ready, json) = preamble(state, headers, body).await?;
    let req = api::chat_request(&json)?;
    check_model(state, req.model.as_deref())?;
    let st = state.clone();
    let (messages, vars) = (req.messages, req.vars);
    let prompt = tokio::task::spawn_blocking(move || {
        let ready = st.ready.get().expect("ready before a job");
        let text = ready.template.render_json(&messages, &RenderOptions { add_generation_prompt: true }, Some(&vars))?;
        encode_rendered(&ready.template, &ready.tokenizer, &text)
    })
    .await
    .map_err(|e| ApiError::new(500, "server_error", None, format!("rendering the prompt failed: {e}")))?
    .map_err(|e| ApiError::invalid("messages", format!("the messages cannot be rendered: {e}")))?;
    let stops = if req.params.ignore_eos { Vec::new() } else { ready.chat_stops.clone() };
    job(state, prompt, req.params, stops)
}

async fn completion_job(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Result<Prepared, ApiError> {
    let (ready, json) = preamble(state, headers, body).await?;
    let req = api::completion_request(&json)?;
    check_model(state, req.model.as_deref())?;
    let tok = ready.tokenizer.clone();
    let prompt_text = req.prompt;
    let prompt = tokio::task::spawn_blocking(move || tok.encode(&prompt_text, true, true))
        .await
        .map_err(|e| ApiError::new(500, "server_error", None, format!("tokenizing the prompt failed: {e}")))?
        .map_err(|e| ApiError::invalid("prompt", format!("the prompt cannot be tokenized: {e}")))?;
    let stops = if req.params.ignore_eos { Vec::new() } else { ready.tokenizer.eog_ids().to_vec() };
    job(state, prompt, req.params, stops)
}

/// The job for `prompt`, admitted to the queue, or why not.
fn job(state: &AppState, prompt: Vec<u32>, params: Params, stop_tokens: Vec<u32>) -> Result<Prepared, ApiError> {
    let n_ctx = state.cfg.n_ctx_per_slot;
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt", "the prompt is empty"));
    }
    if prompt.len() >= n_ctx {
        return Err(ApiError {
            status: 400,
            message: format!("the prompt is {} tokens and a slot's context holds {n_ctx}; shorten it (or restart with a larger -c or a smaller --parallel)", prompt.len()),
            kind: "invalid_request_error",
            param: Some("messages".into()),
            code: Some("context_length_exceeded"),
        });
    }
    let room = n_ctx - prompt.len();
    let max_tokens = params.max_tokens.or(state.cfg.default_max_tokens).unwrap_or(room).min(room);
    let m = &state.metrics;
    let waiting = m.queued.load(Ordering::Relaxed) + m.active.load(Ordering::Relaxed);
    if waiting >= (state.cfg.parallel + state.cfg.queue) as u64 {
        return Err(ApiError::new(
            503,
            "unavailable_error",
            Some("server_busy"),
            format!("all {} slots are busy and {} requests are waiting; try again later", state.cfg.parallel, state.cfg.queue),
        ));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let sampling = params.sampling(&state.cfg.defaults, random_seed);
    let job = Job { prompt, max_tokens, sampling, stop: params.stop.clone(), stop_tokens, events: tx };
    Ok((job, rx, params))
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

/// Sends the job to the engine and answers: a stream of events, or one body.
async fn answer(state: &Arc<AppState>, job: Job, rx: mpsc::UnboundedReceiver<Event>, params: Params, kind: Kind) -> Response {
    state.metrics.queued.fetch_add(1, Ordering::Relaxed);
    if state.jobs.send(job).is_err() {
        state.metrics.queued.fetch_sub(1, Ordering::Relaxed);
        return error_response(state, ApiError::new(503, "unavailable_error", None, "the server is shutting down"));
    }
    // gpt-oss (harmony): the final channel is the content, the rest the
    // reasoning, as llama-server's `reasoning_content`.
    let harmony = kind == Kind::Chat && state.ready.get().is_some_and(|r| r.template.is_harmony());
    let meta = Meta { id: next_id(kind), created: now(), model: state.cfg.model_id.clone(), kind, harmony };
    if params.stream {
        Sse::new(sse_stream(rx, meta, params.include_usage)).keep_alive(KeepAlive::default()).into_response()
    } else {
        // A client that leaves drops this future, and with it `rx`: the
        // engine then cancels the job.
        match gather(rx, meta).await {
            Ok(body) => axum::Json(body).into_response(),
            Err(e) => error_response(state, e),
        }
    }
}

struct Meta {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
    /// Answers in harmony's channels (see [`channel_deltas`]).
    harmony: bool,
}

/// A harmony answer's next text as deltas: the final channel as
/// `content`, the analysis and commentary as `reasoning_content`.
fn channel_deltas(splitter: &mut HarmonySplitter, text: &str, finish: bool) -> Vec<Value> {
    splitter
        .take(text, finish)
        .into_iter()
        .map(|(channel, t)| match channel {
            Channel::Final => json!({"content": t}),
            _ => json!({"reasoning_content": t}),
        })
        .collect()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn next_id(kind: Kind) -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(1);
    let prefix = if kind == Kind::Chat { "chatcmpl" } else { "cmpl" };
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.reused_tokens},
    })
}

/// The whole answer as one OpenAI response body, or the engine's failure.
async fn gather(mut rx: mpsc::UnboundedReceiver<Event>, meta: Meta) -> Result<Value, ApiError> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut splitter = meta.harmony.then(HarmonySplitter::new);
    let mut take = |t: &str, finish: bool, text: &mut String, reasoning: &mut String| match splitter.as_mut() {
        Some(h) => {
            for (channel, part) in h.take(t, finish) {
                match channel {
                    Channel::Final => text.push_str(&part),
                    _ => reasoning.push_str(&part),
                }
            }
        }
        None => text.push_str(t),
    };
    let usage = loop {
        match rx.recv().await {
            Some(Event::Text(t)) => take(&t, false, &mut text, &mut reasoning),
            Some(Event::Done(u)) => break u,
            Some(Event::Failed(e)) => return Err(ApiError::new(500, "server_error", None, e)),
            None => return Err(ApiError::new(500, "server_error", None, "the engine stopped")),
        }
    };
    take("", true, &mut text, &mut reasoning);
    let mut message = json!({"role": "assistant", "content": text});
    if meta.harmony {
        message["reasoning_content"] = json!(reasoning);
    }
    let choice = match meta.kind {
        Kind::Chat => json!({"index": 0, "message": message, "logprobs": null, "finish_reason": usage.finish.as_str()}),
        Kind::Completion => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": usage.finish.as_str()}),
    };
    let object = if meta.kind == Kind::Chat { "chat.completion" } else { "text_completion" };
    Ok(json!({
        "id": meta.id, "object": object, "created": meta.created, "model": meta.model,
        "choices": [choice], "usage": usage_json(&usage),
        "timings": timings(&usage),
    }))
}

/// llama-server's `timings` (prompt and generation speed).
fn timings(u: &Usage) -> Value {
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    json!({
        "prompt_n": u.prompt_tokens - u.reused_tokens, "prompt_ms": u.prompt_s * 1e3,
        "prompt_per_second": rate(u.prompt_tokens - u.reused_tokens, u.prompt_s),
        "predicted_n": u.completion_tokens, "predicted_ms": u.generation_s * 1e3,
        "predicted_per_second": rate(u.completion_tokens, u.generation_s),
        "cache_n": u.reused_tokens,
    })
}

/// The answer as server-sent events, OpenAI's chunks, ending in `[DONE]`.
fn sse_stream(rx: mpsc::UnboundedReceiver<Event>, meta: Meta, include_usage: bool) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct S {
        rx: mpsc::UnboundedReceiver<Event>,
        meta: Meta,
        include_usage: bool,
        /// Events still to send before reading more (the role chunk first).
        queue: std::collections::VecDeque<SseEvent>,
        done: bool,
        splitter: Option<HarmonySplitter>,
    }
    let splitter = meta.harmony.then(HarmonySplitter::new);
    let mut s = S { rx, meta, include_usage, queue: Default::default(), done: false, splitter };
    if s.meta.kind == Kind::Chat {
        s.queue.push_back(chunk(&s.meta, json!({"role": "assistant", "content": ""}), None));
    }
    stream::unfold(s, |mut s| async move {
        loop {
            if let Some(e) = s.queue.pop_front() {
                return Some((Ok(e), s));
            }
            if s.done {
                return None;
            }
            match s.rx.recv().await {
                Some(Event::Text(t)) => match s.splitter.as_mut() {
                    Some(h) => {
                        for d in channel_deltas(h, &t, false) {
                            s.queue.push_back(chunk(&s.meta, d, None));
                        }
                    }
                    None => s.queue.push_back(chunk(&s.meta, json!({"content": t}), None)),
                },
                Some(Event::Done(u)) => {
                    if let Some(h) = s.splitter.as_mut() {
                        for d in channel_deltas(h, "", true) {
                            s.queue.push_back(chunk(&s.meta, d, None));
                        }
                    }
                    let mut last = chunk_json(&s.meta, json!({}), Some(u.finish.as_str()));
                    last["timings"] = timings(&u);
                    s.queue.push_back(SseEvent::default().data(last.to_string()));
                    if s.include_usage {
                        let usage = json!({"id": s.meta.id, "object": object_of(&s.meta), "created": s.meta.created, "model": s.meta.model, "choices": [], "usage": usage_json(&u)});
                        s.queue.push_back(SseEvent::default().data(usage.to_string()));
                    }
                    s.queue.push_back(SseEvent::default().data("[DONE]"));
                    s.done = true;
                }
                Some(Event::Failed(e)) => {
                    s.queue.push_back(SseEvent::default().data(ApiError::new(500, "server_error", None, e).body().to_string()));
                    s.done = true;
                }
                None => s.done = true,
            }
        }
    })
}

fn object_of(meta: &Meta) -> &'static str {
    if meta.kind == Kind::Chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    }
}

fn chunk_json(meta: &Meta, delta: Value, finish: Option<&str>) -> Value {
    let choice = match meta.kind {
        Kind::Chat => json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}),
        Kind::Completion => json!({"index": 0, "text": delta.get("content").and_then(Value::as_str).unwrap_or(""), "logprobs": null, "finish_reason": finish}),
    };
    json!({"id": meta.id, "object": object_of(meta), "created": meta.created, "model": meta.model, "choices": [choice]})
}

fn chunk(meta: &Meta, delta: Value, finish: Option<&str>) -> SseEvent {
    SseEvent::default().data(chunk_json(meta, delta, finish).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::engine::Finish;
    use futures_util::StreamExt;

    fn meta(harmony: bool) -> Meta {
        Meta { id: "chatcmpl-test".into(), created: 0, model: "m".into(), kind: Kind::Chat, harmony }
    }

    fn events(pieces: &[&str]) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        for p in pieces {
            tx.send(Event::Text(p.to_string())).unwrap();
        }
        let usage = Usage { prompt_tokens: 5, reused_tokens: 0, completion_tokens: 9, finish: Finish::Stop, generation_s: 0.1, prompt_s: 0.1 };
        tx.send(Event::Done(usage)).unwrap();
        rx
    }

    const ANSWER: [&str; 4] = ["<|channel|>analysis<|mess", "age|>Two plus two.", "<|end|><|start|>assistant<|channel|>final<|message|>It is", " 4."];

    /// A harmony answer: the final channel is the message's content, the
    /// analysis its `reasoning_content`, whole or streamed.
    #[test]
    fn harmony_channels_become_content_and_reasoning() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let body = rt.block_on(gather(events(&ANSWER), meta(true))).unwrap();
        let m = &body["choices"][0]["message"];
        assert_eq!((m["content"].as_str(), m["reasoning_content"].as_str()), (Some("It is 4."), Some("Two plus two.")), "{body}");
        // Other templates: the text as it came.
        let body = rt.block_on(gather(events(&["a", "b"]), meta(false))).unwrap();
        assert_eq!(body["choices"][0]["message"], json!({"role": "assistant", "content": "ab"}));
        // Streamed: deltas per channel.
        let chunks: Vec<String> = rt.block_on(sse_stream(events(&ANSWER), meta(true), false).map(|e| format!("{:?}", e.unwrap())).collect::<Vec<_>>());
        let all = chunks.join("\n");
        for want in [r#"\"reasoning_content\":\"Two plus two.\""#, r#"\"content\":\"It is\""#, r#"\"content\":\" 4.\""#] {
            assert!(all.contains(want), "{want} in {all}");
        }
    }
}
