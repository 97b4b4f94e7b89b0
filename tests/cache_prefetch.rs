//! The prefetch predictor: how often the experts it predicts for layer l+1
//! are the ones layer l+1's router then chooses, for both predictors, on a
//! dense model upcycled with a random router (real hidden states) and on
//! random synthetic models; and that prefetch turns first-token misses into
//! prefetch hits without changing the logits.
//!
//! Run with `--nocapture` to see the table.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use moe::model::{LayerRunStats, Model, Prefetch};
use moe::offload_setup::{self, Footprint, MemRequest, OffloadOptions, Size};
use moe::synth::{upcycle, ExpertLayout, Router, TinyModel, WeightTypes};
use moe::tokenizer::Tokenizer;
use moe_offload::{IoMode, LayerStats};
use moe_quant::QType;

fn tmp(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const TEXT: &str = "In 1969, astronauts first landed on the Moon, and the world watched on television.";

struct Measured {
    accuracy: f64,
    /// Layers 1.. only (layer 0 is never predicted).
    cache: LayerStats,
    logits: Vec<u32>,
}

/// Runs `tokens` as a prompt with `prefetch` and a cache of `budget` bytes.
fn measure(path: &Path, tokens: &[u32], prefetch: Prefetch, budget: Option<u64>) -> Measured {
    let mut model = Model::open(path).unwrap();
    let fp = Footprint::of(&model);
    let req = MemRequest { expert_cache: Some(Size::Bytes(budget.unwrap_or(fp.all_experts))), ..Default::default() };
    let plan = offload_setup::plan(&fp, tokens.len(), &req).unwrap();
    offload_setup::setup(&mut model, &plan, &OffloadOptions { loader_threads: 2, prefetch, io: IoMode::Auto, ..Default::default() }).unwrap();
    let mut s = model.session(tokens.len()).unwrap();
    // One token at a time, as decode steps: predictions are made then.
    s.set_batch_size(1).unwrap();
    let mut logits = Vec::new();
    s.prefill(tokens, |_, l| logits.extend(l.iter().map(|x| x.to_bits()))).unwrap();
    let mut total = LayerRunStats::default();
    for l in s.layer_stats() {
        total.add(l);
    }
    let st = model.experts().stats().unwrap();
    let mut cache = LayerStats::default();
    for l in &st.layers[1..] {
        cache.hits += l.hits;
        cache.misses += l.misses;
        cache.prefetch_issued += l.prefetch_issued;
        cache.prefetch_hits += l.prefetch_hits;
        cache.prefetch_wasted += l.prefetch_wasted;
    }
    Measured { accuracy: total.prediction_accuracy().unwrap_or(0.0), cache, logits }
}

/// Measures both predictors on `path`, prints a row each, checks that the
/// logits do not depend on prefetch, and returns the accuracies.
fn compare(name: &str, path: &Path, tokens: &[u32], budget: Option<u64>) -> (f64, f64) {
    let off = measure(path, tokens, Prefetch::Off, budget);
    let mut acc = Vec::new();
    for p in [Prefetch::RouterOnFfnInput, Prefetch::RouterOnResidual] {
        let m = measure(path, tokens, p, budget);
        assert!(m.logits == off.logits, "{name}: {p:?} changed the logits");
        eprintln!(
            "{name:<42} {:<17} predicted experts chosen {:5.1}%  (layers 1..: hits {:4} misses {:4} | prefetch issued {:4} hit {:4} wasted {:4}; without prefetch: hits {:4} misses {:4})",
            format!("{p:?}"),
            100.0 * m.accuracy,
            m.cache.hits,
            m.cache.misses,
            m.cache.prefetch_issued,
            m.cache.prefetch_hits,
            m.cache.prefetch_wasted,
            off.cache.hits,
            off.cache.misses,
        );
        acc.push(m.accuracy);
    }
    (acc[0], acc[1])
}

/// SmolLM2 (30 layers, real text) upcycled to 8 experts top-2 with a
/// random router: chance is 25%.
#[test]
fn predictor_accuracy_on_upcycled_smollm2() {
    let moe = tmp("prefetch-smollm2-8x2.gguf");
    upcycle(&smollm2(), &moe, 8, 2, ExpertLayout::Merged, Router::Random { seed: 3 }).unwrap();
    let tokens = Tokenizer::from_metadata(Model::open(&moe).unwrap().metadata()).unwrap().encode(TEXT, true, true).unwrap();
    let (early, late) = compare("upcycled SmolLM2 8x2, all experts", &moe, &tokens, None);
    assert!(early > 0.5 && late > 0.5, "predictions no better than chance: {early} {late}");
    std::fs::remove_file(&moe).ok();
}

/// Random synthetic models: the residual stream still carries most of the
/// signal from one layer to the next.
#[test]
fn predictor_accuracy_on_random_models() {
    for (n_expert, seed) in [(8usize, 1u64), (4, 2)] {
        let path = tmp(&format!("prefetch-tiny-{n_expert}x2.gguf"));
        TinyModel {
            n_layer: 8,
            n_embd: 256,
            n_ff: 256,
            n_expert,
            n_expert_used: 2,
            types: WeightTypes::uniform(QType::Q8_0),
            seed,
            ..Default::default()
        }
        .write(&path)
        .unwrap();
        let tokens: Vec<u32> = (0..48).map(|i| (i * 97 + 13) % 260).collect();
        let (early, late) = compare(&format!("TinyModel 8 layers, {n_expert}x2, all experts"), &path, &tokens, None);
        let one = Footprint::of(&Model::open(&path).unwrap()).min_expert_cache;
        let per_layer = n_expert as u64 / 2;
        compare(&format!("TinyModel 8 layers, {n_expert}x2, {per_layer} experts/layer"), &path, &tokens, Some(8 * per_layer * one));
        let chance = 2.0 / n_expert as f64;
        assert!(early > chance && late > chance, "{n_expert} experts: {early} {late} vs chance {chance}");
        std::fs::remove_file(&path).ok();
    }
    for name in ["tiny-moe4x2-q8_0.gguf", "tiny-moe8x2-n256-q4_k_m.gguf"] {
        let tokens: Vec<u32> = (0..48).map(|i| (i * 4099 + 17) % 49152).collect();
        let Some(path) = shared_model_or_skip(name) else { return };
        compare(name, &path, &tokens, None);
    }
}
