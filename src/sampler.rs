//! Token sampling, in llama.cpp's default order: repetition penalty →
//! top-k → top-p → min-p → temperature → draw. Temperature ≤ 0 is greedy.
//!
//! Draws use ChaCha8 seeded from `seed`, so a run is reproducible on any
//! platform and any version of `rand`.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sampling settings; the defaults are llama.cpp's.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerParams {
    /// ≤ 0 means greedy (argmax).
    pub temp: f32,
    /// ≤ 0 keeps all tokens.
    pub top_k: i32,
    /// ≥ 1 disables.
    pub top_p: f32,
    /// ≤ 0 disables.
    pub min_p: f32,
    /// 1 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub repeat_last_n: usize,
    /// Subtracted from a recent token's logit once (OpenAI's and
    /// llama.cpp's presence penalty); 0 disables.
    pub presence_penalty: f32,
    /// Subtracted from a recent token's logit per occurrence (frequency
    /// penalty); 0 disables.
    pub frequency_penalty: f32,
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

/// A candidate token and its (adjusted) logit.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    id: u32,
    logit: f32,
}

pub struct Sampler {
    params: SamplerParams,
    rng: ChaCha8Rng,
    recent: VecDeque<u32>,
    cands: Vec<Candidate>,
}

impl Sampler {
    pub fn new(params: SamplerParams) -> Sampler {
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Sampler { params, rng, recent: VecDeque::new(), cands: Vec::new() }
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Records a token (prompt or generated) for the repetition penalty.
    pub fn accept(&mut self, token: u32) {
        if self.params.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.params.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// Picks the next token from `logits` (one per vocabulary entry).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        assert!(!logits.is_empty(), "sample() needs at least one logit");
        self.cands.clear();
        self.cands
            .extend(logits.iter().enumerate().map(|(i, &l)| Candidate { id: i as u32, logit: l }));
        self.apply_repeat_penalty();
        if self.params.temp <= 0.0 {
            return argmax(&self.cands);
        }
        self.apply_top_k();
        self.apply_top_p();
        self.apply_min_p();
        let t = self.params.temp;
        for c in &mut self.cands {
            c.logit /= t;
        }
        self.draw()
    }

    /// llama.cpp's penalties sampler, once per distinct recent token seen
    /// `count` times: a positive logit is divided by the repeat penalty, a
    /// negative one multiplied; then `count · frequency + presence` is
    /// subtracted.
    fn apply_repeat_penalty(&mut self) {
        let SamplerParams { repeat_penalty: p, presence_penalty: presence, frequency_penalty: frequency, .. } = self.params;
        if (p == 1.0 && presence == 0.0 && frequency == 0.0) || self.recent.is_empty() {
            return;
        }
        let mut seen: Vec<u32> = self.recent.iter().copied().collect();
        seen.sort_unstable();
        for run in seen.chunk_by(|a, b| a == b) {
            if let Some(c) = self.cands.get_mut(run[0] as usize) {
                c.logit = if c.logit > 0.0 { c.logit / p } else { c.logit * p };
                c.logit -= run.len() as f32 * frequency + presence;
            }
        }
    }

    /// Sorts descending by logit (ties: lower id first) and keeps the top k.
    fn apply_top_k(&mut self) {
        self.cands.sort_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
        let k = self.params.top_k;
        if k > 0 {
            self.cands.truncate(k as usize);
        }
    }

    /// Keeps the smallest prefix whose probability mass reaches top_p.
    /// Candidates are sorted by `apply_top_k`.
    fn apply_top_p(&mut self) {
        let p = self.params.top_p;
        if p >= 1.0 {
            return;
        }
        let probs = softmax(&self.cands);
        let mut cum = 0.0f64;
        let mut keep = self.cands.len();
        for (i, &pr) in probs.iter().enumerate() {
            cum += pr;
            if cum >= p as f64 {
                keep = i + 1;
                break;
            }
        }
        self.cands.truncate(keep.max(1));
    }

    /// Keeps tokens whose probability is at least min_p × the top one's.
    fn apply_min_p(&mut self) {
        let m = self.params.min_p;
        if m <= 0.0 || self.cands.is_empty() {
            return;
        }
        let max = self.cands.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max);
        let floor = max + m.ln();
        self.cands.retain(|c| c.logit >= floor);
    }

