//! `moe run`'s cache-tuning flags: `--trace FILE` (a routing trace),
//! `--live` (a per-layer hit-rate line on stderr), `--profile FILE` (a
//! `moe tune` profile). Kept apart from run.rs: run calls in at four points
//! (flags, after the cache is set up, on the session, at the end).

use std::path::PathBuf;

use clap::Args;
use moe::model::{Model, Session};
use moe::offload_setup::{ExpertPlan, MemoryPlan};
use moe::{Error, Result};
use moe_offload::SharedTrace;

use crate::args::{OffloadArgs, RunArgs};

#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Tracing and tuning")]
pub struct RunExtras {
    /// Record every forward pass's routing and every expert access to FILE (a compact binary
    /// trace for `moe simulate` and `moe report`).
    #[arg(long = "trace", value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Redraw a per-layer hit-rate / stall line on stderr while generating (only on a terminal).
    #[arg(long = "live")]
    pub live: bool,
    /// Apply a `moe tune` profile: expert cache size, policy, prefetch and loader threads (flags
    /// given on the command line win).
    #[arg(long = "profile", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// With --profile: read the profile's hot experts into the cache before the prompt.
    #[arg(long = "warm", requires = "profile")]
    pub warm: bool,
}

/// Applies `--profile` to the flags (before the cache is set up): a value
/// the command line left at its default takes the profile's.
pub fn apply_profile(a: &mut RunArgs, model: &Model) -> Result<Option<moe::tune::Profile>> {
    let Some(path) = a.extras.profile.clone() else { return Ok(None) };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
    let p = moe::tune::Profile::parse(&text, &path)?;
    p.check_model(&path, model)?;
    let o = &mut a.offload;
    let defaults = match <crate::args::Cli as clap::Parser>::try_parse_from(["moe", "run", "-m", "x", "-p", "x"]).map(|c| c.command) {
        Ok(crate::args::Command::Run(r)) => r.offload,
        _ => unreachable!("the defaults of `moe run` parse"),
    };
    if o.mem.is_none() && o.expert_cache.is_none() && !o.mmap_experts {
        o.expert_cache = Some(moe::offload_setup::Size::Bytes(p.expert_cache));
    }
    if o.cache_policy == defaults.cache_policy {
        o.cache_policy = p.cache_policy;
    }
    if !o.no_prefetch && o.prefetch_depth == defaults.prefetch_depth {
        match p.prefetch_depth {
            Some(d) => o.prefetch_depth = d as u16,
            None => o.no_prefetch = true,
        }
    }
    if o.loader_threads == defaults.loader_threads {
        o.loader_threads = p.loader_threads as u16;
    }
    eprintln!(
        "moe: profile {}: expert cache {}, {}, {}, {} loader threads (predicted {:.2} tok/s, hit rate {:.1}%)",
        path.display(),
        moe::offload_setup::human(p.expert_cache),
        p.cache_policy.name(),
        p.prefetch_depth.map_or("prefetch off".into(), |d| format!("prefetch depth {d}")),
        p.loader_threads,
        p.predicted_tok_s,
        100.0 * p.predicted_hit_rate
    );
    Ok(Some(p))
}

/// What run keeps for the tracing flags between its calls.
#[derive(Default)]
pub struct Extras {
    trace: Option<(PathBuf, SharedTrace)>,
    observer: Option<moe::trace::TraceObserver>,
    live: Option<crate::live::Live>,
}

/// The settings a trace records.
fn settings(a: &RunArgs, o: &OffloadArgs, plan: &MemoryPlan, model: &Model, threads: usize) -> String {
    let budget = match plan.experts {
        ExpertPlan::Cache { budget, .. } => budget.to_string(),
        _ => "mmap".into(),
    };
    format!(
        "budget={budget} policy={} prefetch={} prefetch_depth={} loader_threads={} batch={} threads={}",
        o.cache_policy.name(),
        if model.prefetch() == moe::model::Prefetch::Off { "off" } else { "on" },
        o.prefetch_depth,
        o.loader_threads,
        a.compute.batch_size,
        threads,
    )
}

impl Extras {
    /// After the expert cache is in place, before the session.
    pub fn start(
        a: &RunArgs,
        model: &mut Model,
        plan: &MemoryPlan,
        threads: usize,
        profile: Option<&moe::tune::Profile>,
        quiet: bool,
    ) -> Result<Extras> {
        let mut x = Extras::default();
        if let (true, Some(p), Some(budget)) = (a.extras.warm, profile, plan.expert_budget()) {
            // Hottest first, as many as the budget holds.
            let ranges = model.expert_ranges();
            let mut used = 0;
            let keys: Vec<_> = p
                .hot
                .iter()
                .copied()
                .filter(|k| ranges.get(k.layer as usize).and_then(|l| l.get(k.expert as usize)).is_some())
                .take_while(|k| {
                    used += moe_offload::ExpertCache::footprint(&ranges[k.layer as usize][k.expert as usize]);
                    used <= budget
                })
                .collect();
            // The reads run on the loader threads, ahead of the prompt.
            let n = model.experts().preload(&keys);
            if !quiet {
                eprintln!("moe: warm start: reading {n} hot experts of the profile before the prompt");
            }
        }
        if model.config().is_moe() {
            x.live = crate::live::Live::start(a.extras.live);
        }
        if let Some(path) = &a.extras.trace {
            let s = settings(a, &a.offload, plan, model, threads);
            let (trace, observer) = moe::trace::start(model, path, &s)?;
            x.trace = Some((path.clone(), trace));
            x.observer = Some(observer);
        }
        Ok(x)
    }

    /// Installs the observers on the session.
    pub fn install<'m>(&mut self, session: &mut Session<'m>) {
        if let Some(o) = self.observer.take() {
            session.set_observer(Some(Box::new(o)));
        }
    }

    /// After each forward pass of `tokens` tokens.
    pub fn on_pass(&mut self, model: &Model, tokens: usize) {
        if let Some(l) = &mut self.live {
            l.tick(model.experts(), tokens);
        }
    }

    /// At the end: clears the live line, closes the trace and says what it holds.
    pub fn finish(mut self, tokens: usize) -> Result<()> {
        if let Some(l) = self.live.take() {
            l.finish();
        }
        if let Some((path, trace)) = self.trace {
            let mut w = trace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let passes = w.passes();
            let bytes = w.finish().map_err(|e| Error::Io { path: path.clone(), source: e })?;
            eprintln!(
                "moe: trace: {} passes, {tokens} tokens, {bytes} bytes ({:.0} bytes/token) written to {}",
                passes,
                bytes as f64 / tokens.max(1) as f64,
                path.display()
            );
        }
        Ok(())
    }
}
