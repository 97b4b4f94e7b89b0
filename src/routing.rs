//! Routing diversity: which experts the router chose, token by token, and
//! how varied that is. An expert cache's hit rate depends on it, so a
//! synthetic benchmark model must route like a real one (varied from token
//! to token, every expert used), not collapse onto a few experts.
//!
//! [`RecordingSource`] wraps an [`ExpertSource`] and logs each
//! [`ExpertSource::request`] (the forward pass calls it once per MoE layer
//! per token, with the router's top-k); [`RoutingLog::diversity`] sums the
//! log up per layer.

use std::sync::{Arc, Mutex};

use moe_offload::{CacheStats, ExpertBytes, ExpertKey, ExpertSource, OffloadError};

/// The expert sets chosen per layer, in token order (bit e = expert e).
#[derive(Debug, Default)]
pub struct RoutingLog {
    layers: Mutex<Vec<Vec<u64>>>,
}

impl RoutingLog {
    pub fn new() -> RoutingLog {
        RoutingLog::default()
    }

    /// Records one layer's choice for the next token.
    pub fn push(&self, keys: &[ExpertKey]) {
        let Some(first) = keys.first() else { return };
        let set = keys.iter().filter(|k| k.expert < 64).fold(0u64, |s, k| s | 1 << k.expert);
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        let l = first.layer as usize;
        if layers.len() <= l {
            layers.resize_with(l + 1, Vec::new);
        }
        layers[l].push(set);
    }

    /// `sets[layer][token]`, a copy.
    pub fn sets(&self) -> Vec<Vec<u64>> {
        self.layers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Per-layer diversity of everything logged, for `n_expert` experts.
    pub fn diversity(&self, n_expert: usize) -> Vec<LayerDiversity> {
        self.sets().iter().map(|s| LayerDiversity::of(s, n_expert)).collect()
    }
}

/// How varied one layer's routing was.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDiversity {
    pub tokens: usize,
    /// Times each expert was chosen.
    pub usage: Vec<u64>,
    /// Entropy of the usage distribution over ln(n_expert): 1 = even use.
    pub usage_evenness: f64,
    /// Largest share of choices one expert got (even use: 1/n_expert).
    pub max_share: f64,
    /// Fraction of consecutive token pairs whose expert sets differ.
    pub set_change_rate: f64,
    /// Mean fraction of a token's experts that the previous token also
    /// used (what an LRU reuses next door; uniform random top-k: k/n).
    pub reuse_rate: f64,
    /// Distinct expert sets seen, and how many exist (n choose k).
    pub distinct_sets: usize,
    pub possible_sets: u64,
}

impl LayerDiversity {
    pub fn of(sets: &[u64], n_expert: usize) -> LayerDiversity {
        let mut usage = vec![0u64; n_expert];
        for &s in sets {
            for (e, u) in usage.iter_mut().enumerate() {
                *u += (s >> e) & 1;
            }
        }
        let total: u64 = usage.iter().sum();
        let entropy: f64 = usage
            .iter()
            .filter(|&&u| u > 0)
            .map(|&u| {
                let p = u as f64 / total as f64;
                -p * p.ln()
            })
            .sum();
        let pairs = sets.len().saturating_sub(1);
        let changes = sets.windows(2).filter(|w| w[0] != w[1]).count();
        let reused: f64 = sets
            .windows(2)
            .filter(|w| w[1] != 0)
            .map(|w| (w[0] & w[1]).count_ones() as f64 / w[1].count_ones() as f64)
            .sum();
        let mut distinct = sets.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let k = sets.first().map_or(0, |s| s.count_ones() as u64);
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        LayerDiversity {
            tokens: sets.len(),
            usage_evenness: ratio(entropy, (n_expert as f64).ln()),
            max_share: ratio(*usage.iter().max().unwrap_or(&0) as f64, total as f64),
            usage,
            set_change_rate: ratio(changes as f64, pairs as f64),
            reuse_rate: ratio(reused, pairs as f64),
            distinct_sets: distinct.len(),
            possible_sets: binomial(n_expert as u64, k),
        }
    }
}

fn binomial(n: u64, k: u64) -> u64 {
    if k > n {
        return 0;
    }
    (0..k.min(n - k)).fold(1u64, |acc, i| acc * (n - i) / (i + 1))
}

/// An [`ExpertSource`] that logs the router's choices, then forwards.
pub struct RecordingSource {
    inner: Box<dyn ExpertSource>,
    log: Arc<RoutingLog>,
    n_expert_used: usize,
}

impl RecordingSource {
    pub fn new(inner: Box<dyn ExpertSource>, log: Arc<RoutingLog>, n_expert_used: usize) -> RecordingSource {
        RecordingSource { inner, log, n_expert_used }
    }
}

/// Only a request of exactly `n_expert_used` experts is one token's routing:
/// a prompt micro-batch requests the union of its tokens' experts at once,
/// which is not logged (run the prompt with `-b 1` to include it).
impl ExpertSource for RecordingSource {
    fn with_expert(&self, key: ExpertKey, f: &mut dyn FnMut(ExpertBytes<'_>)) -> Result<(), OffloadError> {
        self.inner.with_expert(key, f)
    }

    fn request(&self, keys: &[ExpertKey]) {
        if keys.len() == self.n_expert_used {
            self.log.push(keys);
        }
        self.inner.request(keys);
    }

    fn prefetch(&self, keys: &[ExpertKey]) {
        self.inner.prefetch(keys);
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

    fn layer_stats(&self, layer: u32) -> Option<moe_offload::LayerStats> {
        self.inner.layer_stats(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(layer: u32, experts: &[u32]) -> Vec<ExpertKey> {
        experts.iter().map(|&expert| ExpertKey { layer, expert }).collect()
    }

    #[test]
    fn diversity_of_a_known_sequence() {
        let log = RoutingLog::new();
        // Layer 0: {0,1}, {0,1}, {2,3}, {0,3}; layer 1 always {4,5}.
        for set in [[0, 1], [0, 1], [2, 3], [0, 3]] {
            log.push(&keys(0, &set));
            log.push(&keys(1, &[4, 5]));
        }
        let d = log.diversity(8);
        assert_eq!(d.len(), 2);
        let l0 = &d[0];
        assert_eq!(l0.tokens, 4);
        assert_eq!(l0.usage, [3, 2, 1, 2, 0, 0, 0, 0]);
        assert!((l0.max_share - 3.0 / 8.0).abs() < 1e-12);
        assert!((l0.set_change_rate - 2.0 / 3.0).abs() < 1e-12);
        // Reuse: 2/2, 0/2, 1/2 over 3 pairs.
        assert!((l0.reuse_rate - 0.5).abs() < 1e-12);
        assert_eq!((l0.distinct_sets, l0.possible_sets), (3, 28));
        let p = [3.0, 2.0, 1.0, 2.0].map(|u: f64| u / 8.0);
        let h: f64 = p.iter().map(|p| -p * p.ln()).sum();
        assert!((l0.usage_evenness - h / 8f64.ln()).abs() < 1e-12);
        let l1 = &d[1];
        assert_eq!((l1.set_change_rate, l1.reuse_rate, l1.distinct_sets), (0.0, 1.0, 1));
        assert!((l1.usage_evenness - 2f64.ln() / 8f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn binomials() {
        assert_eq!((binomial(8, 2), binomial(8, 1), binomial(4, 4), binomial(2, 3)), (28, 8, 1, 0));
    }
}
