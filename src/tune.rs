//! `moe tune`: calibrate on this machine, then recommend expert-cache
//! settings, with predicted tok/s and hit rates, written as a profile that
//! `moe run --profile` applies.
//!
//! Calibration, all through the real code paths:
//! 1. random expert-sized reads through an `ExpertCache`'s loader threads
//!    (every read a miss, `n_expert_used` requested together), for 1, 2, 4
//!    and 8 loader threads: the disk rate and the best thread count;
//! 2. a short generation on a built-in prompt at the budget `--mem` allows,
//!    prefetch off, traced in memory: compute per token (wall time less
//!    waits), the effective read rate of demand misses, and the routing;
//! 3. the same generation with prefetch depth 1 and 3: how much prefetch
//!    speeds this machine up.
//!
//! Prediction: the trace is replayed ([`moe_offload::simulate`]) at other
//! budgets; a token costs its compute plus its replayed reads at the
//! effective rate (prefetch off), times the measured prefetch speed-up.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use moe_offload::simulate::{simulate, Policy, Rates};
use moe_offload::trace::TraceReader;
use moe_offload::{CacheConfig, ExpertCache, ExpertKey, ExpertSource, PolicyKind, Trace};

use crate::error::{Error, Result};
use crate::generate::{generate, GenerateOptions};
use crate::model::{KvType, Model, Prefetch};
use crate::offload_setup::{self, Footprint, MemRequest, OffloadOptions, Size};
use crate::sampler::{Sampler, SamplerParams};
use crate::tokenizer::Tokenizer;

/// The calibration prompt: varied prose, code, numbers and languages, not
/// part of the corpus `moe upcycle` fits routers on.
pub const TUNE_PROMPT: &str = "The harbour was quiet at dawn. A fisherman counted his nets, a clerk opened the customs house, \
and somewhere a radio played an old song. In 1931 the bridge was finished; it cost 4.2 million pounds. \
fn area(r: f64) -> f64 { 3.14159 * r * r } Le marché ouvre à huit heures. Tell me why the sky is blue.";

#[derive(Debug, Clone)]
pub struct TuneOptions {
    pub mem: u64,
    pub n_ctx: usize,
    /// Tokens generated per calibration run.
    pub tokens: usize,
    pub prompt: String,
    pub policy: PolicyKind,
}

/// Random expert reads at one loader-thread count.
#[derive(Debug, Clone, Copy)]
pub struct ReadRate {
    pub loader_threads: usize,
    pub reads: u64,
    pub bytes: u64,
    pub secs: f64,
}

impl ReadRate {
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs.max(1e-9)
    }
}

