//! The MoE router, llama.cpp's `build_moe_ffn`: the logits (plus a bias,
//! gpt-oss), then either a softmax over all experts → top-k → (Mixtral,
//! Qwen3-MoE) weights renormalised to sum to 1, or (Qwen2-MoE, OLMoE) the
//! top-k probabilities as they are (SOFTMAX gating, `norm_w` on or off);
//! or (gpt-oss) the top-k of the logits and a softmax over those k
//! (SOFTMAX_WEIGHT gating).

use super::ops::{add_bias, softmax};
use crate::arch::{ArchTraits, Gating};

/// How one layer's router turns logits into weights.
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    pub gating: Gating,
    /// Renormalise the top-k weights to sum to 1 (`norm_w`).
    pub norm_topk: bool,
    /// Added to the logits first (`ffn_gate_inp.bias`).
    pub bias: Option<&'a [f32]>,
}

impl<'a> Routing<'a> {
    /// An architecture's routing, with a layer's router bias if it has one.
    pub fn of(traits: &ArchTraits, bias: Option<&'a [f32]>) -> Routing<'a> {
        Routing { gating: traits.gating, norm_topk: traits.norm_topk, bias }
    }
}

/// llama.cpp clamps the sum of the top-k weights to at least this (the
/// smallest normal f16) before dividing by it.
const MIN_WEIGHT_SUM: f32 = 1.0 / 16384.0; // 2^-14 = 6.103515625e-5

/// Fills `chosen` with the top-`k` experts (ties: lower index first, in
/// descending order as ggml's argsort gives them) and their weights.
/// `probs` holds the router logits on entry; on return, the softmax
/// probabilities (SOFTMAX gating) or the biased logits.
pub fn route(probs: &mut [f32], k: usize, r: Routing<'_>, chosen: &mut Vec<(usize, f32)>) {
    if let Some(bias) = r.bias {
        add_bias(probs, bias);
    }
    if r.gating == Gating::Softmax {
        softmax(probs);
    }
    top_k(probs, k, chosen);
    if r.gating == Gating::SoftmaxTopK {
        // ggml_soft_max over the k chosen logits, in their chosen order.
        let mut w = [0.0f32; MAX_TOP_K];
        let w = &mut w[..k];
        for (wi, c) in w.iter_mut().zip(chosen.iter()) {
            *wi = c.1;
        }
        softmax(w);
        for (c, &wi) in chosen.iter_mut().zip(w.iter()) {
            c.1 = wi;
        }
    }
    if r.norm_topk {
        // ggml_sum_rows sums in f64 (ggml_vec_sum_f32), then rounds.
        let sum = chosen.iter().map(|&(_, p)| p as f64).sum::<f64>() as f32;
        let sum = sum.max(MIN_WEIGHT_SUM);
        for c in chosen.iter_mut() {
            c.1 /= sum;
        }
    }
}

/// The most experts a token may use (`expert_used_count` ≤ `expert_count`
/// ≤ [`crate::config::MAX_EXPERTS`]).
const MAX_TOP_K: usize = crate::config::MAX_EXPERTS as usize;

/// The `k` largest values of `probs` with their indices, largest first.
fn top_k(probs: &[f32], k: usize, chosen: &mut Vec<(usize, f32)>) {
    chosen.clear();
    for _ in 0..k {
        let mut best: Option<usize> = None;
        for (e, &p) in probs.iter().enumerate() {
            if chosen.iter().any(|&(c, _)| c == e) {
                continue;
            }
            if best.is_none_or(|b| p > probs[b]) {
                best = Some(e);
            }
        }
        let e = best.expect("k <= number of experts");
        chosen.push((e, probs[e]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOFTMAX_NORM: Routing<'static> = Routing { gating: Gating::Softmax, norm_topk: true, bias: None };

    #[test]
    fn softmax_over_the_top_k_biased_logits() {
        let logits = [0.1f32, 2.0, -1.0, 1.5, 0.4];
        let bias = [0.0f32, -1.0, 0.0, 0.0, 1.0];
        let mut probs = logits.to_vec();
        let mut chosen = Vec::new();
        route(&mut probs, 2, Routing { gating: Gating::SoftmaxTopK, norm_topk: false, bias: Some(&bias) }, &mut chosen);
        // Biased: [0.1, 1.0, -1.0, 1.5, 1.4] → experts 3 and 4.
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), vec![3, 4]);
        let w3 = 1.0 / (1.0 + (1.4f64 - 1.5).exp());
        assert!((chosen[0].1 as f64 - w3).abs() < 1e-6, "{chosen:?}");
        assert!((chosen[0].1 + chosen[1].1 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top2_renormalised() {
        let mut logits = vec![0.1f32, 2.0, -1.0, 1.5];
        let mut chosen = Vec::new();
        route(&mut logits, 2, SOFTMAX_NORM, &mut chosen);
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 3]);
        // Renormalised top-2 softmax = softmax over the two chosen logits.
        let w1 = 1.0 / (1.0 + (1.5f64 - 2.0).exp());
        assert!((chosen[0].1 as f64 - w1).abs() < 1e-6);
        assert!((chosen[0].1 + chosen[1].1 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn without_renormalisation_the_weights_are_the_softmax_probabilities() {
        let logits = [0.1f32, 2.0, -1.0, 1.5];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        let mut probs = logits.to_vec();
        let mut chosen = Vec::new();
        route(&mut probs, 2, Routing { norm_topk: false, ..SOFTMAX_NORM }, &mut chosen);
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 3]);
        for &(e, w) in &chosen {
            assert!((w as f64 - (logits[e] as f64).exp() / z).abs() < 1e-6, "expert {e}: {w}");
        }
        assert!(chosen[0].1 + chosen[1].1 < 0.95);
    }

    #[test]
    fn ties_pick_lower_index() {
        let mut logits = vec![1.0f32, 1.0, 1.0];
        let mut chosen = Vec::new();
        route(&mut logits, 2, SOFTMAX_NORM, &mut chosen);
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
    }
}
