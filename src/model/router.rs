//! The MoE router: softmax over all experts → top-k → (Mixtral, Qwen3-MoE)
//! weights renormalised to sum to 1, or (Qwen2-MoE, OLMoE) the top-k
//! probabilities as they are: llama.cpp's `build_moe_ffn` with SOFTMAX
//! gating and `norm_w` on or off.

use super::ops::softmax;

/// llama.cpp clamps the sum of the top-k weights to at least this (the
/// smallest normal f16) before dividing by it.
const MIN_WEIGHT_SUM: f32 = 1.0 / 16384.0; // 2^-14 = 6.103515625e-5

/// Fills `chosen` with the top-`k` experts by router probability (ties:
/// lower index first, in descending order as ggml's argsort gives them)
/// and their weights, renormalised when `norm_topk`. `probs` holds the
/// router logits on entry and the softmax probabilities on return.
pub fn route(probs: &mut [f32], k: usize, norm_topk: bool, chosen: &mut Vec<(usize, f32)>) {
    softmax(probs);
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
    if norm_topk {
        // ggml_sum_rows sums in f64 (ggml_vec_sum_f32), then rounds.
        let sum = chosen.iter().map(|&(_, p)| p as f64).sum::<f64>() as f32;
        let sum = sum.max(MIN_WEIGHT_SUM);
        for c in chosen.iter_mut() {
            c.1 /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top2_renormalised() {
        let mut logits = vec![0.1f32, 2.0, -1.0, 1.5];
        let mut chosen = Vec::new();
        route(&mut logits, 2, true, &mut chosen);
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
        route(&mut probs, 2, false, &mut chosen);
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
        route(&mut logits, 2, true, &mut chosen);
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
    }
}