/// Reads `reads` random experts (distinct per `trial`), `group` at a time.
pub fn measure_reads(model: &Model, loader_threads: usize, reads: usize, group: usize, trial: usize) -> Result<ReadRate> {
    let ranges = model.expert_ranges();
    let keys: Vec<ExpertKey> = ranges.iter().enumerate().flat_map(|(l, r)| (0..r.len()).map(move |e| ExpertKey { layer: l as u32, expert: e as u32 })).collect();
    if keys.is_empty() {
        return Err(Error::InvalidArgument(format!("{}: a dense model has no experts to tune a cache for", model.file().path().display())));
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17));
    let n = reads.min(keys.len());
    let start = (trial * n) % keys.len();
    let picked: Vec<ExpertKey> = (0..n).map(|i| keys[order[(start + i) % keys.len()]]).collect();
    let group = group.clamp(1, n);
    let largest = ranges.iter().flatten().map(ExpertCache::footprint).max().unwrap_or(0);
    let config = CacheConfig { budget_bytes: largest * group as u64, loader_threads, prefetch: false, io: moe_offload::IoMode::Auto, faults: None };
    let cache = ExpertCache::new(Arc::clone(model.file().file()), ranges, config)?;
    let t0 = Instant::now();
    let mut sink = 0u8;
    for g in picked.chunks(group) {
        cache.request(g);
        for &k in g {
            cache.with_expert(k, &mut |b| sink ^= b.gate[0] ^ b.down[b.down.len() - 1])?;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    let t = cache.stats().total();
    Ok(ReadRate { loader_threads, reads: t.loads, bytes: t.io_bytes, secs })
}

/// One calibration generation.
#[derive(Debug, Clone)]
pub struct RunMeasure {
    /// `None`: prefetch off.
    pub prefetch_depth: Option<usize>,
    pub decode_tok_s: f64,
    pub hit_rate: f64,
    pub trace: Option<Trace>,
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Generates `opts.tokens` tokens greedily after the prompt with an expert
/// cache of `budget` bytes.
pub fn measure_run(path: &Path, opts: &TuneOptions, budget: u64, prefetch_depth: Option<usize>, loader_threads: usize, traced: bool) -> Result<RunMeasure> {
    let mut model = Model::open(path)?;
    let tokenizer = Tokenizer::from_metadata(model.metadata())?;
    let prompt = tokenizer.encode(&opts.prompt, true, true)?;
    let n_ctx = prompt.len() + opts.tokens + 1;
    let fp = Footprint::of(&model);
    let plan = offload_setup::plan(&fp, n_ctx, &MemRequest { expert_cache: Some(Size::Bytes(budget)), ..Default::default() })
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let o = OffloadOptions {
        loader_threads,
        prefetch: if prefetch_depth.is_some() { Prefetch::RouterOnFfnInput } else { Prefetch::Off },
        prefetch_depth: prefetch_depth.unwrap_or(1),
        policy: opts.policy,
        ..OffloadOptions::default()
    };
    offload_setup::setup(&mut model, &plan, &o)?;
    let sink = Sink::default();
    let traced = if traced {
        let settings = format!("budget={budget} policy={} prefetch=off loader_threads={loader_threads} batch=512", opts.policy.name());
        Some(crate::trace::start_with(&mut model, Box::new(sink.clone()), &settings)?)
    } else {
        None
    };
    let before = model.experts().stats().unwrap_or_default();
    let mut session = model.session_with_kv(n_ctx, KvType::F16)?;
    let writer = traced.map(|(w, observer)| {
        session.set_observer(Some(Box::new(observer)));
        w
    });
    let mut sampler = Sampler::new(SamplerParams { temp: 0.0, ..SamplerParams::default() });
    let stats = generate(&mut session, &tokenizer, &mut sampler, &prompt, &GenerateOptions { n_predict: opts.tokens, ignore_eos: true, ..Default::default() }, |_| true)?;
    let after = model.experts().stats().unwrap_or_default();
    let trace = match writer {
        Some(w) => {
            w.lock().unwrap_or_else(std::sync::PoisonError::into_inner).finish().map_err(|e| Error::InvalidArgument(format!("calibration trace: {e}")))?;
            let bytes = sink.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            Some(TraceReader::new(&bytes[..], Path::new("<calibration trace>"))?.read_all()?)
        }
        None => None,
    };
    Ok(RunMeasure {
        prefetch_depth,
        decode_tok_s: stats.generation_tok_per_s(),
        hit_rate: after.since(&before).total().hit_rate().unwrap_or(0.0),
        trace,
    })
}

/// One row of the prediction table.
#[derive(Debug, Clone)]
pub struct Row {
    pub budget: u64,
    /// `--mem` that gives this budget (resident + KV + scratch + budget).
    pub mem: u64,
    pub hit_rate: f64,
    pub lru_hit_rate: f64,
    /// Predicted decode tok/s with prefetch off, and with the recommended prefetch.
    pub tok_s_no_prefetch: f64,
    pub tok_s: f64,
}

/// A `moe tune` profile: what `moe run --profile` applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub model_name: String,
    pub model_size: u64,
    pub model_id: u64,
    pub mem: u64,
    pub expert_cache: u64,
    pub cache_policy: PolicyKind,
    /// `None`: prefetch off.
    pub prefetch_depth: Option<usize>,
    pub loader_threads: usize,
    pub predicted_tok_s: f64,
    pub predicted_hit_rate: f64,
    /// Hottest first.
    pub hot: Vec<ExpertKey>,
}

impl Profile {
    pub fn to_text(&self) -> String {
        let hot: Vec<String> = self.hot.iter().map(|k| format!("{}:{}", k.layer, k.expert)).collect();
        format!(
            "# moe tune profile: `moe run --profile FILE` applies it (flags given on the command line win);\n\
             # --warm also pre-loads the hot experts (hottest first) before the prompt.\n\
             model = {}\nmodel_size = {}\nmodel_id = {:016x}\nmem = {}\nexpert_cache = {}\ncache_policy = {}\nprefetch = {}\n\
             prefetch_depth = {}\nloader_threads = {}\npredicted_tok_s = {:.3}\npredicted_hit_rate = {:.4}\nhot = {}\n",
            self.model_name,
            self.model_size,
            self.model_id,
            self.mem,
            self.expert_cache,
            self.cache_policy.name(),
            if self.prefetch_depth.is_some() { "on" } else { "off" },
            self.prefetch_depth.unwrap_or(1),
            self.loader_threads,
            self.predicted_tok_s,
            self.predicted_hit_rate,
            hot.join(" ")
        )
    }

    pub fn parse(text: &str, path: &Path) -> Result<Profile> {
        let bad = |line: usize, what: String| Error::InvalidArgument(format!("{}:{line}: {what}", path.display()));
        let mut p = Profile {
            model_name: String::new(),
            model_size: 0,
            model_id: 0,
            mem: 0,
            expert_cache: 0,
            cache_policy: PolicyKind::default(),
            prefetch_depth: Some(1),
            loader_threads: 4,
            predicted_tok_s: 0.0,
            predicted_hit_rate: 0.0,
            hot: Vec::new(),
        };
        let (mut prefetch_on, mut depth) = (true, 1usize);
        let mut seen = std::collections::HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| bad(n, format!("expected KEY = VALUE, found '{line}'")))?;
            let (k, v) = (k.trim(), v.trim());
            let num = |v: &str| v.parse::<u64>().map_err(|_| bad(n, format!("{k}: expected a whole number, found '{v}'")));
            let float = |v: &str| v.parse::<f64>().map_err(|_| bad(n, format!("{k}: expected a number, found '{v}'")));
            match k {
                "model" => p.model_name = v.to_string(),
                "model_size" => p.model_size = num(v)?,
                "model_id" => p.model_id = u64::from_str_radix(v, 16).map_err(|_| bad(n, format!("model_id: expected 16 hex digits, found '{v}'")))?,
                "mem" => p.mem = num(v)?,
                "expert_cache" => p.expert_cache = num(v)?,
                "cache_policy" => p.cache_policy = PolicyKind::parse(v).map_err(|e| bad(n, e))?,
                "prefetch" => {
                    prefetch_on = match v {
                        "on" => true,
                        "off" => false,
                        _ => return Err(bad(n, format!("prefetch: expected on or off, found '{v}'"))),
                    }
                }
                "prefetch_depth" => depth = num(v)?.clamp(1, 64) as usize,
                "loader_threads" => p.loader_threads = num(v)?.clamp(1, 256) as usize,
                "predicted_tok_s" => p.predicted_tok_s = float(v)?,
                "predicted_hit_rate" => p.predicted_hit_rate = float(v)?,
                "hot" => {
                    p.hot = v
                        .split_whitespace()
                        .map(|kv| {
                            let (l, e) = kv.split_once(':').ok_or_else(|| bad(n, format!("hot: expected LAYER:EXPERT, found '{kv}'")))?;
                            Ok(ExpertKey { layer: num(l)? as u32, expert: num(e)? as u32 })
                        })
                        .collect::<Result<_>>()?
                }
                _ => return Err(bad(n, format!("unknown key '{k}'"))),
            }
            seen.insert(k.to_string());
        }
        for required in ["model", "model_size", "model_id", "expert_cache"] {
            if !seen.contains(required) {
                return Err(Error::InvalidArgument(format!("{}: missing '{required}' (not a moe tune profile?)", path.display())));
            }
        }
        p.prefetch_depth = prefetch_on.then_some(depth);
        Ok(p)
    }

    /// Whether the profile was made for `model`.
    pub fn check_model(&self, path: &Path, model: &Model) -> Result<()> {
        let (name, size, id) = crate::trace::model_identity(model.file())?;
        if (size, id) != (self.model_size, self.model_id) {
            return Err(Error::InvalidArgument(format!(
                "profile {} was made for {} ({} bytes, id {:016x}), not for {name} ({size} bytes, id {id:016x}); run moe tune on this model",
                path.display(),
                self.model_name,
                self.model_size,
                self.model_id
            )));
        }
        Ok(())
    }
}

