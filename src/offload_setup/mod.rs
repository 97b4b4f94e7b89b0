//! Memory planning and expert-source setup for a loaded model, shared by
//! `moe run` and benchmarks:
//! - [`Size`]: the sizes the flags take (`8G`, `512M`, `100%`);
//! - [`plan`]: resident weights + KV cache + scratch + expert cache, with
//!   clear errors when the asked budget cannot work;
//! - [`setup`]: copy the resident weights into huge pages (or advise them
//!   on the mapping), optionally lock them, and put an [`ExpertCache`]
//!   between the model and the file;
//! - [`warm_resident`]: fault the resident weights in before the first token.
//!
//! With the cache on, expert bytes are only ever read by the cache's
//! loader threads (pread/O_DIRECT into owned buffers), never through the
//! mapping: only the resident ranges are advised or locked.

mod plan;
mod size;
mod sys;
mod warm;

use std::sync::Arc;

use moe_offload::{CacheConfig, ExpertCache, ExpertSource, IoMode, MappedExperts, PolicyKind, ResidentCopy};

pub use plan::{plan, plan_sessions, BudgetFrom, ExpertPlan, Footprint, MemRequest, MemoryPlan, PlanError, DEFAULT_HEADROOM, PROCESS_OVERHEAD};
pub use size::{human, Size, GIB, KIB, MIB, TIB};
pub use sys::{machine_memory, mem_available, memlock_limit, parse_meminfo, parse_memlock};
pub use warm::warm_resident;

use crate::error::Result;
use crate::model::{Model, Prefetch};
use crate::routing::{RecordingSource, RoutingLog};

/// How to set up the expert source, beyond the plan.
#[derive(Debug, Clone)]
pub struct OffloadOptions {
    pub loader_threads: usize,
    pub prefetch: Prefetch,
    /// Layers ahead that prefetch predicts (see [`Model::set_prefetch_depth`]).
    pub prefetch_depth: usize,
    /// `mlock` the resident ranges.
    pub mlock: bool,
    pub io: IoMode,
    /// Log the router's choices ([`SetupReport::routing`]).
    pub record_routing: bool,
    /// The expert cache's eviction policy.
    pub policy: PolicyKind,
    /// Where the resident weights are read from.
    pub resident: ResidentMode,
}

/// Where the resident weights (all but the experts) are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResidentMode {
    /// A copy in anonymous memory with transparent huge pages (see
    /// `moe_offload::ResidentCopy`): decode streams it at up to 1.5× the
    /// bandwidth of the mapping. Falls back to the mapping, with a note,
    /// when it would not fit in the memory available.
    #[default]
    Copy,
    /// Through the file mapping's page cache, as llama.cpp does.
    Map,
}

impl Default for OffloadOptions {
    fn default() -> OffloadOptions {
        OffloadOptions {
            loader_threads: 4,
            prefetch: Prefetch::default(),
            prefetch_depth: 1,
            mlock: false,
            io: IoMode::Auto,
            record_routing: false,
            policy: PolicyKind::default(),
            resident: ResidentMode::default(),
        }
    }
}

/// What [`setup`] did.
#[derive(Debug, Clone, Default)]
pub struct SetupReport {
    /// Bytes of resident weights (copied, or advised `MADV_WILLNEED` on the
    /// mapping; locked too, if `locked`).
    pub resident_bytes: u64,
    /// Whether the resident weights were copied into huge pages.
    pub resident_copied: bool,
    /// Why they were not, where [`ResidentMode::Copy`] was asked.
    pub resident_note: Option<String>,
    pub locked: bool,
    /// Why `mlock` failed, with the `RLIMIT_MEMLOCK` hint (not fatal).
    pub mlock_warning: Option<String>,
    /// Whether the expert cache reads with O_DIRECT (`None`: no cache).
    pub direct_io: Option<bool>,
    /// The router's choices, token by token (MoE models, if asked).
    pub routing: Option<Arc<RoutingLog>>,
}

/// Applies `plan` to `model`: advises the resident ranges WILLNEED (and
/// locks them if asked), installs an expert cache of the planned budget
/// (or leaves experts on the mapping), and sets the prefetch predictor.
pub fn setup(model: &mut Model, plan: &MemoryPlan, opts: &OffloadOptions) -> Result<SetupReport> {
    setup_with_progress(model, plan, opts, &mut |_, _| {})
}

