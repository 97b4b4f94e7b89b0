//! Helpers shared by the integration tests: where the reference assets are,
//! and readers for llama.cpp's reference dumps.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared`, which holds the tiny reference models and llama.cpp's
/// outputs. Its absence fails the test loudly: the reference comparisons
/// are the point of these tests.
pub fn shared_dir() -> PathBuf {
    let dir = repo_root().join("../shared");
    assert!(
        dir.join("models").is_dir() && dir.join("reference").is_dir(),
        "\n\n*** {} is missing: the reference models and llama.cpp outputs live there. \
         These tests compare against them and cannot run without them. ***\n",
        dir.display()
    );
    dir
}

pub fn shared_model(name: &str) -> PathBuf {
    shared_dir().join("models").join(name)
}

pub fn reference(name: &str) -> PathBuf {
    shared_dir().join("reference").join(name)
}

/// A path for a model a test writes, under target/test-models/. Tests that
/// run in parallel must use distinct names.
pub fn test_model_path(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.join(name)
}

static FETCH: Mutex<()> = Mutex::new(());

/// The real test model, fetched (once, cached in models/) by
/// scripts/fetch-model.sh if it is not there yet.
pub fn smollm2() -> PathBuf {
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let path = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/fetch-model.sh"))
            .status()
            .expect("running scripts/fetch-model.sh");
        assert!(status.success(), "scripts/fetch-model.sh failed: cannot get SmolLM2-135M-Instruct.Q4_1.gguf");
    }
    path
}

pub fn read_i32s(path: &Path) -> Vec<i32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub fn read_f32s(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A reference case's JSON (its text fields may hold invalid UTF-8, so it
/// is read lossily).
pub fn read_json(path: &Path) -> serde_json::Value {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&String::from_utf8_lossy(&b)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Runs a reference case's prompt (`{case}.france{suffix}.*` in the shared
/// references) with a KV cache of `kv`, compares the logits at every
/// position with llama.cpp's (argmax equal, max |Δ| ≤ `max_abs`) and
/// returns the largest |Δlogit|.
#[allow(dead_code)]
pub fn check_reference_logits(model_path: &Path, case: &str, suffix: &str, kv: moe::model::KvType, max_abs: f32) -> f32 {
    let tokens = read_i32s(&reference(&format!("{case}.france{suffix}.tokens.i32")));
    let want = read_f32s(&reference(&format!("{case}.france{suffix}.logits.f32")));
    let model = moe::model::Model::open(model_path).unwrap_or_else(|e| panic!("{e}"));
    let n_vocab = model.config().n_vocab;
    assert_eq!(want.len(), tokens.len() * n_vocab, "{case}: reference size");
    let mut session = model.session_with_kv(tokens.len(), kv).unwrap();
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
    eprintln!("{case} ({kv:?} KV): {} positions, max |Δlogit| = {worst:e} (limit {max_abs})", tokens.len());
    assert!(worst <= max_abs, "{case}: max |Δlogit| {worst} exceeds {max_abs}");
    worst
}

/// SmolLM2 upcycled to 8 experts top-2 with routers fitted to the built-in
/// corpus (`moe upcycle`'s default): a small MoE whose routing follows real
/// text. Built once into target/test-models/ and reused by later test runs
/// (written to a temporary name and renamed, so a half-written file is never
/// used).
pub fn fitted_smollm2() -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let path = test_model_path("smollm2-8x2-fit.gguf");
    if !path.exists() {
        let dense = smollm2();
        let fitted = moe::synth::fit_routers(&dense, 8, &moe::synth::FitOptions::default()).expect("fitting routers");
        let tmp = path.with_extension(format!("partial{}", std::process::id()));
        moe::synth::upcycle(&dense, &tmp, 8, 2, moe::synth::ExpertLayout::Merged, moe::synth::Router::Fitted(std::sync::Arc::new(fitted)))
            .expect("upcycling");
        std::fs::rename(&tmp, &path).expect("renaming the fitted model");
    }
    path
}
