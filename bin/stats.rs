//! `--stats` and `--stats-json`: per-layer expert-cache figures, the
//! session's prediction accuracy and expert compute time, and per-token
//! hits, misses and bytes read.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use moe::generate::GenerationStats;
use moe::model::{LayerRunStats, Prefetch};
use moe::offload_setup::{ExpertPlan, MemoryPlan};
use moe::routing::LayerDiversity;
use moe_offload::{CacheStats, ExpertSource, LayerStats};

/// What one forward pass (or the whole prompt) cost.
pub struct TokenRecord {
    /// Tokens this record covers: a prompt micro-batch's, or 1.
    pub n_tokens: usize,
    pub prompt: bool,
    pub time: Duration,
    /// Cache counters accumulated over the record (`None`: no cache).
    pub cache: Option<LayerStats>,
}

/// Takes a cache snapshot per forward pass: each prompt micro-batch (each
/// token with `-b 1`), then each generated token.
pub struct Recorder {
    last: Option<CacheStats>,
    last_t: Instant,
    sampled_first: bool,
    pub records: Vec<TokenRecord>,
}

impl Recorder {
    pub fn new(source: &dyn ExpertSource) -> Recorder {
        Recorder { last: source.stats(), last_t: Instant::now(), sampled_first: false, records: Vec::new() }
    }

    /// Call once per prompt micro-batch (`Some(its tokens)`), right after it
    /// ran, and once per generated token (`None`), right after it is
    /// sampled. The first generated token ran no forward pass of its own (it
    /// is sampled from the last prompt batch's logits), so its sampling is
    /// added to the last prompt record: one record per forward pass.
    pub fn mark(&mut self, source: &dyn ExpertSource, prompt_batch: Option<usize>) {
        let prompt = prompt_batch.is_some();
        let now = source.stats();
        let cache = match (&now, &self.last) {
            (Some(n), Some(l)) => Some(n.since(l).total()),
            _ => None,
        };
        let time = self.last_t.elapsed();
        match self.records.last_mut() {
            Some(last) if !prompt && last.prompt && !self.sampled_first => {
                self.sampled_first = true;
                last.time += time;
                if let (Some(c), Some(d)) = (&mut last.cache, &cache) {
                    c.add(d);
                }
            }
            _ => self.records.push(TokenRecord { n_tokens: prompt_batch.unwrap_or(1), prompt, time, cache }),
        }
        self.last = now;
        self.last_t = Instant::now();
    }
}

pub struct Report<'a> {
    pub model: &'a Path,
    pub plan: &'a MemoryPlan,
    pub prefetch: Prefetch,
    pub generation: &'a GenerationStats,
    pub cache: Option<CacheStats>,
    pub layers: &'a [LayerRunStats],
    pub records: &'a [TokenRecord],
    /// Seconds from start to the model being ready (load + setup).
    pub load_s: f64,
    pub routing: Option<Vec<LayerDiversity>>,
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.1}%", 100.0 * r))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

fn prefetch_name(p: Prefetch) -> &'static str {
    match p {
        Prefetch::Off => "off",
        Prefetch::RouterOnFfnInput => "router-on-ffn-input",
        Prefetch::RouterOnResidual => "router-on-residual",
    }
}

