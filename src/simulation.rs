//! What `moe simulate` and `moe report` compute from a trace: every policy
//! at every size, LRU and Belady at one budget for the per-layer view, the
//! rates the tok/s prediction uses, and the run's own hit rate.

use moe_offload::simulate::{simulate, sweep, Policy, Rates, SimResult};
use moe_offload::trace::Outcome;
use moe_offload::Trace;

use crate::error::{Error, Result};
use crate::offload_setup::Size;

/// Everything simulate computes, for printing and plotting.
pub struct Simulation {
    pub trace: Trace,
    pub sizes: Vec<u64>,
    pub policies: Vec<Policy>,
    /// `results[size][policy]`.
    pub results: Vec<Vec<SimResult>>,
    pub layers_at: u64,
    /// LRU and Belady at `layers_at` (also when not in `policies`).
    pub lru_at: SimResult,
    pub belady_at: SimResult,
    pub rates: Rates,
    pub disk_rate: Option<f64>,
    /// The trace's own hit rate (what the run measured), if it had a cache.
    pub recorded_hit_rate: Option<f64>,
    pub recorded_budget: Option<u64>,
}

impl Simulation {
    /// Replays `trace` at `sizes` (percentages of all experts or bytes) with
    /// `policies`; the per-layer view at `layers_at` (default: the trace's
    /// budget, else the middle size); `disk` (bytes/s) and `compute`
    /// (s/token) override the trace's rates.
    pub fn run(trace: Trace, sizes: &[Size], policies: &[Policy], layers_at: Option<Size>, disk: Option<Size>, compute: Option<f64>) -> Result<Simulation> {
        let all = trace.header.all_bytes();
        let sizes: Vec<u64> = sizes.iter().map(|s| s.resolve(all)).collect();
        let recorded_budget = trace.header.setting("budget").and_then(|b| b.parse().ok());
        let layers_at = layers_at.map(|s| s.resolve(all)).or(recorded_budget).unwrap_or_else(|| sizes.get(sizes.len() / 2).copied().unwrap_or(all));
        let results = sweep(&trace, &sizes, policies);
        let lru_at = simulate(&trace, Policy::Lru, layers_at);
        let belady_at = simulate(&trace, Policy::Belady, layers_at);
        let mut rates = Rates::of(&trace);
        if let Some(c) = compute {
            if !(c > 0.0 && c.is_finite()) {
                return Err(Error::InvalidArgument(format!("--compute {c}: give seconds per token, > 0")));
            }
            rates.compute_s_per_token = c;
        }
        let disk_rate = match disk {
            Some(Size::Percent(_)) => return Err(Error::InvalidArgument("--disk-rate: give bytes per second such as 1.7G, not a percentage".into())),
            Some(Size::Bytes(b)) => Some(b as f64),
            None => rates.read_bytes_per_s,
        };
        let (mut hits, mut known) = (0u64, 0u64);
        for a in trace.accesses() {
            if a.1 != Outcome::Unknown {
                known += 1;
                hits += u64::from(a.1.is_hit());
            }
        }
        let recorded_hit_rate = (known > 0).then(|| hits as f64 / known as f64);
        Ok(Simulation { trace, sizes, policies: policies.to_vec(), results, layers_at, lru_at, belady_at, rates, disk_rate, recorded_hit_rate, recorded_budget })
    }
}
