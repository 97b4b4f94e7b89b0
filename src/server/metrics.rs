//! The counters `GET /metrics` reports, in Prometheus' text format: a
//! running server's version of `--stats`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::engine::Usage;

#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered (completed), refused (4xx/5xx), cancelled (the
    /// client left).
    pub requests: AtomicU64,
    pub refused: AtomicU64,
    pub cancelled: AtomicU64,
    /// Prompt tokens of finished prompts, and of those, the ones evaluated
    /// (the rest came from a slot's KV cache).
    pub prompt_tokens: AtomicU64,
    pub evaluated_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    /// Microseconds spent generating (after prompts), summed over jobs.
    pub generation_us: AtomicU64,
    /// Drafting (`--draft`): tokens drafted, and of those, accepted.
    pub drafted: AtomicU64,
    pub draft_accepted: AtomicU64,
    /// Jobs waiting for a slot, and jobs in slots.
    pub queued: AtomicU64,
    pub active: AtomicU64,
    /// The expert cache per layer, as the engine last saw it.
    pub layers: Mutex<Vec<LayerCache>>,
}

/// One layer's expert cache counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LayerCache {
    pub hits: u64,
    pub misses: u64,
    pub bytes_read: u64,
    pub stall_s: f64,
}

impl Metrics {
    pub fn record_done(&self, u: &Usage) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.generated_tokens.fetch_add(u.completion_tokens as u64, Ordering::Relaxed);
        self.generation_us.fetch_add((u.generation_s * 1e6) as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP moe_{name} {help}\n# TYPE moe_{name} {kind}\nmoe_{name} {value}");
        };
        metric("requests_total", "counter", "Requests answered.", get(&self.requests).to_string());
        metric("requests_refused_total", "counter", "Requests refused with an error status.", get(&self.refused).to_string());
        metric("requests_cancelled_total", "counter", "Generations cancelled because the client went away.", get(&self.cancelled).to_string());
        metric("prompt_tokens_total", "counter", "Prompt tokens of the requests.", get(&self.prompt_tokens).to_string());
        metric("prompt_tokens_evaluated_total", "counter", "Prompt tokens run through the model (the rest reused a slot's KV cache).", get(&self.evaluated_tokens).to_string());
        metric("tokens_generated_total", "counter", "Tokens generated.", get(&self.generated_tokens).to_string());
        let secs = get(&self.generation_us) as f64 / 1e6;
        metric("generation_seconds_total", "counter", "Time spent generating, summed over requests.", format!("{secs:.6}"));
        let rate = if secs > 0.0 { get(&self.generated_tokens) as f64 / secs } else { 0.0 };
        metric("generation_tokens_per_second", "gauge", "Generated tokens per second of generation, per request.", format!("{rate:.3}"));
        metric("draft_tokens_total", "counter", "Tokens drafted (--draft).", get(&self.drafted).to_string());
        metric("draft_tokens_accepted_total", "counter", "Drafted tokens that stood.", get(&self.draft_accepted).to_string());
        metric("requests_queued", "gauge", "Requests waiting for a slot.", get(&self.queued).to_string());
        metric("requests_active", "gauge", "Requests being generated.", get(&self.active).to_string());
        let layers = self.layers.lock().map(|l| l.clone()).unwrap_or_default();
        let mut per_layer = |name: &str, kind: &str, help: &str, value: &dyn Fn(&LayerCache) -> String| {
            let _ = writeln!(out, "# HELP moe_{name} {help}\n# TYPE moe_{name} {kind}");
            for (i, l) in layers.iter().enumerate() {
                let _ = writeln!(out, "moe_{name}{{layer=\"{i}\"}} {}", value(l));
            }
        };
        per_layer("expert_cache_hits_total", "counter", "Expert cache hits per layer.", &|l| l.hits.to_string());
        per_layer("expert_cache_misses_total", "counter", "Expert cache misses per layer.", &|l| l.misses.to_string());
        per_layer("expert_cache_read_bytes_total", "counter", "Bytes read from the model file for experts, per layer.", &|l| l.bytes_read.to_string());
        per_layer("expert_cache_stall_seconds_total", "counter", "Time decoding waited for expert reads, per layer.", &|l| format!("{:.6}", l.stall_s));
        out
    }
}
