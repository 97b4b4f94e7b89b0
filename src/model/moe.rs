//! Mixtral routing: softmax over all experts → top-k → weights renormalised
//! to sum to 1 (llama.cpp's `llm_build_moe_ffn` with SOFTMAX gating and
//! `norm_w`).

use super::ops::softmax;

/// Fills `chosen` with the top-`k` experts by router probability (ties:
/// lower index first) and their renormalised weights. `probs` holds the
/// router logits on entry and the softmax probabilities on return.
pub fn route(probs: &mut [f32], k: usize, chosen: &mut Vec<(usize, f32)>) {
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
    let sum: f32 = chosen.iter().map(|&(_, p)| p).sum();
    for c in chosen.iter_mut() {
        c.1 /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top2_renormalised() {
        let mut logits = vec![0.1f32, 2.0, -1.0, 1.5];
        let mut chosen = Vec::new();
        route(&mut logits, 2, &mut chosen);
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 3]);
        // Renormalised top-2 softmax = softmax over the two chosen logits.
        let w1 = 1.0 / (1.0 + (1.5f64 - 2.0).exp());
        assert!((chosen[0].1 as f64 - w1).abs() < 1e-6);
        assert!((chosen[0].1 + chosen[1].1 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn ties_pick_lower_index() {
        let mut logits = vec![1.0f32, 1.0, 1.0];
        let mut chosen = Vec::new();
        route(&mut logits, 2, &mut chosen);
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
    }
}
