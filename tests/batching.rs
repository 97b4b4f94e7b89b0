//! Prompt micro-batching changes speed, not results: llama.cpp evaluates a
//! micro-batch of two or more tokens with one set of float orders and a
//! single token with another (see `moe::model::attention`), and each
//! token's arithmetic depends on nothing else in its batch. So logits are
//! bit-identical whatever the batch size, as long as every micro-batch has
//! two or more tokens; with a batch size of one, the prompt runs exactly as
//! decode steps. Checked on dense and MoE models (tokens grouped by expert)
//! in several quant mixes; and over a 2,100-token prompt on SmolLM2 with
//! the f16 and Q8_0 KV caches, at -b 1, 64 and 512.

mod common;

use std::path::PathBuf;

use common::repo_root;
use moe::model::Model;
use moe::synth::{ExpertLayout, TinyModel, WeightTypes};
use moe_quant::QType;

fn tmp(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Bits of the logits after every token of `prompt`, run in micro-batches
/// of `n_batch`.
fn logits(model: &Model, prompt: &[u32], n_batch: usize) -> Vec<Vec<u32>> {
    let mut s = model.session(prompt.len()).unwrap();
    s.set_batch_size(n_batch).unwrap();
    let mut all = Vec::new();
    s.prefill(prompt, |i, l| {
        assert_eq!(i, all.len());
        all.push(l.iter().map(|x| x.to_bits()).collect());
    })
    .unwrap();
    all
}

#[test]
fn batch_size_does_not_change_logits() {
    let prompt: Vec<u32> = (0..23).map(|i| (i * 53 + 7) % 260).collect();
    let models = [
        ("dense-q4_1", 0, WeightTypes::uniform(QType::Q4_1), ExpertLayout::Merged),
        ("moe-q8_0", 4, WeightTypes::uniform(QType::Q8_0), ExpertLayout::Merged),
        (
            "moe-q4_k-q6_k",
            8,
            WeightTypes { ffn_gate_up: QType::Q4_K, ffn_down: QType::Q6_K, ..WeightTypes::uniform(QType::Q8_0) },
            ExpertLayout::PerExpert,
        ),
    ];
    for (name, n_expert, types, layout) in models {
        let path = tmp(&format!("batching-{name}.gguf"));
        TinyModel { n_layer: 3, n_embd: 256, n_ff: 512, n_expert, n_expert_used: 2, types, layout, seed: 9, ..Default::default() }
            .write(&path)
            .unwrap();
        let model = Model::open(&path).unwrap();
        let whole = logits(&model, &prompt, 64);
        assert_eq!(whole.len(), prompt.len());
        // 23 = 5+5+5+5+3 = 11+11+... never a batch of one.
        for n_batch in [2, 5, 11, 22] {
            assert!(logits(&model, &prompt, n_batch) == whole, "{name}: batch {n_batch} differs from one batch");
        }
        // prefill_last skips the last layer's FFN for all but the last
        // token: the same last logits, and the same KV for what follows.
        let mut s = model.session(prompt.len() + 1).unwrap();
        s.set_batch_size(64).unwrap();
        let last: Vec<u32> = s.prefill_last(&prompt).unwrap().iter().map(|x| x.to_bits()).collect();
        assert!(&last == whole.last().unwrap(), "{name}: prefill_last differs from prefill's last logits");
        let next: Vec<u32> = s.forward(3).unwrap().iter().map(|x| x.to_bits()).collect();
        let mut full = model.session(prompt.len() + 1).unwrap();
        full.set_batch_size(64).unwrap();
        full.prefill(&prompt, |_, _| {}).unwrap();
        let want: Vec<u32> = full.forward(3).unwrap().iter().map(|x| x.to_bits()).collect();
        assert!(next == want, "{name}: the step after prefill_last differs");
        // Batch size 1 is a sequence of decode steps.
        let mut s = model.session(prompt.len()).unwrap();
        let steps: Vec<Vec<u32>> = prompt.iter().map(|&t| s.forward(t).unwrap().iter().map(|x| x.to_bits()).collect()).collect();
        assert!(logits(&model, &prompt, 1) == steps, "{name}: batch 1 differs from decode steps");
        // The two evaluation orders differ in the last bits only.
        let max_diff = whole.iter().flatten().zip(steps.iter().flatten()).map(|(a, b)| (f32::from_bits(*a) - f32::from_bits(*b)).abs()).fold(0.0, f32::max);
        assert!(max_diff < 1e-3, "{name}: batched vs one at a time: {max_diff}");
        std::fs::remove_file(&path).ok();
    }
}

#[test]
fn batch_size_zero_is_an_error() {
    let path = tmp("batching-zero.gguf");
    TinyModel::default().write(&path).unwrap();
    let model = Model::open(&path).unwrap();
    let mut s = model.session(8).unwrap();
    let e = s.set_batch_size(0).unwrap_err().to_string();
    assert!(e.contains("batch size"), "{e}");
    std::fs::remove_file(&path).ok();
}

/// A digest of each position's logits (FNV-1a over their bits): a long
/// prompt's full logits would take gigabytes.
fn digests(model: &Model, prompt: &[u32], n_batch: usize, kv: moe::model::KvType) -> Vec<u64> {
    let mut s = model.session_with_kv(prompt.len(), kv).unwrap();
    s.set_batch_size(n_batch).unwrap();
    let mut all = Vec::with_capacity(prompt.len());
    s.prefill(prompt, |_, l| {
        all.push(l.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| (h ^ x.to_bits() as u64).wrapping_mul(0x0100_0000_01b3)));
    })
    .unwrap();
    all
}

/// A prompt of over 2,000 tokens on the real SmolLM2, with the f16 cache
/// (llama.cpp's tiled flash-attention order for every batch: tiles of 64
/// keys from position 0, whatever the batch) and the Q8_0 one (its per-key
/// order): the logits at every position are the same bits with
/// `-b 1` (decode steps), `-b 64` and `-b 512`.
#[test]
fn a_long_prompt_has_the_same_logits_at_every_batch_size() {
    let model = Model::open(&common::smollm2()).unwrap();
    let n_vocab = model.config().n_vocab as u32;
    let prompt: Vec<u32> = (0..2_100u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) % n_vocab).collect();
    for kv in [moe::model::KvType::F16, moe::model::KvType::Q8_0] {
        let want = digests(&model, &prompt, 512, kv);
        assert_eq!(want.len(), prompt.len());
        for n_batch in [64, 1] {
            let got = digests(&model, &prompt, n_batch, kv);
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            assert_eq!(first, None, "{kv:?}: -b {n_batch} differs from -b 512 first at position {first:?}");
        }
    }
}
