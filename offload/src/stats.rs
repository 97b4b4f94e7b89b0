//! Exact cache counters (atomics), their snapshots, per-token deltas, and a
//! table and JSON rendering.
//!
//! Definitions (each `with_expert` call is exactly one hit or one miss):
//! - **hit**: the expert was resident and ready, and either used before or
//!   brought in by a prefetch;
//! - **miss**: anything else: absent, still being read (the call waited), or
//!   the first use of a read started on demand (`request`/`with_expert`);
//! - **prefetch hit**: the first use of an expert brought in by `prefetch`
//!   (even if the call still had to wait for the end of the read);
//! - **wasted prefetch**: an expert brought in by `prefetch` and evicted
//!   before any use;
//! - **bytes read**: slab bytes brought in; **I/O bytes**: bytes the read
//!   calls returned (O_DIRECT reads whole pages, so a little more);
//! - **read time**: summed over loads, per loader thread; **stall time**:
//!   time `with_expert` spent waiting for a read.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Counters of one layer (live).
#[derive(Default)]
pub(crate) struct LayerCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub prefetch_issued: AtomicU64,
    pub prefetch_hits: AtomicU64,
    pub prefetch_wasted: AtomicU64,
    pub loads: AtomicU64,
    pub bytes_read: AtomicU64,
    pub io_bytes: AtomicU64,
    pub read_ns: AtomicU64,
    pub stall_ns: AtomicU64,
    pub evictions: AtomicU64,
}

/// All live counters.
pub(crate) struct Counters {
    pub layers: Vec<LayerCounters>,
    pub peak_resident: AtomicU64,
    pub over_budget_events: AtomicU64,
    pub prefetch_dropped: AtomicU64,
    pub read_errors: AtomicU64,
    pub direct_reads: AtomicU64,
    pub buffered_reads: AtomicU64,
    pub recycled_buffers: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, v: u64) {
    c.fetch_add(v, Relaxed);
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Counters {
    pub(crate) fn new(n_layers: usize) -> Counters {
        Counters {
            layers: (0..n_layers).map(|_| LayerCounters::default()).collect(),
            peak_resident: AtomicU64::new(0),
            over_budget_events: AtomicU64::new(0),
            prefetch_dropped: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            direct_reads: AtomicU64::new(0),
            buffered_reads: AtomicU64::new(0),
            recycled_buffers: AtomicU64::new(0),
        }
    }

    pub(crate) fn layer(&self, layer: u32) -> &LayerCounters {
        &self.layers[layer as usize]
    }

    pub(crate) fn snapshot_layers(&self) -> Vec<LayerStats> {
        self.layers.iter().map(LayerCounters::snapshot).collect()
    }
}

impl LayerCounters {
    pub(crate) fn snapshot(&self) -> LayerStats {
        let c = self;
        LayerStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            prefetch_issued: c.prefetch_issued.load(Relaxed),
            prefetch_hits: c.prefetch_hits.load(Relaxed),
            prefetch_wasted: c.prefetch_wasted.load(Relaxed),
            loads: c.loads.load(Relaxed),
            bytes_read: c.bytes_read.load(Relaxed),
            io_bytes: c.io_bytes.load(Relaxed),
            read_time: Duration::from_nanos(c.read_ns.load(Relaxed)),
            stall_time: Duration::from_nanos(c.stall_ns.load(Relaxed)),
            evictions: c.evictions.load(Relaxed),
        }
    }
}

/// One layer's counters (a snapshot), or a sum over layers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStats {
    pub hits: u64,
    pub misses: u64,
    /// Prefetch reads started.
    pub prefetch_issued: u64,
    pub prefetch_hits: u64,
    pub prefetch_wasted: u64,
    /// Completed expert reads (demand and prefetch).
    pub loads: u64,
    pub bytes_read: u64,
    pub io_bytes: u64,
    pub read_time: Duration,
    pub stall_time: Duration,
    /// Experts of this layer evicted.
    pub evictions: u64,
}

impl LayerStats {
    pub fn accesses(&self) -> u64 {
        self.hits + self.misses
    }

    /// Hits / accesses, `None` before any access.
    pub fn hit_rate(&self) -> Option<f64> {
        (self.accesses() > 0).then(|| self.hits as f64 / self.accesses() as f64)
    }

    /// I/O bytes per second of read time (per loader thread: parallel loads
    /// add their times, so this is the throughput one read sees).
    pub fn read_throughput(&self) -> Option<f64> {
        let s = self.read_time.as_secs_f64();
        (s > 0.0).then(|| self.io_bytes as f64 / s)
    }

