//! The f16 KV cache against llama.cpp's default run (f16 K and V, flash
//! attention): logits at every prompt position for every reference model,
//! and SmolLM2's 32 greedy tokens.

mod common;

use common::*;
use moe::model::{KvType, Model};

/// Runs the reference prompt with an f16 KV cache and compares every
/// position's logits; returns the largest |Δlogit|.
fn check(model_path: &std::path::Path, case: &str, max_abs: f32) -> f32 {
    let tokens = read_i32s(&reference(&format!("{case}.france.tokens.i32")));
    let want = read_f32s(&reference(&format!("{case}.france.logits.f32")));
    let model = Model::open(model_path).unwrap_or_else(|e| panic!("{e}"));
    let n_vocab = model.config().n_vocab;
    assert_eq!(want.len(), tokens.len() * n_vocab, "{case}: reference size");
    let mut session = model.session_with_kv(tokens.len(), KvType::F16).unwrap();
    let prompt: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
    let mut worst = 0.0f32;
    session
        .prefill(&prompt, |pos, got| {
            let want = &want[pos * n_vocab..(pos + 1) * n_vocab];
            let gap = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            worst = worst.max(gap);
            assert_eq!(argmax(got), argmax(want), "{case}: argmax differs at position {pos} (max |Δ| {gap})");
        })
        .unwrap();
    eprintln!("{case} (f16 KV): {} positions, max |Δlogit| = {worst:.6} (limit {max_abs})", tokens.len());
    assert!(worst <= max_abs, "{case}: max |Δlogit| {worst} exceeds {max_abs}");
    worst
}

#[test]
fn shared_models_f16_kv() {
    for (case, limit) in [
        // Measured: 0 to 1e-6 (the K-quant dots follow llama.cpp's order).
        ("tiny-moe4x2-f16", 1e-4),
        ("tiny-moe4x2-q8_0", 1e-4),
        ("tiny-moe4x2-q4_0", 1e-4),
        ("tiny-moe8x2-n256-q2_k", 1e-4),
        ("tiny-moe8x2-n256-q3_k_m", 1e-4),
        ("tiny-moe8x2-n256-q4_k_m", 1e-4),
        ("tiny-moe8x2-n256-q5_k_m", 1e-4),
        ("tiny-moe8x2-n256-q6_k", 1e-4),
    ] {
        check(&shared_model(&format!("{case}.gguf")), case, limit);
    }
}

#[test]
fn smollm2_f16_kv_logits_and_greedy() {
    let path = smollm2();
    // Bit-identical (measured 0.000000).
    check(&path, "SmolLM2-135M-Instruct.Q4_1", 1e-4);
    let json = read_json(&reference("SmolLM2-135M-Instruct.Q4_1.france.json"));
    let prompt: Vec<u32> = json["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    let want: Vec<u32> = json["greedy_tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    let model = Model::open(&path).unwrap();
    let mut s = model.session_with_kv(prompt.len() + want.len(), KvType::F16).unwrap();
    let mut next = argmax(s.prefill_last(&prompt).unwrap()) as u32;
    let mut got = vec![next];
    while got.len() < want.len() {
        next = argmax(s.forward(next).unwrap()) as u32;
        got.push(next);
    }
    assert_eq!(got, want, "greedy tokens with an f16 KV cache");
}
