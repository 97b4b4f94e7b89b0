//! Routers fitted to real hidden states, so that an upcycled model routes
//! as text dictates rather than at random: run the dense model over a
//! corpus, capture every layer's FFN input (after `ffn_norm`), cluster each
//! layer's inputs into `n_expert` groups with spherical k-means, and use
//! the unit centroids as the router's rows. A token then goes to the
//! experts whose centroids its hidden state is closest to in angle
//! (router logit = centroid · x), so similar contexts share experts.
//!
//! Deterministic: fixed corpus order, a seeded k-means++ start (SplitMix64,
//! not an external RNG), a fixed number of iterations, sums in a fixed
//! order; layers are clustered in parallel but independently.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use rayon::prelude::*;

use super::rng::mix;
use crate::error::{Error, Result};
use crate::model::{ForwardObserver, Model};
use crate::tokenizer::Tokenizer;

/// The built-in corpus: ~250 short sentences of plain English prose,
/// recipes, science, history, code, arithmetic, dialogue, a little French,
/// Spanish and German, written for this project (public domain).
pub const BUILTIN_CORPUS: &str = include_str!("text/corpus.txt");

/// How to fit routers.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// One prompt per non-empty line.
    pub text: String,
    pub seed: u64,
    /// k-means iterations (a fixed count, for determinism).
    pub iterations: usize,
    /// Router logit scale: rows are unit centroids times `gain / mean |x|`,
    /// so a token's logits spread over about ±`gain`.
    pub gain: f32,
}

impl Default for FitOptions {
    fn default() -> FitOptions {
        FitOptions { text: BUILTIN_CORPUS.to_string(), seed: 0, iterations: 25, gain: 8.0 }
    }
}

/// Per layer, `n_expert` router rows of `n_embd` (row-major): what
/// `blk.N.ffn_gate_inp.weight` holds.
pub struct FittedRouters {
    pub n_embd: usize,
    pub layers: Vec<Vec<f32>>,
    /// Tokens clustered per layer.
    pub tokens: usize,
}

/// Collects every layer's FFN inputs, unit-normalised, with their norms.
struct Capture {
    rows: Vec<Vec<f32>>,
    norm_sum: Vec<f64>,
}

struct Observer(Rc<RefCell<Capture>>);

impl ForwardObserver for Observer {
    fn ffn_input(&mut self, layer: usize, rows: &[f32], n_embd: usize) {
        let mut c = self.0.borrow_mut();
        for x in rows.chunks_exact(n_embd) {
            let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            c.norm_sum[layer] += norm;
            let inv = if norm > 0.0 { (1.0 / norm) as f32 } else { 0.0 };
            c.rows[layer].extend(x.iter().map(|&v| v * inv));
        }
    }
}

