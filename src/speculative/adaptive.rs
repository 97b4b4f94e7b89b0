//! How many tokens to draft: the k that maximises expected generated tokens
//! per second of verification, from what this run has measured.
//!
//! Acceptance is measured per draft position: `a_j`, the chance that the
//! j-th drafted token stands given that the ones before it did. It is
//! bursty (when the model copies, it copies on), so `a_j` grows with j and
//! a single rate would undervalue long drafts. A pass that verifies k
//! drafts yields `1 + a_1 + a_1·a_2 + … + a_1⋯a_k` tokens on average. Its
//! cost is a straight line fitted to the measured time of every pass
//! against its token count: on an offloaded MoE the slope is mostly the
//! extra experts the drafts route to and that must be read, on a model in
//! RAM the extra compute. One pass's time is noisy (a miss or a hit decides
//! it), so the fit pools all of them. Acceptance decays fast, so a change
//! of text (prose after code) moves it within ~20 passes; the cost line
//! slowly (~30 passes). When no k pays (k = 0 is best), drafting stops, and
//! is tried again with one token every [`PROBE_EVERY`] passes.

/// Passes without drafting after which one draft is tried again.
pub const PROBE_EVERY: usize = 16;
/// Weight of the past in the acceptance counts, per pass with drafts.
const ACCEPT_DECAY: f64 = 0.95;
/// Rates this close to the best count as a tie, won by the longer draft.
const NEAR_TIE: f64 = 0.03;
/// Weight of the past in the cost fit, per pass.
const COST_DECAY: f64 = 0.97;
/// The slope assumed until passes of two sizes are measured: 5% of a
/// single token's cost per extra token (optimistic, so drafting is tried).
const PRIOR_SLOPE: f64 = 0.05;

#[derive(Debug, Clone)]
pub struct AdaptiveK {
    max: usize,
    /// Decayed counts per draft position j (index j - 1): passes that
    /// reached position j (its draft was verified after the ones before it
    /// stood), and of those, the ones where it stood too.
    reached: Vec<f64>,
    stood: Vec<f64>,
    /// Decayed sums for the least-squares line secs = c0 + c1 · (n - 1):
    /// weight, x, y, x², xy.
    fit: [f64; 5],
    idle_passes: usize,
}

impl AdaptiveK {
    pub fn new(max: usize) -> AdaptiveK {
        AdaptiveK { max, reached: vec![0.0; max], stood: vec![0.0; max], fit: [0.0; 5], idle_passes: 0 }
    }

    /// `a_j` for j = 1..=max: the chance that the j-th draft stands given
    /// that the ones before it did. Each is shrunk towards the one before
    /// (towards 1/2 for the first) with the weight of two passes, so a
    /// position seldom reached takes its neighbour's rate.
    pub fn acceptance_by_position(&self) -> Vec<f64> {
        let mut prior = 0.5;
        (0..self.max)
            .map(|j| {
                let a = (self.stood[j] + 2.0 * prior) / (self.reached[j] + 2.0);
                prior = a;
                a
            })
            .collect()
    }

    /// The chance that the first draft stands.
    pub fn acceptance(&self) -> f64 {
        self.acceptance_by_position().first().copied().unwrap_or(0.0)
    }

    /// Expected tokens a pass with `k` drafts yields: 1 + a_1 + a_1·a_2 + ….
    pub fn expected_tokens(&self, k: usize) -> f64 {
        self.expected_tokens_by_k()[k.min(self.max)]
    }

    /// [`Self::expected_tokens`] for every k in `0..=max`, in one sweep.
    fn expected_tokens_by_k(&self) -> Vec<f64> {
        let (mut p, mut e) = (1.0, 1.0);
        let mut by_k = vec![e];
        for a in self.acceptance_by_position() {
            p *= a;
            e += p;
            by_k.push(e);
        }
        by_k
    }

    /// Seconds a pass of `n` tokens is expected to take, from the fitted
    /// line (`None` before any pass).
    pub fn cost(&self, n: usize) -> Option<f64> {
        let [w, sx, sy, sxx, sxy] = self.fit;
        if w <= 0.0 {
            return None;
        }
        let (mx, my) = (sx / w, sy / w);
        let var = sxx / w - mx * mx;
        // Passes of one size only: the mean there, and the prior slope.
        let (c0, c1) = if var > 1e-9 {
            let c1 = ((sxy / w - mx * my) / var).max(0.0);
            ((my - c1 * mx).max(1e-12), c1)
        } else {
            let c0 = my / (1.0 + PRIOR_SLOPE * mx);
            (c0, PRIOR_SLOPE * c0)
        };
        Some(c0 + c1 * (n.max(1) - 1) as f64)
    }

