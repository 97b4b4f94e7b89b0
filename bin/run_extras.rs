//! `moe run`'s cache-tuning flags: `--trace FILE` (a routing trace),
//! `--live` (a per-layer hit-rate line on stderr), `--profile FILE` (a
//! `moe tune` profile, bin/profile_args.rs). Kept apart from run.rs: run calls in at four points
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
    #[command(flatten)]
    pub profile: crate::profile_args::ProfileArgs,
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
        a.extras.profile.warm_start(profile, model, plan, quiet);
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