/// Runs the dense model `dense` over `opts.text` (one prompt per line) and
/// fits `n_expert` router rows per layer.
pub fn fit_routers(dense: &Path, n_expert: usize, opts: &FitOptions) -> Result<FittedRouters> {
    let model = Model::open(dense)?;
    let c = model.config().clone();
    if n_expert < 1 {
        return Err(Error::InvalidArgument("fitting routers needs at least one expert".into()));
    }
    let tokenizer = Tokenizer::from_metadata(model.metadata())?;
    let lines: Vec<&str> = opts.text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let prompts: Vec<Vec<u32>> = lines.iter().map(|l| tokenizer.encode(l, true, false)).collect::<Result<_>>()?;
    let total: usize = prompts.iter().map(Vec::len).sum();
    if total < n_expert {
        return Err(Error::InvalidArgument(format!(
            "the fitting text has {total} tokens; at least {n_expert} (one per expert) are needed, a few thousand make sense"
        )));
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(1);
    let capture = Rc::new(RefCell::new(Capture {
        rows: (0..c.n_layer).map(|_| Vec::with_capacity(total * c.n_embd)).collect(),
        norm_sum: vec![0.0; c.n_layer],
    }));
    let mut session = model.session(longest.max(1))?;
    session.set_observer(Some(Box::new(Observer(Rc::clone(&capture)))));
    for p in &prompts {
        session.reset();
        session.prefill_last(p)?;
    }
    drop(session);
    let capture = Rc::try_unwrap(capture).ok().expect("the session is gone").into_inner();
    let d = c.n_embd;
    let layers = capture
        .rows
        .par_iter()
        .enumerate()
        .map(|(l, x)| {
            let mut rows = spherical_kmeans(x, d, n_expert, opts.iterations, mix(opts.seed ^ mix(l as u64)));
            let mean_norm = capture.norm_sum[l] / total as f64;
            let scale = if mean_norm > 0.0 { (opts.gain as f64 / mean_norm) as f32 } else { 0.0 };
            rows.iter_mut().for_each(|v| *v *= scale);
            rows
        })
        .collect();
    Ok(FittedRouters { n_embd: d, layers, tokens: total })
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// k unit centroids of the unit rows `x` (`d` wide): k-means++ start
/// (distance 1 − cos), then `iterations` rounds of assign-to-nearest-angle
/// and renormalised means. An emptied cluster restarts at the row farthest
/// from its centroid. Returns the centroids row-major.
pub fn spherical_kmeans(x: &[f32], d: usize, k: usize, iterations: usize, seed: u64) -> Vec<f32> {
    let n = x.len() / d;
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let mut rng = seed;
    let mut uniform = move || {
        rng = mix(rng);
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut centroids = Vec::with_capacity(k * d);
    centroids.extend_from_slice(row((uniform() * n as f64) as usize % n));
    let mut dist: Vec<f64> = (0..n).map(|i| (1.0 - dot(row(i), &centroids[..d]) as f64).max(0.0)).collect();
    for _ in 1..k {
        let sum: f64 = dist.iter().sum();
        let pick = if sum > 0.0 {
            let mut t = uniform() * sum;
            dist.iter().position(|&w| {
                t -= w;
                t <= 0.0
            })
            .unwrap_or(n - 1)
        } else {
            (uniform() * n as f64) as usize % n
        };
        let start = centroids.len();
        centroids.extend_from_slice(row(pick));
        for (i, di) in dist.iter_mut().enumerate() {
            *di = di.min((1.0 - dot(row(i), &centroids[start..start + d]) as f64).max(0.0));
        }
    }
    let mut assign = vec![0usize; n];
    let mut best = vec![0f32; n];
    for _ in 0..iterations {
        for i in 0..n {
            let (e, s) = (0..k)
                .map(|e| (e, dot(row(i), &centroids[e * d..(e + 1) * d])))
                .fold((0, f32::NEG_INFINITY), |b, c| if c.1 > b.1 { c } else { b });
            assign[i] = e;
            best[i] = s;
        }
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for i in 0..n {
            counts[assign[i]] += 1;
            for (s, &v) in sums[assign[i] * d..(assign[i] + 1) * d].iter_mut().zip(row(i)) {
                *s += v as f64;
            }
        }
        for e in 0..k {
            let c = &mut centroids[e * d..(e + 1) * d];
            if counts[e] == 0 {
                // The row worst served by its centroid, ties to the lowest index.
                let far = (0..n).fold(0, |b, i| if best[i] < best[b] { i } else { b });
                c.copy_from_slice(row(far));
                best[far] = 1.0;
                continue;
            }
            for (cv, &s) in c.iter_mut().zip(&sums[e * d..(e + 1) * d]) {
                *cv = s as f32;
            }
            normalize(c);
        }
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tight bundles of unit vectors around the axes: k-means finds
    /// the axes whatever the seed.
    #[test]
    fn finds_three_bundles() {
        let d = 3;
        let mut x = Vec::new();
        for i in 0..60 {
            let axis = i % 3;
            let mut v = [0.05 * ((i * 7 % 5) as f32 - 2.0), 0.05 * ((i * 3 % 7) as f32 - 3.0), 0.02];
            v[axis] = 1.0;
            normalize(&mut v);
            x.extend_from_slice(&v);
        }
        for seed in 0..5 {
            let c = spherical_kmeans(&x, d, 3, 10, seed);
            let mut axes: Vec<usize> = (0..3)
                .map(|e| (0..3).max_by(|&a, &b| c[e * d + a].total_cmp(&c[e * d + b])).unwrap())
                .collect();
            axes.sort();
            assert_eq!(axes, [0, 1, 2], "seed {seed}: centroids {c:?}");
            for e in 0..3 {
                assert!((dot(&c[e * d..(e + 1) * d], &c[e * d..(e + 1) * d]) - 1.0).abs() < 1e-5);
            }
        }
        assert_eq!(spherical_kmeans(&x, d, 3, 10, 42), spherical_kmeans(&x, d, 3, 10, 42));
    }
}
