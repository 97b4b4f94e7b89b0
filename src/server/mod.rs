//! `moe serve`: an OpenAI-compatible HTTP server (`/v1/chat/completions`,
//! `/v1/completions`, `/v1/models`, `/health`, `/metrics`), as llama-server
//! and ollama expose it, so editors, chat apps and the `openai` package can
//! use a local model.
//!
//! - [`api`]: the request bodies, and the OpenAI error object for each
//!   refusal (naming the field).
//! - [`http`]: the handlers (axum on tokio): prompt rendering and
//!   tokenizing, admission to the queue, streaming (server-sent events).
//! - [`engine`]: the engine thread, its `--parallel` slots and their KV
//!   caches.
//! - [`metrics`]: the counters of `/metrics`.
//!
//! [`serve`] binds the address first (so a busy port fails at once), then
//! loads the model on the engine thread while `/health` answers 503.

pub mod api;
mod connections;
pub mod engine;
pub mod http;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use crate::chat::ChatTemplate;
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

pub use engine::{Event, Finish, Job, Loaded, Usage};
pub use http::{AppState, Ready, ServerConfig};
pub use metrics::Metrics;

/// What the loader gives the server: the engine's model and the prompt side.
pub struct LoadedModel {
    pub engine: Loaded,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
}

/// Serves until Ctrl-C or SIGTERM: stops accepting, lets the answers in
/// flight finish, and returns. `load` runs on the engine thread;
/// `on_listening` is told the bound address, `on_ready` when the model is
/// loaded.
pub fn serve(
    cfg: ServerConfig,
    addr: &str,
    load: impl FnOnce() -> Result<LoadedModel> + Send + 'static,
    on_listening: impl FnOnce(SocketAddr),
    on_ready: impl FnOnce() + Send + 'static,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("moe-http")
        .enable_all()
        .build()
        .map_err(|e| Error::Io { path: "<tokio runtime>".into(), source: e })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::InvalidArgument(format!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr().map_err(|e| Error::Io { path: addr.into(), source: e })?;
        on_listening(local);
        let (jobs_tx, jobs_rx) = crossbeam::channel::unbounded();
        let metrics = Arc::new(Metrics::default());
        let state = Arc::new(AppState { cfg: cfg.clone(), ready: OnceLock::new(), jobs: jobs_tx, metrics: metrics.clone() });
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<Error>();
        let engine_state = state.clone();
        let parallel = cfg.parallel;
        let engine = std::thread::Builder::new()
            .name("moe-engine".into())
            .spawn(move || {
                let loaded = match load() {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = failed_tx.send(e);
                        return Ok(());
                    }
                };
                let tokenizer = Arc::new(loaded.tokenizer);
                let chat_stops = crate::chat::stop_tokens(&loaded.template, &tokenizer);
                let _ = engine_state.ready.set(Ready { tokenizer: tokenizer.clone(), template: loaded.template, chat_stops });
                drop(engine_state);
                on_ready();
                engine::run(loaded.engine, tokenizer, parallel, jobs_rx, metrics)
            })
            .map_err(|e| Error::Io { path: "<engine thread>".into(), source: e })?;
        let app = http::router(state);
        let load_error = Arc::new(std::sync::Mutex::new(None));
        let slot = load_error.clone();
        let shutdown = async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                Ok(e) = failed_rx => if let Ok(mut slot) = slot.lock() { *slot = Some(e) },
            }
        };
        connections::accept(listener, app, &cfg, shutdown).await;
        if let Some(e) = load_error.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        // The router (and with it the job sender) is gone: the engine ends
        // once its slots are done.
        tokio::task::spawn_blocking(move || engine.join())
            .await
            .map_err(|e| Error::InvalidArgument(format!("the engine thread: {e}")))?
            .map_err(|_| Error::InvalidArgument("the engine thread panicked".into()))?
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
