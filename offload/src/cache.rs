//! `ExpertCache`: experts in owned buffers under a byte budget, read by
//! loader threads on demand or ahead of time, and lent to the forward pass
//! through [`ExpertSource`].
//!
//! Typical use per MoE layer (the forward pass):
//! 1. `request(&chosen)`: start reading every missing chosen expert now,
//!    in parallel;
//! 2. `prefetch(&predicted_next)`: optional hints for the next layer;
//! 3. `with_expert(key, f)` for each chosen expert: waits only for its own
//!    read, and the expert stays pinned (never evicted) while `f` runs.
//!
//! Calling only `with_expert` is also correct, just slower (one read at a
//! time).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::expert::{ExpertBytes, ExpertKey, ExpertRanges, ExpertSource};
use crate::loader::{self, Pending, Queues};
use crate::plan::ReadPlan;
use crate::policy::{EvictionPolicy, LruPolicy};
use crate::reader::SlabReader;
use crate::state::{Grant, Origin, Phase, Room, State, NOT_WANTED};
use crate::stats::{add, nanos, CacheStats, Counters, TokenDelta};
use crate::weight_file::WeightFile;
use crate::OffloadError;

pub use crate::reader::{FaultInjector, IoMode, ReadFault};

/// How to build an [`ExpertCache`].
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Bytes of expert buffers the cache may hold (see
    /// [`ExpertCache::footprint`] for what one expert costs). Must be at
    /// least the largest expert's footprint.
    pub budget_bytes: u64,
    /// Threads issuing reads; more keep more reads in flight.
    pub loader_threads: usize,
    /// Whether `prefetch` hints start reads (can be changed later).
    pub prefetch: bool,
    pub io: IoMode,
    /// Faults to inject into reads (tests of the error paths); `None`.
    pub faults: Option<FaultInjector>,
}

impl CacheConfig {
    /// `budget_bytes` with 4 loader threads, prefetch on, O_DIRECT where
    /// supported.
    pub fn new(budget_bytes: u64) -> CacheConfig {
        CacheConfig {
            budget_bytes,
            loader_threads: 4,
            prefetch: true,
            io: IoMode::Auto,
            faults: None,
        }
    }
}

/// State shared by the cache handle and its loader threads.
pub(crate) struct Shared {
    path: PathBuf,
    /// `plans[layer][expert]`.
    plans: Vec<Vec<ReadPlan>>,
    pub(crate) reader: SlabReader,
    state: Mutex<State>,
    pub(crate) counters: Counters,
    prefetch_enabled: AtomicBool,
    pub(crate) shutdown: AtomicBool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge the cache: every update of the
        // state is completed before anything that could panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn plan(&self, key: ExpertKey) -> Result<&ReadPlan, OffloadError> {
        self.plans
            .get(key.layer as usize)
            .and_then(|l| l.get(key.expert as usize))
            .ok_or(OffloadError::UnknownExpert { key })
    }
}

/// A byte-budgeted, LRU (by default) cache of experts in owned buffers.
pub struct ExpertCache {
    shared: Arc<Shared>,
    /// `None` only while dropping (closing the queues stops the loaders).
    queues: Option<Queues>,
    loaders: Vec<JoinHandle<()>>,
    mark: Mutex<CacheStats>,
}

impl ExpertCache {
    /// A cache over `ranges[layer][expert]` of `file`, with LRU eviction.
    pub fn new(
        file: Arc<WeightFile>,
        ranges: Vec<Vec<ExpertRanges>>,
        config: CacheConfig,
    ) -> Result<ExpertCache, OffloadError> {
        ExpertCache::with_policy(file, ranges, config, Box::new(LruPolicy::new()))
    }