impl Report<'_> {
    fn source_name(&self) -> &'static str {
        match self.plan.experts {
            ExpertPlan::Dense => "dense",
            ExpertPlan::Mapped => "mmap",
            ExpertPlan::Cache { .. } => "cache",
        }
    }

    /// The per-layer table, per-token summary and global figures.
    pub fn write_table(&self, w: &mut dyn Write) -> io::Result<()> {
        if matches!(self.plan.experts, ExpertPlan::Dense) {
            return writeln!(w, "moe: stats: dense model, no experts");
        }
        writeln!(
            w,
            "moe: expert stats ({}; prefetch {}):",
            match self.plan.expert_budget() {
                Some(b) => format!("cache budget {}", moe::offload_setup::human(b)),
                None => "experts read through the mapping, no cache counters".into(),
            },
            prefetch_name(self.prefetch)
        )?;
        writeln!(
            w,
            "{:>5} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>6} {:>8} {:>9}",
            "layer", "hits", "misses", "hit%", "pf", "pf-hit", "pf-wst", "pred%", "read MiB", "GB/s", "stall s", "compute s"
        )?;
        let cache_layers = self.cache.as_ref().map(|c| c.layers.as_slice());
        let mut run_total = LayerRunStats::default();
        for (i, run) in self.layers.iter().enumerate() {
            run_total.add(run);
            let c = cache_layers.and_then(|l| l.get(i));
            if *run == LayerRunStats::default() && c.is_none_or(|c| *c == LayerStats::default()) {
                continue;
            }
            self.row(w, &i.to_string(), c, run)?;
        }
        let total = self.cache.as_ref().map(|c| c.total());
        self.row(w, "total", total.as_ref(), &run_total)?;
        self.write_token_summary(w)?;
        if let Some(r) = &self.routing {
            crate::routing::write_table(w, r)?;
        }
        if let Some(c) = &self.cache {
            writeln!(
                w,
                "moe: cache: budget {:.1} MiB, resident {:.1} MiB, peak {:.1} MiB, {} evictions, {} over-budget events, {} prefetches dropped, {} read errors",
                mib(c.budget_bytes),
                mib(c.resident_bytes),
                mib(c.peak_resident_bytes),
                c.evictions(),
                c.over_budget_events,
                c.prefetch_dropped,
                c.read_errors
            )?;
            writeln!(
                w,
                "moe: I/O: {} ({} direct, {} buffered extent reads, {} fallbacks), {} buffers recycled",
                if c.direct_io { "O_DIRECT" } else { "buffered" },
                c.direct_reads,
                c.buffered_reads,
                c.direct_fallbacks,
                c.recycled_buffers
            )?;
        }
        Ok(())
    }

    fn row(&self, w: &mut dyn Write, name: &str, c: Option<&LayerStats>, run: &LayerRunStats) -> io::Result<()> {
        let n = |f: fn(&LayerStats) -> u64| opt(c, |c| f(c).to_string());
        writeln!(
            w,
            "{name:>5} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>6} {:>8} {:>9.3}",
            n(|c| c.hits),
            n(|c| c.misses),
            opt(c, |c| pct(c.hit_rate())),
            n(|c| c.prefetch_issued),
            n(|c| c.prefetch_hits),
            n(|c| c.prefetch_wasted),
            pct(run.prediction_accuracy()),
            opt(c, |c| format!("{:.1}", mib(c.bytes_read))),
            opt(c.and_then(|c| c.read_throughput()), |r| format!("{:.2}", r / 1e9)),
            opt(c, |c| format!("{:.3}", c.stall_time.as_secs_f64())),
            run.expert_compute.as_secs_f64(),
        )
    }

    fn write_token_summary(&self, w: &mut dyn Write) -> io::Result<()> {
        let g = self.generation;
        let decode: Vec<&TokenRecord> = self.records.iter().filter(|r| !r.prompt).collect();
        let prompt: Vec<&TokenRecord> = self.records.iter().filter(|r| r.prompt).collect();
        if !prompt.is_empty() {
            let cache = prompt.iter().map(|r| r.cache.clone()).collect::<Option<Vec<_>>>().map(|c| {
                let mut t = LayerStats::default();
                c.iter().for_each(|c| t.add(c));
                t
            });
            let n: usize = prompt.iter().map(|r| r.n_tokens).sum();
            writeln!(w, "moe: prompt ({n} tokens in {} batches, {:.3} s): {}", prompt.len(), g.prompt_time.as_secs_f64(), delta_text(cache.as_ref()))?;
        }
        writeln!(
            w,
            "moe: ready in {:.3} s (load {:.3} s + first prompt token {:.3} s)",
            self.load_s + g.first_token_time.as_secs_f64(),
            self.load_s,
            g.first_token_time.as_secs_f64()
        )?;
        if decode.is_empty() {
            return Ok(());
        }
        let n = decode.len() as f64;
        let secs: f64 = decode.iter().map(|r| r.time.as_secs_f64()).sum();
        match decode.iter().map(|r| r.cache.clone()).collect::<Option<Vec<_>>>() {
            Some(d) => {
                let hits: u64 = d.iter().map(|c| c.hits).sum();
                let acc: u64 = d.iter().map(|c| c.accesses()).sum();
                let bytes: Vec<u64> = d.iter().map(|c| c.bytes_read).collect();
                let stall: f64 = d.iter().map(|c| c.stall_time.as_secs_f64()).sum();
                writeln!(
                    w,
                    "moe: decode ({} tokens, {:.3} s/token): hit rate {}, read {:.1} MiB/token (min {:.1}, max {:.1}), stalled {:.3} s/token ({:.0}% of the time)",
                    decode.len(),
                    secs / n,
                    pct((acc > 0).then(|| hits as f64 / acc as f64)),
                    mib(bytes.iter().sum::<u64>()) / n,
                    mib(*bytes.iter().min().unwrap_or(&0)),
                    mib(*bytes.iter().max().unwrap_or(&0)),
                    stall / n,
                    if secs > 0.0 { 100.0 * stall / secs } else { 0.0 }
                )
            }
            None => writeln!(w, "moe: decode ({} tokens, {:.3} s/token)", decode.len(), secs / n),
        }
    }

    pub fn write_json_file(&self, path: &Path) -> io::Result<()> {
        let mut v = Vec::new();
        self.write_json(&mut v)?;
        std::fs::write(path, v)
    }

    pub fn write_json(&self, w: &mut dyn Write) -> io::Result<()> {
        let g = self.generation;
        let p = self.plan;
        write!(
            w,
            "{{\"model\":{},\"expert_source\":\"{}\",\"prefetch\":\"{}\",\
             \"plan\":{{\"resident_bytes\":{},\"kv_bytes\":{},\"scratch_bytes\":{},\"expert_cache_bytes\":{},\
             \"all_experts_bytes\":{},\"min_expert_cache_bytes\":{},\"n_ctx\":{}}},\
             \"interrupted\":{},\"load_s\":{},\"first_token_s\":{},\"prompt_tokens\":{},\"prompt_s\":{},\"generated_tokens\":{},\"decode_passes\":{},\"generation_s\":{},\
             \"draft\":{{\"passes\":{},\"draft_passes\":{},\"proposed\":{},\"accepted\":{},\"tokens\":{},\"bytes_read\":{},\"single_passes\":{},\"single_bytes_read\":{}}},\"cache\":",
            json_str(&self.model.display().to_string()),
            self.source_name(),
            prefetch_name(self.prefetch),
            p.resident,
            p.kv,
            p.scratch,
            p.expert_budget().map_or_else(|| "null".to_string(), |b| b.to_string()),
            p.all_experts,
            p.min_expert_cache,
            p.n_ctx,
            g.interrupted,
            num(self.load_s),
            num(g.first_token_time.as_secs_f64()),
            g.prompt_tokens,
            num(g.prompt_time.as_secs_f64()),
            g.generated_tokens,
            g.decode_evals,
            num(g.generation_time.as_secs_f64()),
            g.draft.passes,
            g.draft.draft_passes,
            g.draft.proposed,
            g.draft.accepted,
            g.draft.tokens,
            g.draft.bytes_read,
            g.draft.single_passes,
            g.draft.single_bytes_read,
        )?;
        match &self.cache {
            Some(c) => c.write_json(w)?,
            None => write!(w, "null")?,
        }
        write!(w, ",\"layers\":[")?;
        for (i, l) in self.layers.iter().enumerate() {
            write!(
                w,
                "{}{{\"layer\":{i},\"predicted\":{},\"predicted_chosen\":{},\"prediction_accuracy\":{},\"expert_compute_s\":{}}}",
                if i > 0 { "," } else { "" },
                l.predicted,
                l.predicted_chosen,
                l.prediction_accuracy().map_or_else(|| "null".to_string(), num),
                num(l.expert_compute.as_secs_f64()),
            )?;
        }
        write!(w, "],\"routing\":")?;
        match &self.routing {
            Some(r) => crate::routing::write_json(w, r)?,
            None => write!(w, "null")?,
        }
        write!(w, ",\"tokens\":[")?;
        for (i, r) in self.records.iter().enumerate() {
            write!(
                w,
                "{}{{\"index\":{i},\"phase\":\"{}\",\"n_tokens\":{},\"time_s\":{}",
                if i > 0 { "," } else { "" },
                if r.prompt { "prompt" } else { "decode" },
                r.n_tokens,
                num(r.time.as_secs_f64())
            )?;
            match &r.cache {
                Some(c) => write!(
                    w,
                    ",\"hits\":{},\"misses\":{},\"hit_rate\":{},\"bytes_read\":{},\"io_bytes\":{},\"stall_s\":{}}}",
                    c.hits,
                    c.misses,
                    c.hit_rate().map_or_else(|| "null".to_string(), num),
                    c.bytes_read,
                    c.io_bytes,
                    num(c.stall_time.as_secs_f64())
                )?,
                None => write!(w, ",\"hits\":null,\"misses\":null,\"hit_rate\":null,\"bytes_read\":null,\"io_bytes\":null,\"stall_s\":null}}")?,
            }
        }
        writeln!(w, "]}}")
    }
}

fn delta_text(c: Option<&LayerStats>) -> String {
    match c {
        Some(c) => format!(
            "{} hits, {} misses (hit rate {}), read {:.1} MiB, stalled {:.3} s",
            c.hits,
            c.misses,
            pct(c.hit_rate()),
            mib(c.bytes_read),
            c.stall_time.as_secs_f64()
        ),
        None => "no cache counters".into(),
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
