//! The f16 KV cache against llama.cpp's default run (f16 K and V, flash
//! attention): logits at every prompt position for every reference model,
//! and SmolLM2's 32 greedy tokens.

mod common;

use common::*;
use moe::model::{KvType, Model};

/// llama.cpp's default-run reference case (no suffix), every position.
fn check(model_path: &std::path::Path, case: &str, max_abs: f32) -> f32 {
    check_reference_logits(model_path, case, "", KvType::F16, max_abs)
}

#[test]
fn shared_models_f16_kv() {
    for (case, limit) in [
        // Measured: 0 to 1e-6 (the K-quant dots follow llama.cpp's order);
        // F16 weights 0 on the AVX2/AVX-512 tiers, 1.1e-3 on the scalar and
        // portable ones (their F16 dots sum in another order).
        ("tiny-moe4x2-f16", 0.02),
        ("tiny-moe4x2-q8_0", 1e-4),
        ("tiny-moe4x2-q4_0", 1e-4),
        ("tiny-moe8x2-n256-q2_k", 1e-4),
        ("tiny-moe8x2-n256-q3_k_m", 1e-4),
        ("tiny-moe8x2-n256-q4_k_m", 1e-4),
        ("tiny-moe8x2-n256-q5_k_m", 1e-4),
        ("tiny-moe8x2-n256-q6_k", 1e-4),
    ] {
        let Some(path) = shared_model_or_skip(&format!("{case}.gguf")) else { return };
        check(&path, case, limit);
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
