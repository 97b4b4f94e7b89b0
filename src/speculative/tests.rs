//! The acceptance rule on a toy distribution.

use super::accepts;
use crate::sampler::{Sampler, SamplerParams};

/// softmax([ln 1, ln 2, ln 3, ln 4]) = [0.1, 0.2, 0.3, 0.4]; with top-k 3
/// the sampler's distribution is [0, 2/9, 3/9, 4/9].
fn toy() -> (Vec<f32>, [(SamplerParams, [f64; 4]); 2]) {
    let logits: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|x| x.ln()).collect();
    let plain = SamplerParams { temp: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed: 7, ..SamplerParams::default() };
    let cut = SamplerParams { top_k: 3, ..plain.clone() };
    (logits, [(plain, [0.1, 0.2, 0.3, 0.4]), (cut, [0.0, 2.0 / 9.0, 3.0 / 9.0, 4.0 / 9.0])])
}

fn within(f: f64, p: f64, n: usize) -> bool {
    let se = (p * (1.0 - p) / n as f64).sqrt().max(1e-9);
    (f - p).abs() <= 5.0 * se
}

/// A draft d is accepted with probability p(d) (the standard rule with a
/// deterministic drafter); after a rejection the token is distributed as
/// the residual p(x) / (1 − p(d)) over x ≠ d; so the output is p. Checked
/// for a likely, an unlikely and a cut draft, within 5 standard errors.
#[test]
fn drafts_are_accepted_with_their_probability_and_the_rest_is_the_residual() {
    let (logits, cases) = toy();
    let n = 40_000;
    for (params, p) in cases {
        for d in [3u32, 0, 1] {
            let mut s = Sampler::new(params.clone());
            let (mut accepted, mut after_reject, mut out) = (0usize, [0usize; 4], [0usize; 4]);
            for _ in 0..n {
                let t = s.sample(&logits);
                out[t as usize] += 1;
                if accepts(Some(d), t) {
                    accepted += 1;
                } else {
                    after_reject[t as usize] += 1;
                }
            }
            let pd = p[d as usize];
            assert!(within(accepted as f64 / n as f64, pd, n), "top_k {} draft {d}: accepted {accepted} of {n}, p {pd}", params.top_k);
            let rejected = n - accepted;
            for x in 0..4 {
                let residual = if x == d as usize { 0.0 } else { p[x] / (1.0 - pd) };
                assert!(within(after_reject[x] as f64 / rejected as f64, residual, rejected), "draft {d}: residual of {x}");
                assert!(within(out[x] as f64 / n as f64, p[x], n), "draft {d}: output of {x}");
            }
        }
    }
    // Greedy: the draft stands only if it is the argmax.
    let mut g = Sampler::new(SamplerParams { temp: 0.0, ..SamplerParams::default() });
    let t = g.sample(&logits);
    assert!(accepts(Some(3), t) && !accepts(Some(1), t) && !accepts(None, t));
}
