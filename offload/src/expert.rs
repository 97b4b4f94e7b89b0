//! How experts are addressed: `(layer, expert)` → the byte ranges of its
//! gate, up and down slabs in the weight file. Both GGUF expert layouts
//! (merged `ffn_*_exps` and per-expert `ffn_*.E`) reduce to this.

use std::ops::Range;
use std::sync::Arc;

use crate::weight_file::WeightFile;
use crate::OffloadError;

/// One expert of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpertKey {
    pub layer: u32,
    pub expert: u32,
}

/// Absolute file byte ranges of one expert's three weight slabs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertRanges {
    pub gate: Range<u64>,
    pub up: Range<u64>,
    pub down: Range<u64>,
}

impl ExpertRanges {
    pub fn total_bytes(&self) -> u64 {
        (self.gate.end - self.gate.start)
            + (self.up.end - self.up.start)
            + (self.down.end - self.down.start)
    }
}

/// The bytes of one expert's slabs, borrowed from wherever they live (the
/// mapping, or a cache buffer).
#[derive(Debug, Clone, Copy)]
pub struct ExpertBytes<'a> {
    pub gate: &'a [u8],
    pub up: &'a [u8],
    pub down: &'a [u8],
}

/// Where the forward pass gets expert weights from. The plain mapping
/// implements it; the expert cache implements it too, so the forward pass
/// does not change when a cache sits between the model and the file.
///
/// The hint methods have no-op defaults: a source that cannot use them
/// (the plain mapping) ignores them, and results never depend on them.
pub trait ExpertSource: Send + Sync {
    /// Calls `f` with the bytes of expert `key`. The bytes stay valid (and
    /// the expert is never evicted) for the duration of the call.
    fn with_expert(
        &self,
        key: ExpertKey,
        f: &mut dyn FnMut(ExpertBytes<'_>),
    ) -> Result<(), OffloadError>;

    /// "This layer is about to use these experts" (the router's choices):
    /// a cache starts reading every missing one now, in parallel, so each
    /// later `with_expert` waits only for its own read.
    fn request(&self, _keys: &[ExpertKey]) {}

    /// "These experts will probably be used soon" (a prediction): a cache
    /// may start reading them if that costs nothing needed now.
    fn prefetch(&self, _keys: &[ExpertKey]) {}

    /// "Read these now, even with prefetch off" (a warm start): a cache
    /// starts reading the missing ones that fit without evicting anything
    /// wanted, as prefetches (their first use counts as a prefetch hit).
    /// Returns how many reads started.
    fn preload(&self, _keys: &[ExpertKey]) -> usize {
        0
    }

    /// Whether `with_expert(key)` would run without waiting for a read, so
    /// that a caller with several experts to run can take ready ones first
    /// while the others load. A hint: the answer may change at once.
    fn is_ready(&self, _key: ExpertKey) -> bool {
        true
    }

    /// A snapshot of cache statistics, if this source keeps any.
    fn stats(&self) -> Option<crate::CacheStats> {
        None
    }

    /// One layer's counters now (cheaper than [`ExpertSource::stats`]:
    /// no lock), if this source keeps any; `None` also for a layer out of
    /// range.
    fn layer_stats(&self, _layer: u32) -> Option<crate::LayerStats> {
        None
    }
}

/// The llama.cpp way: every expert is read straight from the mapping.
pub struct MappedExperts {
    file: Arc<WeightFile>,
    /// `ranges[layer][expert]`.
    ranges: Vec<Vec<ExpertRanges>>,
}

impl MappedExperts {
    pub fn new(file: Arc<WeightFile>, ranges: Vec<Vec<ExpertRanges>>) -> MappedExperts {
        MappedExperts { file, ranges }
    }

    pub fn ranges(&self, key: ExpertKey) -> &ExpertRanges {
        &self.ranges[key.layer as usize][key.expert as usize]
    }
}

impl ExpertSource for MappedExperts {
    fn with_expert(
        &self,
        key: ExpertKey,
        f: &mut dyn FnMut(ExpertBytes<'_>),
    ) -> Result<(), OffloadError> {
        let r = self.ranges(key);
        let bytes = ExpertBytes {
            gate: self.file.bytes(r.gate.clone())?,
            up: self.file.bytes(r.up.clone())?,
            down: self.file.bytes(r.down.clone())?,
        };
        f(bytes);
        Ok(())
    }
}