    /// As [`ExpertCache::new`], with another eviction policy.
    pub fn with_policy(
        file: Arc<WeightFile>,
        ranges: Vec<Vec<ExpertRanges>>,
        config: CacheConfig,
        policy: Box<dyn EvictionPolicy>,
    ) -> Result<ExpertCache, OffloadError> {
        if config.loader_threads == 0 {
            return Err(OffloadError::InvalidConfig(
                "loader_threads must be at least 1",
            ));
        }
        for r in ranges.iter().flatten() {
            for slab in [&r.gate, &r.up, &r.down] {
                file.bytes(slab.clone())?;
            }
        }
        if let Some((key, minimum)) = largest_expert(&ranges) {
            if config.budget_bytes < minimum {
                return Err(OffloadError::BudgetTooSmall {
                    budget: config.budget_bytes,
                    minimum,
                    key,
                });
            }
        }
        let plans: Vec<Vec<ReadPlan>> = ranges
            .iter()
            .map(|l| l.iter().map(ReadPlan::new).collect())
            .collect();
        let shared = Arc::new(Shared {
            path: file.path().to_path_buf(),
            counters: Counters::new(plans.len()),
            plans,
            reader: SlabReader::new(file, config.io, config.faults, config.loader_threads)
                .map_err(OffloadError::Spawn)?,
            state: Mutex::new(State::new(config.budget_bytes, policy)),
            prefetch_enabled: AtomicBool::new(config.prefetch),
            shutdown: AtomicBool::new(false),
        });
        let (queues, loaders) =
            loader::spawn(&shared, config.loader_threads).map_err(OffloadError::Spawn)?;
        Ok(ExpertCache {
            shared,
            queues: Some(queues),
            loaders,
            mark: Mutex::new(CacheStats::default()),
        })
    }

    /// What one expert costs against the budget: its slabs rounded out to
    /// whole pages (the buffer O_DIRECT reads into), shared pages once. An
    /// expert read into an evicted expert's buffer is charged that buffer's
    /// size, at most 1/64 more.
    pub fn footprint(ranges: &ExpertRanges) -> u64 {
        ReadPlan::new(ranges).buf_len as u64
    }

    /// The smallest budget a cache over `ranges` accepts.
    pub fn min_budget(ranges: &[Vec<ExpertRanges>]) -> u64 {
        largest_expert(ranges).map_or(0, |(_, b)| b)
    }

    pub fn budget(&self) -> u64 {
        self.shared.lock().budget
    }

    /// Bytes of expert buffers held now (ready and in flight).
    pub fn resident_bytes(&self) -> u64 {
        self.shared.lock().resident
    }

    /// Whether `key`'s bytes are in the cache and ready.
    pub fn is_resident(&self, key: ExpertKey) -> bool {
        self.shared
            .lock()
            .slots
            .get(&key)
            .is_some_and(|s| matches!(s.phase, Phase::Ready(_)))
    }

    /// Whether reads currently use O_DIRECT.
    pub fn is_direct_io(&self) -> bool {
        self.shared.reader.is_direct()
    }

    pub fn set_prefetch(&self, on: bool) {
        self.shared.prefetch_enabled.store(on, Ordering::Relaxed);
    }

    pub fn prefetch_enabled(&self) -> bool {
        self.shared.prefetch_enabled.load(Ordering::Relaxed)
    }

    /// The router chose `keys` for the layer about to run: start reading
    /// every missing one now (in parallel, demand priority), and protect
    /// them from eviction by hints until used or until the next `request`.
    /// Never exceeds the budget: a key that does not fit now is read by its
    /// `with_expert` instead. Unknown keys are ignored here (`with_expert`
    /// reports them).
    pub fn request(&self, keys: &[ExpertKey]) {
        let sh = &*self.shared;
        let mut st = sh.lock();
        st.request_gen += 1;
        let gen = st.request_gen;
        for &key in keys {
            let Ok(plan) = sh.plan(key) else { continue };
            if let Some(slot) = st.slots.get_mut(&key) {
                slot.wanted_gen = gen;
                if let Phase::Loading(p) = &slot.phase {
                    self.promote(p);
                }
                st.policy.touched(key);
            } else if let Some(grant) = st.reserve(plan.buf_len as u64, Room::Polite, &sh.counters)
            {
                let p = st.insert_loading(key, grant, Origin::Demand, false, &sh.counters);
                self.send(&mut st, &self.queues().demand, p);
            }
        }
    }

