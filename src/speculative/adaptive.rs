//! How many tokens to draft: the k that maximises expected generated tokens
//! per second of verification, from what this run has measured.
//!
//! Acceptance follows a geometric model: each drafted token is accepted
//! with probability `a` given that the one before it was. A pass that
//! verifies k drafts then yields `1 + a + … + a^k` tokens on average. Its
//! cost is the measured time of passes of that many tokens: on an
//! offloaded MoE that is mostly the extra experts the drafts route to and
//! that must be read, on a model in RAM the extra compute. Both estimates
//! decay, so a change of text (prose after code) moves them within ~10
//! passes. When no k pays (k = 0 is best), drafting stops, and is tried
//! again with one token every [`PROBE_EVERY`] passes.

/// Passes without drafting after which one draft is tried again.
pub const PROBE_EVERY: usize = 16;
/// Weight of the past in the decayed counts and costs, per pass.
const DECAY: f64 = 0.9;

#[derive(Debug, Clone)]
pub struct AdaptiveK {
    max: usize,
    /// Decayed counts: drafted tokens accepted, and first rejections.
    accepted: f64,
    rejected: f64,
    /// Seconds per pass of `n` tokens, at index `n - 1` (decayed means).
    cost: Vec<Option<f64>>,
    idle_passes: usize,
}

impl AdaptiveK {
    pub fn new(max: usize) -> AdaptiveK {
        AdaptiveK { max, accepted: 0.0, rejected: 0.0, cost: vec![None; max + 1], idle_passes: 0 }
    }

    /// The estimated probability that a drafted token is accepted (a
    /// Laplace prior of 1/2 before any evidence).
    pub fn acceptance(&self) -> f64 {
        (self.accepted + 1.0) / (self.accepted + self.rejected + 2.0)
    }

    /// Expected tokens a pass with `k` drafts yields: 1 + a + … + a^k.
    pub fn expected_tokens(a: f64, k: usize) -> f64 {
        (0..=k).map(|i| a.powi(i as i32)).sum()
    }

    /// Seconds a pass of `n` tokens takes: measured, else interpolated
    /// between measured sizes, else extrapolated at 5% of a single token's
    /// cost per extra token (optimistic, so that untried sizes get tried).
    pub fn cost(&self, n: usize) -> Option<f64> {
        if let Some(c) = self.cost.get(n - 1).copied().flatten() {
            return Some(c);
        }
        let known: Vec<(usize, f64)> = self.cost.iter().enumerate().filter_map(|(i, c)| c.map(|c| (i + 1, c))).collect();
        let below = known.iter().rev().find(|(m, _)| *m < n).copied();
        let above = known.iter().find(|(m, _)| *m > n).copied();
        match (below, above) {
            (Some((m0, c0)), Some((m1, c1))) => Some(c0 + (c1 - c0) * (n - m0) as f64 / (m1 - m0) as f64),
            (Some((m0, c0)), None) => Some(c0 + 0.05 * known[0].1 * (n - m0) as f64),
            (None, Some((_, c1))) => Some(c1),
            (None, None) => None,
        }
    }

    /// The number of tokens to draft for the next pass (0: no drafting).
    pub fn choose(&mut self) -> usize {
        if self.max == 0 {
            return 0;
        }
        let a = self.acceptance();
        let Some(single) = self.cost(1) else {
            // Nothing measured yet: try the largest k; what it costs is learnt.
            return self.max;
        };
        let rate = |k: usize| Self::expected_tokens(a, k) / self.cost(k + 1).unwrap_or(single).max(1e-12);
        let best = (0..=self.max).max_by(|&x, &y| rate(x).total_cmp(&rate(y)).then(y.cmp(&x))).unwrap_or(0);
        if best > 0 {
            self.idle_passes = 0;
            return best;
        }
        self.idle_passes += 1;
        if self.idle_passes >= PROBE_EVERY {
            self.idle_passes = 0;
            return 1;
        }
        0
    }

    /// Records a pass of `tokens` tokens (the fed one plus `drafted`) in
    /// which `accepted` drafts were accepted, taking `secs`.
    pub fn record(&mut self, tokens: usize, drafted: usize, accepted: usize, secs: f64) {
        if drafted > 0 {
            self.accepted = self.accepted * DECAY + accepted as f64;
            self.rejected = self.rejected * DECAY + if accepted < drafted { 1.0 } else { 0.0 };
        }
        if let Some(slot) = self.cost.get_mut(tokens.max(1) - 1) {
            *slot = Some(match *slot {
                Some(c) => DECAY * c + (1.0 - DECAY) * secs,
                None => secs,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tokens_is_the_geometric_sum() {
        assert_eq!(AdaptiveK::expected_tokens(0.5, 0), 1.0);
        assert_eq!(AdaptiveK::expected_tokens(0.5, 3), 1.875);
        assert_eq!(AdaptiveK::expected_tokens(1.0, 4), 5.0);
    }

    #[test]
    fn drafts_long_when_drafts_are_accepted_and_extra_tokens_are_cheap() {
        let mut a = AdaptiveK::new(8);
        assert_eq!(a.choose(), 8, "nothing known: try the most");
        for _ in 0..20 {
            a.record(1, 0, 0, 1.0);
            a.record(9, 8, 8, 1.2);
        }
        assert!(a.acceptance() > 0.9);
        assert_eq!(a.choose(), 8);
    }

    #[test]
    fn stops_drafting_when_drafts_fail_and_probes_again() {
        let mut a = AdaptiveK::new(4);
        for _ in 0..30 {
            a.record(1, 0, 0, 1.0);
            a.record(5, 4, 0, 1.6);
            a.record(2, 1, 0, 1.2);
        }
        assert!(a.acceptance() < 0.15);
        let picks: Vec<usize> = (0..PROBE_EVERY * 2).map(|_| a.choose()).collect();
        assert_eq!(picks.iter().filter(|&&k| k == 0).count(), 2 * PROBE_EVERY - 2, "{picks:?}");
        assert_eq!(picks[PROBE_EVERY - 1], 1, "a probe every {PROBE_EVERY} passes: {picks:?}");
    }

    #[test]
    fn picks_the_k_where_tokens_per_second_peak() {
        // a ~ 0.8; cost doubles from 3 tokens on (the drafts route to
        // experts that must be read): k = 2 beats k = 1 and k >= 3.
        let mut a = AdaptiveK::new(6);
        for _ in 0..50 {
            a.record(3, 2, 2, 1.1);
            a.record(3, 2, 1, 1.1);
            a.record(1, 0, 0, 1.0);
            a.record(2, 1, 1, 1.05);
            for n in 4..=7 {
                a.record(n, 0, 0, 2.2);
            }
        }
        let acc = a.acceptance();
        assert!((0.7..0.9).contains(&acc), "{acc}");
        assert_eq!(a.choose(), 2);
        // Interpolated and extrapolated costs.
        let b = {
            let mut b = AdaptiveK::new(8);
            b.record(1, 0, 0, 1.0);
            b.record(5, 4, 4, 2.0);
            b
        };
        assert_eq!(b.cost(3), Some(1.5));
        assert_eq!(b.cost(7), Some(2.0 + 0.05 * 2.0));
    }
}
