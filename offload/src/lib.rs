//! `moe-offload`: the mapped weight file and the expert cache.
//!
//! This crate deals in byte ranges and keys only; it knows nothing of quant
//! formats or model architecture. The model asks for an expert by
//! [`ExpertKey`] and receives the bytes of its gate, up and down slabs,
//! either straight from the mapping ([`MappedExperts`]) or from a
//! byte-budgeted cache of owned buffers filled by loader threads
//! ([`ExpertCache`]). The cache changes speed, never output.
//!
//! Module map:
//! - [`cache`]: `ExpertCache`, its configuration and the `ExpertSource` impl.
//! - `state`: the cache's bookkeeping under one mutex (slots, pins, budget,
//!   eviction, handing an evicted expert's buffer on to the next load).
//! - `loader`: loader threads, jobs and the per-load completion signal.
//! - [`policy`]: the swappable eviction order (LRU, LFU, LRFU).
//! - `plan`: turning slab ranges into page-aligned reads and buffer offsets.
//! - `reader`: positioned reads, O_DIRECT with buffered fallback.
//! - `resident`: `ResidentCopy`, the resident weights copied into huge pages.
//! - `direct_io`: the unsafe bits (aligned buffers, libc calls).
//! - `sigbus`: a SIGBUS on a mapped model file becomes a clear fatal error.
//! - [`stats`]: exact counters, snapshots, per-token deltas, table and JSON.
//! - [`simulate`]: replaying a trace against cache sizes and eviction policies.
//! - [`trace`]: the routing-trace format, its writer and reader;
//!   `tracing`: the `ExpertSource` wrapper that records the cache side.

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod cache;
mod direct_io;
mod expert;
mod loader;
mod plan;
pub mod policy;
mod reader;
mod resident;
mod sigbus;
pub mod simulate;
mod state;
pub mod stats;
pub mod trace;
mod tracing;
mod weight_file;

pub use cache::{CacheConfig, ExpertCache, FaultInjector, IoMode, ReadFault};
pub use expert::{ExpertBytes, ExpertKey, ExpertRanges, ExpertSource, MappedExperts};
pub use resident::{ResidentCopy, ResidentError};
pub use policy::{EvictionPolicy, LfuPolicy, LrfuPolicy, LruPolicy, PolicyKind};
pub use stats::{CacheStats, LayerStats, TokenDelta};
pub use weight_file::{FileChanged, OutOfBounds, WeightFile};
pub use trace::{Trace, TraceError, TraceHeader, TraceWriter};
pub use tracing::{SharedTrace, TracingSource};

/// Errors from fetching expert bytes or setting up the expert cache.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
    #[error("{path}: reading expert {key:?}: {source}")]
    Io {
        path: std::path::PathBuf,
        key: ExpertKey,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "expert cache budget of {budget} bytes is too small: the largest expert \
         (layer {} expert {}) needs {minimum} bytes, so the budget must be at least {minimum} bytes",
        key.layer, key.expert
    )]
    BudgetTooSmall {
        budget: u64,
        minimum: u64,
        key: ExpertKey,
    },
    #[error("no expert {key:?} in this model (layer or expert index out of range)")]
    UnknownExpert { key: ExpertKey },
    #[error("invalid expert cache configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("starting expert loader threads: {0}")]
    Spawn(#[source] std::io::Error),
}