    /// The number of tokens to draft for the next pass (0: no drafting).
    pub fn choose(&mut self) -> usize {
        if self.max == 0 {
            return 0;
        }
        if self.cost(1).is_none() {
            // Nothing measured yet: try the largest k; what it costs is learnt.
            return self.max;
        }
        let rates: Vec<f64> = self
            .expected_tokens_by_k()
            .iter()
            .enumerate()
            .map(|(k, e)| e / self.cost(k + 1).unwrap_or(1.0).max(1e-12))
            .collect();
        // The longest draft within NEAR_TIE of the best rate: the estimates
        // are noisy, and a longer draft loses little when they are right
        // and gains a run of accepted tokens when acceptance is burstier
        // than measured.
        let top = rates.iter().copied().fold(0.0, f64::max);
        let best = (0..=self.max).rev().find(|&k| rates[k] >= (1.0 - NEAR_TIE) * top).unwrap_or(0);
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
            for j in 0..self.max {
                self.reached[j] *= ACCEPT_DECAY;
                self.stood[j] *= ACCEPT_DECAY;
                if j < drafted && j <= accepted {
                    self.reached[j] += 1.0;
                    if j < accepted {
                        self.stood[j] += 1.0;
                    }
                }
            }
        }
        let x = (tokens.max(1) - 1) as f64;
        for (s, v) in self.fit.iter_mut().zip([1.0, x, secs, x * x, x * secs]) {
            *s = *s * COST_DECAY + v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tokens_follow_the_acceptance_by_position() {
        let a = AdaptiveK::new(4);
        // No evidence: 1/2 at every position.
        assert_eq!(a.acceptance_by_position(), vec![0.5; 4]);
        assert_eq!(a.expected_tokens(0), 1.0);
        assert_eq!(a.expected_tokens(3), 1.875);
        // Bursty: half the passes take all 4 drafts, half none. The first
        // position is a coin flip, the later ones near certain, so long
        // drafts are worth far more than one rate (0.8) would say.
        let mut b = AdaptiveK::new(4);
        for _ in 0..40 {
            b.record(5, 4, 4, 1.0);
            b.record(5, 4, 0, 1.0);
        }
        let by = b.acceptance_by_position();
        assert!((by[0] - 0.5).abs() < 0.05 && by[1..].iter().all(|&x| x > 0.8) && by.windows(2).all(|w| w[0] < w[1]), "{by:?}");
        // One rate (half the drafts stood) would give 1.94.
        assert!(b.expected_tokens(4) > 2.5, "{}", b.expected_tokens(4));
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
        // The first draft nearly always stands, the second half the time,
        // and each extra token costs half a single pass (the drafts route
        // to experts that must be read): a short draft pays, a long one not.
        let mut a = AdaptiveK::new(6);
        for _ in 0..50 {
            a.record(3, 2, 2, 2.0);
            a.record(3, 2, 1, 2.0);
            a.record(1, 0, 0, 1.0);
            a.record(2, 1, 1, 1.5);
            a.record(7, 0, 0, 4.0);
        }
        assert!((a.cost(5).unwrap() - 3.0).abs() < 1e-9, "{:?}", a.cost(5));
        // The best k for the true line, by brute force.
        let rate = |k: usize| a.expected_tokens(k) / (1.0 + 0.5 * k as f64);
        let want = (0..=6).max_by(|&x, &y| rate(x).total_cmp(&rate(y))).unwrap();
        assert!((1..=2).contains(&want), "{want}");
        assert_eq!(a.choose(), want);
        // The fitted line: through (1, 1.0) and (5, 2.0); one size only: the prior slope.
        let mut b = AdaptiveK::new(8);
        b.record(1, 0, 0, 1.0);
        assert_eq!(b.cost(1), Some(1.0));
        assert!((b.cost(3).unwrap() - 1.1).abs() < 1e-12);
        b.record(5, 4, 4, 2.0);
        assert!((b.cost(3).unwrap() - 1.5).abs() < 1e-9 && (b.cost(7).unwrap() - 2.5).abs() < 1e-9, "{:?}", b.cost(7));
    }
}