    /// `keys` will probably be used soon: start reading the missing ones
    /// (behind demand reads) if that evicts nothing in use or wanted.
    /// Resident ones count as recently used. No-op while prefetch is off.
    pub fn prefetch(&self, keys: &[ExpertKey]) {
        if self.prefetch_enabled() {
            self.hint(keys);
        }
    }

    /// A warm start: [`ExpertCache::prefetch`] whether or not prefetch is
    /// on. Returns how many reads started.
    pub fn preload(&self, keys: &[ExpertKey]) -> usize {
        let before = self.stats().total().prefetch_issued;
        self.hint(keys);
        (self.stats().total().prefetch_issued - before) as usize
    }

    fn hint(&self, keys: &[ExpertKey]) {
        let sh = &*self.shared;
        let mut st = sh.lock();
        for &key in keys {
            let Ok(plan) = sh.plan(key) else { continue };
            if st.slots.contains_key(&key) {
                st.policy.touched(key);
            } else if let Some(grant) = st.reserve(plan.buf_len as u64, Room::Polite, &sh.counters)
            {
                let p = st.insert_loading(key, grant, Origin::Prefetch, false, &sh.counters);
                add(&sh.counters.layer(key.layer).prefetch_issued, 1);
                self.send(&mut st, &self.queues().prefetch, p);
            } else {
                add(&sh.counters.prefetch_dropped, 1);
            }
        }
    }

    /// A snapshot of all counters.
    pub fn stats(&self) -> CacheStats {
        let sh = &*self.shared;
        let st = sh.lock();
        let c = &sh.counters;
        CacheStats {
            layers: c.snapshot_layers(),
            budget_bytes: st.budget,
            resident_bytes: st.resident,
            peak_resident_bytes: c.peak_resident.load(Ordering::Relaxed),
            over_budget_events: c.over_budget_events.load(Ordering::Relaxed),
            prefetch_dropped: c.prefetch_dropped.load(Ordering::Relaxed),
            read_errors: c.read_errors.load(Ordering::Relaxed),
            direct_reads: c.direct_reads.load(Ordering::Relaxed),
            buffered_reads: c.buffered_reads.load(Ordering::Relaxed),
            recycled_buffers: c.recycled_buffers.load(Ordering::Relaxed),
            direct_fallbacks: sh.reader.direct_fallbacks.load(Ordering::Relaxed),
            direct_io: sh.reader.is_direct(),
            prefetch_enabled: self.prefetch_enabled(),
        }
    }

    /// Hits, misses and bytes read since the previous `mark` (or since the
    /// cache was built): call once per token for per-token figures.
    pub fn mark(&self) -> TokenDelta {
        let now = self.stats();
        let mut last = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        let delta = now.since(&last);
        *last = now;
        TokenDelta::from_stats(&delta)
    }

    fn queues(&self) -> &Queues {
        self.queues.as_ref().expect("queues live until drop")
    }

    /// Queues a prefetch-origin load on the demand side too, now that the
    /// router wants it.
    fn promote(&self, p: &Arc<Pending>) {
        if p.needs_promotion() {
            // A failed send means the loaders are gone; the original job's
            // fate is then the same, handled where it was queued.
            let _ = self.queues().demand.send(Arc::clone(p));
        }
    }

    /// Queues a new load; if no loader can take it, fails it at once.
    fn send(&self, st: &mut State, tx: &crossbeam::channel::Sender<Arc<Pending>>, p: Arc<Pending>) {
        if let Err(e) = tx.send(p) {
            let p = e.into_inner();
            st.remove_failed(p.key, p.id);
            add(&self.shared.counters.read_errors, 1);
            p.fail_now("expert loader threads have exited");
        }
    }
}

/// Releases a `with_expert` pin, even if the closure panics.
struct Pin<'a> {
    shared: &'a Shared,
    key: ExpertKey,
    id: u64,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        self.shared
            .lock()
            .unpin(self.key, self.id, &self.shared.counters);
    }
}

enum Got {
    Ready(Arc<crate::state::ExpertBuf>),
    Wait(Arc<Pending>),
}