    /// Adds `o`'s counters and times (totals over layers or tokens).
    pub fn add(&mut self, o: &LayerStats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.prefetch_issued += o.prefetch_issued;
        self.prefetch_hits += o.prefetch_hits;
        self.prefetch_wasted += o.prefetch_wasted;
        self.loads += o.loads;
        self.bytes_read += o.bytes_read;
        self.io_bytes += o.io_bytes;
        self.read_time += o.read_time;
        self.stall_time += o.stall_time;
        self.evictions += o.evictions;
    }

    fn minus(&self, o: &LayerStats) -> LayerStats {
        LayerStats {
            hits: self.hits.saturating_sub(o.hits),
            misses: self.misses.saturating_sub(o.misses),
            prefetch_issued: self.prefetch_issued.saturating_sub(o.prefetch_issued),
            prefetch_hits: self.prefetch_hits.saturating_sub(o.prefetch_hits),
            prefetch_wasted: self.prefetch_wasted.saturating_sub(o.prefetch_wasted),
            loads: self.loads.saturating_sub(o.loads),
            bytes_read: self.bytes_read.saturating_sub(o.bytes_read),
            io_bytes: self.io_bytes.saturating_sub(o.io_bytes),
            read_time: self.read_time.saturating_sub(o.read_time),
            stall_time: self.stall_time.saturating_sub(o.stall_time),
            evictions: self.evictions.saturating_sub(o.evictions),
        }
    }
}

/// A snapshot of the whole cache's statistics. Each counter is exact; a
/// snapshot taken while loads run is not one atomic cut across counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Indexed by layer.
    pub layers: Vec<LayerStats>,
    pub budget_bytes: u64,
    /// Bytes of cached and in-flight expert buffers now.
    pub resident_bytes: u64,
    pub peak_resident_bytes: u64,
    /// Loads that had to start with the budget already full of pinned or
    /// in-flight experts (the cache then runs over budget until unpinned).
    pub over_budget_events: u64,
    /// Prefetches not started because only in-use or wanted experts could
    /// have made room.
    pub prefetch_dropped: u64,
    pub read_errors: u64,
    /// Extents read with O_DIRECT / buffered.
    pub direct_reads: u64,
    pub buffered_reads: u64,
    /// Times O_DIRECT was given up for buffered reads (EINVAL).
    pub direct_fallbacks: u64,
    /// Loads that read into an evicted expert's buffer instead of a new one.
    pub recycled_buffers: u64,
    /// Whether reads currently use O_DIRECT.
    pub direct_io: bool,
    pub prefetch_enabled: bool,
}

impl CacheStats {
    /// Sum over layers.
    pub fn total(&self) -> LayerStats {
        let mut t = LayerStats::default();
        for l in &self.layers {
            t.add(l);
        }
        t
    }

    pub fn evictions(&self) -> u64 {
        self.total().evictions
    }

    /// Counters accumulated since `earlier` (a snapshot of the same
    /// cache); gauges (resident, peak, flags) are this snapshot's.
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        let zero = LayerStats::default();
        CacheStats {
            layers: self
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| l.minus(earlier.layers.get(i).unwrap_or(&zero)))
                .collect(),
            over_budget_events: self
                .over_budget_events
                .saturating_sub(earlier.over_budget_events),
            prefetch_dropped: self
                .prefetch_dropped
                .saturating_sub(earlier.prefetch_dropped),
            read_errors: self.read_errors.saturating_sub(earlier.read_errors),
            direct_reads: self.direct_reads.saturating_sub(earlier.direct_reads),
            buffered_reads: self.buffered_reads.saturating_sub(earlier.buffered_reads),
            direct_fallbacks: self
                .direct_fallbacks
                .saturating_sub(earlier.direct_fallbacks),
            recycled_buffers: self
                .recycled_buffers
                .saturating_sub(earlier.recycled_buffers),
            ..self.clone()
        }
    }

    /// The JSON form of [`CacheStats::write_json`], as a string.
    pub fn to_json(&self) -> String {
        let mut v = Vec::new();
        self.write_json(&mut v)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(v).expect("JSON output is ASCII")
    }

    /// Writes one JSON object: the global figures, `total`, and `layers`
    /// (an array indexed by layer). Durations are in seconds; ratios that
    /// are undefined (no accesses yet) are `null`.
    pub fn write_json(&self, w: &mut dyn Write) -> io::Result<()> {
        write!(
            w,
            "{{\"budget_bytes\":{},\"resident_bytes\":{},\"peak_resident_bytes\":{},\
             \"evictions\":{},\"over_budget_events\":{},\"prefetch_dropped\":{},\
             \"read_errors\":{},\"direct_reads\":{},\"buffered_reads\":{},\
             \"direct_fallbacks\":{},\"recycled_buffers\":{},\"direct_io\":{},\"prefetch_enabled\":{},\"total\":",
            self.budget_bytes,
            self.resident_bytes,
            self.peak_resident_bytes,
            self.evictions(),
            self.over_budget_events,
            self.prefetch_dropped,
            self.read_errors,
            self.direct_reads,
            self.buffered_reads,
            self.direct_fallbacks,
            self.recycled_buffers,
            self.direct_io,
            self.prefetch_enabled,
        )?;
        write_layer_json(w, &self.total())?;
        write!(w, ",\"layers\":[")?;
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 {
                write!(w, ",")?;
            }
            write_layer_json(w, l)?;
        }
        write!(w, "]}}")
    }
}