/// [`setup`], calling `progress(done, total)` (bytes) while the resident
/// weights are copied.
pub fn setup_with_progress(model: &mut Model, plan: &MemoryPlan, opts: &OffloadOptions, progress: &mut dyn FnMut(u64, u64)) -> Result<SetupReport> {
    let file = Arc::clone(model.file().file());
    let ranges = model.resident_ranges();
    let mut report = SetupReport { resident_bytes: ranges.iter().map(|r| r.end - r.start).sum(), ..Default::default() };
    if matches!(plan.experts, ExpertPlan::Cache { .. }) {
        // The cache reads experts itself: no read-around into their slabs
        // when a resident page next to them faults (8 MiB windows on some
        // disks; ~300 MB of page cache on a Mixtral file).
        for r in model.expert_ranges().iter().flatten() {
            for slab in [&r.gate, &r.up, &r.down] {
                file.advise_random(slab.clone());
            }
        }
    }
    if opts.resident == ResidentMode::Copy {
        match copy_fits(report.resident_bytes, mem_available()) {
            Ok(()) => {
                let copy = ResidentCopy::read(&file, &ranges, progress)?;
                if matches!(plan.experts, ExpertPlan::Cache { .. }) {
                    // Memory is what the cache is for: do not hold these
                    // bytes twice. (A dense model keeps its page cache, so
                    // that the next start reads nothing from disk.)
                    copy.drop_page_cache(&file);
                }
                model.set_resident_copy(copy);
                report.resident_copied = true;
            }
            Err(note) => report.resident_note = Some(note),
        }
    }
    if !report.resident_copied {
        for r in &ranges {
            file.advise_willneed(r.clone());
        }
    }
    if opts.mlock {
        let locked = match model.resident_copy() {
            Some(copy) => copy.lock(),
            None => ranges.iter().try_for_each(|r| file.lock_range(r.clone())),
        };
        match locked {
            Ok(()) => report.locked = true,
            Err(e) => report.mlock_warning = Some(mlock_warning(report.resident_bytes, &e)),
        }
    }
    // Only a cache can use the hints: the mapping ignores them.
    let prefetch = if matches!(plan.experts, ExpertPlan::Cache { .. }) { opts.prefetch } else { Prefetch::Off };
    model.set_prefetch(prefetch);
    model.set_prefetch_depth(opts.prefetch_depth);
    let cache = match plan.experts {
        ExpertPlan::Cache { budget, .. } => {
            let config = CacheConfig {
                budget_bytes: budget,
                loader_threads: opts.loader_threads,
                prefetch: prefetch != Prefetch::Off,
                io: opts.io,
                faults: None,
            };
            let c = model.config();
            let policy = opts.policy.build(c.n_layer, c.n_expert_used);
            let cache = ExpertCache::with_policy(Arc::clone(&file), model.expert_ranges(), config, policy)?;
            report.direct_io = Some(cache.is_direct_io());
            Some(Box::new(cache) as Box<dyn ExpertSource>)
        }
        _ => None,
    };
    if opts.record_routing && model.config().is_moe() {
        let inner = cache.unwrap_or_else(|| Box::new(MappedExperts::new(file, model.expert_ranges())));
        let log = Arc::new(RoutingLog::new());
        let k = model.config().n_expert_used;
        model.set_expert_source(Box::new(RecordingSource::new(inner, Arc::clone(&log), k)));
        report.routing = Some(log);
    } else if let Some(cache) = cache {
        model.set_expert_source(cache);
    }
    Ok(report)
}

/// Whether a copy of `resident` bytes fits in `available` (MemAvailable,
/// if known) with [`DEFAULT_HEADROOM`] to spare; if not, the note saying
/// why the mapping is used instead. A dense model larger than RAM must
/// stay on the mapping, where the page cache can evict and re-read it.
fn copy_fits(resident: u64, available: Option<u64>) -> std::result::Result<(), String> {
    match available {
        Some(a) if resident.saturating_add(DEFAULT_HEADROOM) > a => Err(format!(
            "resident weights ({}) read through the mapping: a copy in huge pages would not fit in the {} available with {} to spare",
            human(resident),
            human(a),
            human(DEFAULT_HEADROOM)
        )),
        _ => Ok(()),
    }
}

fn mlock_warning(bytes: u64, e: &std::io::Error) -> String {
    let limit = match memlock_limit() {
        Some(Some(l)) => format!("RLIMIT_MEMLOCK is {}", human(l)),
        Some(None) => "RLIMIT_MEMLOCK is unlimited, so RAM itself may be short".to_string(),
        None => "RLIMIT_MEMLOCK is unknown".to_string(),
    };
    format!(
        "--mlock: could not lock the {} of resident weights ({e}); {limit}. Raise it (`ulimit -l unlimited`, \
         LimitMEMLOCK= for a systemd service, or memlock in /etc/security/limits.conf) or run without --mlock. \
         Continuing unlocked.",
        human(bytes)
    )
}