/// Everything `moe tune` found.
#[derive(Debug, Clone)]
pub struct TuneResult {
    pub reads: Vec<ReadRate>,
    pub runs: Vec<RunMeasure>,
    /// The fastest setting of `runs`, run again; the prediction uses it.
    pub confirm: RunMeasure,
    /// What `--mem` leaves the cache, and all experts' bytes.
    pub budget: u64,
    pub all_experts: u64,
    pub fixed: u64,
    pub rates: Rates,
    pub read_rate: f64,
    /// Measured tok/s of the confirmation run over the run without prefetch.
    pub prefetch_speedup: f64,
    pub rows: Vec<Row>,
    pub profile: Profile,
}

/// Calibrates `path` for `opts.mem` and predicts; `progress` is told each step.
pub fn tune(path: &Path, opts: &TuneOptions, progress: &mut dyn FnMut(&str)) -> Result<TuneResult> {
    let model = Model::open(path)?;
    let c = model.config().clone();
    if !c.is_moe() {
        return Err(Error::InvalidArgument(format!("{}: a dense model has no expert cache to tune", path.display())));
    }
    let fp = Footprint::of(&model);
    let tokenizer = Tokenizer::from_metadata(model.metadata())?;
    let n_prompt = tokenizer.encode(&opts.prompt, true, true)?.len();
    let n_ctx = opts.n_ctx.max(n_prompt + opts.tokens + 1);
    let plan = offload_setup::plan(&fp, n_ctx, &MemRequest { mem: Some(opts.mem), kv_type: KvType::F16, ..Default::default() })
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let budget = plan.expert_budget().expect("an MoE plan has a cache");
    let expert = fp.min_expert_cache.max(1);
    let reads = ((256u64 << 20) / expert).clamp(8, 64) as usize;
    let mut rates = Vec::new();
    for (trial, threads) in [1usize, 2, 4, 8].into_iter().enumerate() {
        progress(&format!("reading {reads} random experts with {threads} loader threads"));
        rates.push(measure_reads(&model, threads, reads, c.n_expert_used, trial)?);
    }
    drop(model);
    let best = rates.iter().map(ReadRate::bytes_per_s).fold(0.0, f64::max);
    // The fewest threads within 5% of the fastest.
    let loader_threads = rates.iter().find(|r| r.bytes_per_s() >= 0.95 * best).map_or(4, |r| r.loader_threads);
    let mut runs = Vec::new();
    for depth in [None, Some(1), Some(3)] {
        progress(&format!(
            "generating {} tokens at a {} expert cache, prefetch {}",
            opts.tokens,
            offload_setup::human(budget),
            depth.map_or("off".into(), |d| format!("depth {d}"))
        ));
        runs.push(measure_run(path, opts, budget, depth, loader_threads, depth.is_none())?);
    }
    let trace = runs[0].trace.clone().expect("the first run is traced");
    let rates_t = Rates::of(&trace);
    let read_rate = rates_t.read_bytes_per_s.unwrap_or(best);
    let best_run = runs.iter().max_by(|a, b| a.decode_tok_s.total_cmp(&b.decode_tok_s)).expect("three runs");
    let prefetch_depth = best_run.prefetch_depth;
    // The best of three noisy runs over-states its setting (the maximum of
    // samples is biased upwards: on a busy 2-core machine single runs vary
    // by +-10%), so the prediction uses a fresh run of the chosen setting.
    progress(&format!(
        "confirming prefetch {}: generating {} tokens again",
        prefetch_depth.map_or("off".into(), |d| format!("depth {d}")),
        opts.tokens
    ));
    let confirm = measure_run(path, opts, budget, prefetch_depth, loader_threads, false)?;
    let base = runs[0].decode_tok_s;
    let speedup = if base > 0.0 { confirm.decode_tok_s / base } else { 1.0 };
    let policy = match opts.policy {
        PolicyKind::Lru => Policy::Lru,
        PolicyKind::Lfu => Policy::Lfu,
        PolicyKind::Lrfu { half_life_tokens } => Policy::Lrfu { half_life: half_life_tokens },
    };
    let mut budgets: Vec<u64> = [0.25, 0.5, 0.75, 1.0].iter().map(|f| ((budget as f64 * f) as u64).max(fp.min_expert_cache)).collect();
    if fp.all_experts > budget {
        budgets.push(fp.all_experts);
    }
    budgets.dedup();
    let rows: Vec<Row> = budgets
        .iter()
        .map(|&b| {
            let r = simulate(&trace, policy, b);
            let no_pf = rates_t.predict_tok_s(&trace, &r, read_rate);
            Row {
                budget: b,
                mem: plan.fixed() + b,
                hit_rate: r.hit_rate(),
                lru_hit_rate: simulate(&trace, Policy::Lru, b).hit_rate(),
                tok_s_no_prefetch: no_pf,
                tok_s: no_pf * speedup,
            }
        })
        .collect();
    // The smallest budget (up to what --mem allows) within 1% of the best prediction there.
    let allowed: Vec<&Row> = rows.iter().filter(|r| r.budget <= budget).collect();
    let top = allowed.iter().map(|r| r.tok_s).fold(0.0, f64::max);
    let rec = allowed.iter().find(|r| r.tok_s >= 0.99 * top).copied().unwrap_or(allowed[allowed.len() - 1]);
    let mut counts: std::collections::HashMap<ExpertKey, u64> = std::collections::HashMap::new();
    for a in trace.accesses() {
        *counts.entry(a.0).or_default() += 1;
    }
    let mut hot: Vec<(ExpertKey, u64)> = counts.into_iter().collect();
    hot.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let h = &trace.header;
    let profile = Profile {
        model_name: h.model_name.clone(),
        model_size: h.model_size,
        model_id: h.model_id,
        mem: rec.mem,
        expert_cache: rec.budget,
        cache_policy: opts.policy,
        prefetch_depth,
        loader_threads,
        predicted_tok_s: rec.tok_s,
        predicted_hit_rate: rec.hit_rate,
        hot: hot.into_iter().map(|h| h.0).collect(),
    };
    Ok(TuneResult {
        reads: rates,
        runs,
        confirm,
        budget,
        all_experts: fp.all_experts,
        fixed: plan.fixed(),
        rates: rates_t,
        read_rate,
        prefetch_speedup: speedup,
        rows,
        profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_round_trips_and_names_bad_lines() {
        let p = Profile {
            model_name: "m.gguf".into(),
            model_size: 10,
            model_id: 0xabc,
            mem: 1 << 30,
            expert_cache: 1 << 29,
            cache_policy: PolicyKind::Lrfu { half_life_tokens: 16.0 },
            prefetch_depth: Some(3),
            loader_threads: 2,
            predicted_tok_s: 1.5,
            predicted_hit_rate: 0.25,
            hot: vec![ExpertKey { layer: 1, expert: 7 }, ExpertKey { layer: 0, expert: 2 }],
        };
        let path = Path::new("p.profile");
        assert_eq!(Profile::parse(&p.to_text(), path).unwrap(), p);
        let off = Profile { prefetch_depth: None, ..p.clone() };
        assert_eq!(Profile::parse(&off.to_text(), path).unwrap(), off);
        let e = Profile::parse(&p.to_text().replace("loader_threads = 2", "loader_threads = two"), path).unwrap_err().to_string();
        assert!(e.contains("p.profile:") && e.contains("loader_threads: expected a whole number, found 'two'"), "{e}");
        let e = Profile::parse("colour = blue\n", path).unwrap_err().to_string();
        assert!(e.contains("p.profile:1: unknown key 'colour'"), "{e}");
        let e = Profile::parse("# nothing\n", path).unwrap_err().to_string();
        assert!(e.contains("missing 'model'"), "{e}");
    }
}