fn json_f64(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".to_string(),
    }
}

fn write_layer_json(w: &mut dyn Write, l: &LayerStats) -> io::Result<()> {
    write!(
        w,
        "{{\"hits\":{},\"misses\":{},\"hit_rate\":{},\"prefetch_issued\":{},\"prefetch_hits\":{},\
         \"prefetch_wasted\":{},\"loads\":{},\"bytes_read\":{},\"io_bytes\":{},\"read_s\":{},\
         \"read_bytes_per_s\":{},\"stall_s\":{},\"evictions\":{}}}",
        l.hits,
        l.misses,
        json_f64(l.hit_rate()),
        l.prefetch_issued,
        l.prefetch_hits,
        l.prefetch_wasted,
        l.loads,
        l.bytes_read,
        l.io_bytes,
        json_f64(Some(l.read_time.as_secs_f64())),
        json_f64(l.read_throughput()),
        json_f64(Some(l.stall_time.as_secs_f64())),
        l.evictions,
    )
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn gbps(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{:.2}", r / 1e9))
}

fn row(f: &mut fmt::Formatter<'_>, name: &str, l: &LayerStats) -> fmt::Result {
    writeln!(
        f,
        "{name:>5} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>10.1} {:>9.3} {:>7} {:>9.3} {:>6}",
        l.hits,
        l.misses,
        pct(l.hit_rate()),
        l.prefetch_issued,
        l.prefetch_hits,
        l.prefetch_wasted,
        mib(l.bytes_read),
        l.read_time.as_secs_f64(),
        gbps(l.read_throughput()),
        l.stall_time.as_secs_f64(),
        l.evictions,
    )
}

/// A per-layer table (layers with no activity are skipped) and a total row,
/// then the global figures.
impl fmt::Display for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>5} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>10} {:>9} {:>7} {:>9} {:>6}",
            "layer",
            "hits",
            "misses",
            "hit%",
            "pf",
            "pf-hit",
            "pf-wst",
            "read MiB",
            "read s",
            "GB/s",
            "stall s",
            "evict"
        )?;
        for (i, l) in self.layers.iter().enumerate() {
            if *l != LayerStats::default() {
                row(f, &i.to_string(), l)?;
            }
        }
        row(f, "total", &self.total())?;
        writeln!(
            f,
            "budget {:.1} MiB, resident {:.1} MiB, peak {:.1} MiB, over-budget events {}, \
             prefetch dropped {}, read errors {}",
            mib(self.budget_bytes),
            mib(self.resident_bytes),
            mib(self.peak_resident_bytes),
            self.over_budget_events,
            self.prefetch_dropped,
            self.read_errors,
        )?;
        write!(
            f,
            "I/O: {} ({} direct, {} buffered extent reads, {} fallbacks), {} buffers recycled, prefetch {}",
            if self.direct_io { "O_DIRECT" } else { "buffered" },
            self.direct_reads,
            self.buffered_reads,
            self.direct_fallbacks,
            self.recycled_buffers,
            if self.prefetch_enabled { "on" } else { "off" },
        )
    }
}

/// What one token (or any stretch between two marks) cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenDelta {
    pub hits: u64,
    pub misses: u64,
    pub bytes_read: u64,
    pub io_bytes: u64,
    pub stall_time: Duration,
}

impl TokenDelta {
    pub fn hit_rate(&self) -> Option<f64> {
        let n = self.hits + self.misses;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }

    pub(crate) fn from_stats(d: &CacheStats) -> TokenDelta {
        let t = d.total();
        TokenDelta {
            hits: t.hits,
            misses: t.misses,
            bytes_read: t.bytes_read,
            io_bytes: t.io_bytes,
            stall_time: t.stall_time,
        }
    }
}

impl fmt::Display for TokenDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hit rate {}, read {:.1} MiB, stalled {:.3} s",
            pct(self.hit_rate()),
            mib(self.bytes_read),
            self.stall_time.as_secs_f64()
        )
    }
}