impl ExpertSource for ExpertCache {
    fn with_expert(
        &self,
        key: ExpertKey,
        f: &mut dyn FnMut(ExpertBytes<'_>),
    ) -> Result<(), OffloadError> {
        let sh = &*self.shared;
        let charge = sh.plan(key)?.buf_len as u64;
        let lc = sh.counters.layer(key.layer);
        let mut st = sh.lock();
        let (id, got) = match st.slots.get_mut(&key) {
            Some(slot) => {
                slot.pins += 1;
                let first_use = !slot.used;
                slot.used = true;
                slot.wanted_gen = NOT_WANTED;
                if first_use && slot.origin == Origin::Prefetch {
                    add(&lc.prefetch_hits, 1);
                }
                let got = match &slot.phase {
                    Phase::Ready(buf) => {
                        let hit = !(first_use && slot.origin == Origin::Demand);
                        add(if hit { &lc.hits } else { &lc.misses }, 1);
                        Got::Ready(Arc::clone(buf))
                    }
                    Phase::Loading(p) => {
                        add(&lc.misses, 1);
                        self.promote(p);
                        Got::Wait(Arc::clone(p))
                    }
                };
                let id = slot.id;
                st.policy.touched(key);
                (id, got)
            }
            None => {
                add(&lc.misses, 1);
                let grant = st
                    .reserve(charge, Room::Any, &sh.counters)
                    .unwrap_or_else(|| {
                        add(&sh.counters.over_budget_events, 1);
                        Grant::fresh(charge)
                    });
                let p = st.insert_loading(key, grant, Origin::Demand, true, &sh.counters);
                let id = p.id;
                self.send(&mut st, &self.queues().demand, Arc::clone(&p));
                (id, Got::Wait(p))
            }
        };
        drop(st);
        let _pin = Pin {
            shared: sh,
            key,
            id,
        };
        let buf = match got {
            Got::Ready(buf) => buf,
            Got::Wait(p) => {
                let start = Instant::now();
                let outcome = p.wait();
                add(&lc.stall_ns, nanos(start.elapsed()));
                let io_err = |source| OffloadError::Io {
                    path: sh.path.clone(),
                    key,
                    source,
                };
                let weak = outcome.map_err(io_err)?;
                // Our pin keeps the slot, and so the buffer, alive.
                weak.upgrade().ok_or_else(|| {
                    io_err(std::io::Error::other("expert buffer vanished while pinned"))
                })?
            }
        };
        f(buf.bytes());
        Ok(())
    }

    fn request(&self, keys: &[ExpertKey]) {
        ExpertCache::request(self, keys);
    }

    fn prefetch(&self, keys: &[ExpertKey]) {
        ExpertCache::prefetch(self, keys);
    }

    fn preload(&self, keys: &[ExpertKey]) -> usize {
        ExpertCache::preload(self, keys)
    }

    fn is_ready(&self, key: ExpertKey) -> bool {
        self.is_resident(key)
    }

    fn stats(&self) -> Option<CacheStats> {
        Some(ExpertCache::stats(self))
    }

    fn layer_stats(&self, layer: u32) -> Option<crate::LayerStats> {
        self.shared
            .counters
            .layers
            .get(layer as usize)
            .map(|c| c.snapshot())
    }
}

impl Drop for ExpertCache {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.queues = None;
        for h in self.loaders.drain(..) {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for ExpertCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("ExpertCache")
            .field("path", &self.shared.path)
            .field("budget", &st.budget)
            .field("resident", &st.resident)
            .field("entries", &st.slots.len())
            .finish()
    }
}

/// The key and footprint of the largest expert.
fn largest_expert(ranges: &[Vec<ExpertRanges>]) -> Option<(ExpertKey, u64)> {
    let mut best: Option<(ExpertKey, u64)> = None;
    for (l, layer) in ranges.iter().enumerate() {
        for (e, r) in layer.iter().enumerate() {
            let b = ExpertCache::footprint(r);
            if best.is_none_or(|(_, m)| b > m) {
                best = Some((
                    ExpertKey {
                        layer: l as u32,
                        expert: e as u32,
                    },
                    b,
                ));
            }
        }
    }
    best
}