    fn draw(&mut self) -> u32 {
        let probs = softmax(&self.cands);
        let u: f64 = self.rng.random();
        let mut cum = 0.0;
        for (c, p) in self.cands.iter().zip(&probs) {
            cum += p;
            if u < cum {
                return c.id;
            }
        }
        self.cands.last().map(|c| c.id).unwrap_or(0)
    }
}

/// The first token with the highest logit (llama.cpp's greedy tie-break).
fn argmax(cands: &[Candidate]) -> u32 {
    let mut best = cands[0];
    for c in &cands[1..] {
        if c.logit > best.logit {
            best = *c;
        }
    }
    best.id
}

fn softmax(cands: &[Candidate]) -> Vec<f64> {
    let max = cands.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = cands.iter().map(|c| (c.logit as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temp: f32) -> SamplerParams {
        SamplerParams { temp, top_k: 0, top_p: 1.0, min_p: 0.0, repeat_penalty: 1.0, repeat_last_n: 64, seed: 7, ..SamplerParams::default() }
    }

    #[test]
    fn greedy_picks_first_maximum() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&[0.5, 2.0, -1.0, 2.0]), 1);
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative() {
        let mut s = Sampler::new(SamplerParams { repeat_penalty: 2.0, ..params(0.0) });
        s.accept(0);
        // 3.0 / 2 = 1.5 < 2.0, so token 1 wins.
        assert_eq!(s.sample(&[3.0, 2.0]), 1);
        let mut s = Sampler::new(SamplerParams { repeat_penalty: 2.0, ..params(0.0) });
        s.accept(1);
        // -1.0 * 2 = -2.0 < -1.5, so token 0 wins.
        assert_eq!(s.sample(&[-1.5, -1.0]), 0);
    }

    #[test]
    fn presence_and_frequency_penalties_subtract_per_token_and_per_occurrence() {
        // Token 0 seen twice: 3.0 - 2·0.6 - 0.5 = 1.3 < 1.5 (token 1, unseen).
        let mut s = Sampler::new(SamplerParams { presence_penalty: 0.5, frequency_penalty: 0.6, ..params(0.0) });
        s.accept(0);
        s.accept(0);
        assert_eq!(s.sample(&[3.0, 1.5]), 1);
        // Seen once: 3.0 - 0.6 - 0.5 = 1.9 > 1.5.
        let mut s = Sampler::new(SamplerParams { presence_penalty: 0.5, frequency_penalty: 0.6, ..params(0.0) });
        s.accept(0);
        assert_eq!(s.sample(&[3.0, 1.5]), 0);
        // Negative penalties raise a seen token.
        let mut s = Sampler::new(SamplerParams { presence_penalty: -2.0, ..params(0.0) });
        s.accept(1);
        assert_eq!(s.sample(&[1.0, 0.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let mut s = Sampler::new(SamplerParams { top_k: 1, ..params(5.0) });
        for _ in 0..50 {
            assert_eq!(s.sample(&[0.1, 0.3, 0.2]), 1);
        }
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37 % 11) as f32) * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplerParams { seed, ..params(1.0) });
            (0..40).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn draws_follow_the_softmax() {
        // p = softmax([0, ln 3]) = [0.25, 0.75].
        let logits = [0.0, 3.0f32.ln()];
        let mut s = Sampler::new(params(1.0));
        let n = 20_000;
        let ones = (0..n).filter(|_| s.sample(&logits) == 1).count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.015, "fraction of token 1: {frac}");
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        // probs ∝ [8, 4, 2, 1]: min_p 0.3 keeps p ≥ 0.3·8/15, i.e. tokens 0 and 1.
        let logits: Vec<f32> = [8.0f32, 4.0, 2.0, 1.0].iter().map(|x| x.ln()).collect();
        let mut s = Sampler::new(SamplerParams { min_p: 0.3, ..params(1.0) });
        let seen: std::collections::BTreeSet<u32> = (0..2000).map(|_| s.sample(&logits)).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1]);
        // top_p 0.75: cumulative 8/15 = 0.53 < 0.75 ≤ 12/15 = 0.8 → keeps tokens 0 and 1.
        let mut s = Sampler::new(SamplerParams { top_p: 0.75, ..params(1.0) });
        let seen: std::collections::BTreeSet<u32> = (0..2000).map(|_| s.sample(&logits)).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    }
}
