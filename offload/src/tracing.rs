//! [`TracingSource`]: an [`ExpertSource`] that writes the cache side of a
//! routing trace (requests, prefetch hints, each access's outcome, bytes and
//! wait) and forwards every call. The forward-pass side (pass boundaries,
//! routes) is written by the model's observer into the same
//! [`TraceWriter`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::expert::{ExpertBytes, ExpertKey, ExpertSource};
use crate::stats::{CacheStats, LayerStats};
use crate::trace::{Outcome, TraceWriter};
use crate::OffloadError;

/// The writer shared by the source and the forward-pass observer.
pub type SharedTrace = Arc<Mutex<TraceWriter>>;

pub fn lock(t: &SharedTrace) -> MutexGuard<'_, TraceWriter> {
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct TracingSource {
    inner: Box<dyn ExpertSource>,
    trace: SharedTrace,
    /// Cache charge per expert, `[layer][expert]` (a demand miss reads it).
    bytes: Vec<Vec<u64>>,
}

impl TracingSource {
    pub fn new(
        inner: Box<dyn ExpertSource>,
        trace: SharedTrace,
        bytes: Vec<Vec<u64>>,
    ) -> TracingSource {
        TracingSource {
            inner,
            trace,
            bytes,
        }
    }
}

/// How a `with_expert` call went, from its layer's counters before and
/// after (only `with_expert` moves hits, misses and prefetch hits).
fn outcome(before: &Option<LayerStats>, after: &Option<LayerStats>) -> (Outcome, u64) {
    let (Some(b), Some(a)) = (before, after) else {
        return (Outcome::Unknown, 0);
    };
    let prefetched = a.prefetch_hits > b.prefetch_hits;
    let wait_us = (a.stall_time.saturating_sub(b.stall_time)).as_micros() as u64;
    let o = match (a.hits > b.hits, prefetched) {
        (true, false) => Outcome::Hit,
        (true, true) => Outcome::Prefetched,
        (false, false) => Outcome::Miss,
        (false, true) => Outcome::PrefetchedLate,
    };
    (o, wait_us)
}

impl ExpertSource for TracingSource {
    fn with_expert(
        &self,
        key: ExpertKey,
        f: &mut dyn FnMut(ExpertBytes<'_>),
    ) -> Result<(), OffloadError> {
        let before = self.inner.layer_stats(key.layer);
        let r = self.inner.with_expert(key, f);
        let after = self.inner.layer_stats(key.layer);
        let (o, wait_us) = outcome(&before, &after);
        let bytes = match o {
            Outcome::Miss => self
                .bytes
                .get(key.layer as usize)
                .and_then(|l| l.get(key.expert as usize))
                .copied()
                .unwrap_or(0),
            _ => 0,
        };
        if r.is_ok() {
            lock(&self.trace).access(key, o, bytes, wait_us);
        }
        r
    }

    fn request(&self, keys: &[ExpertKey]) {
        lock(&self.trace).request(keys);
        self.inner.request(keys);
    }

    /// Hints go one by one, so that each one's "a read started" is known
    /// (from its layer's prefetch counter).
    fn prefetch(&self, keys: &[ExpertKey]) {
        let mut hints = Vec::with_capacity(keys.len());
        for &k in keys {
            let before = self
                .inner
                .layer_stats(k.layer)
                .map_or(0, |s| s.prefetch_issued);
            self.inner.prefetch(std::slice::from_ref(&k));
            let after = self
                .inner
                .layer_stats(k.layer)
                .map_or(0, |s| s.prefetch_issued);
            hints.push((k, after > before));
        }
        lock(&self.trace).prefetch(&hints);
    }

    fn is_ready(&self, key: ExpertKey) -> bool {
        self.inner.is_ready(key)
    }

    fn preload(&self, keys: &[ExpertKey]) -> usize {
        self.inner.preload(keys)
    }

    fn stats(&self) -> Option<CacheStats> {
        self.inner.stats()
    }

    fn layer_stats(&self, layer: u32) -> Option<LayerStats> {
        self.inner.layer_stats(layer)
    }
}
