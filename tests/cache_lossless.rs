//! The expert cache changes speed, never output: logits are bit-identical
//! (compared with `to_bits`) between experts read through the mapping and
//! through an `ExpertCache`, whatever its budget (all experts, two or one
//! per layer, two, one), with prefetch off or on (either predictor), with
//! O_DIRECT or buffered reads, with the resident weights copied into huge
//! pages (the default) or read through the mapping, in both expert
//! layouts, over a prompt (prefill) and 16 greedy decode steps.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use moe::model::{Model, Prefetch};
use moe::offload_setup::{self, ExpertPlan, Footprint, MemRequest, OffloadOptions, ResidentMode, Size};
use moe::synth::{ExpertLayout, TinyModel, WeightTypes};
use moe_offload::IoMode;
use moe_quant::QType;

fn tmp(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const DECODE_STEPS: usize = 16;

/// Bits of the logits after every prompt token (the prompt in one batch),
/// then after each of `DECODE_STEPS` greedy decode steps; and the expert
/// lookups (hits + misses) the prompt batch made, if there is a cache.
fn logit_bits(model: &Model, prompt: &[u32]) -> (Vec<Vec<u32>>, Option<u64>) {
    let mut s = model.session(prompt.len() + DECODE_STEPS).unwrap();
    let mut all = Vec::new();
    let last = s.prefill(prompt, |_, l| all.push(l.iter().map(|x| x.to_bits()).collect())).unwrap();
    let prompt_lookups = model.experts().stats().map(|st| st.total().hits + st.total().misses);
    let mut next = argmax(last) as u32;
    for _ in 0..DECODE_STEPS {
        let l = s.forward(next).unwrap();
        all.push(l.iter().map(|x| x.to_bits()).collect());
        next = argmax(l) as u32;
    }
    (all, prompt_lookups)
}

/// The model with an expert cache of `budget` bytes set up as `moe run`
/// does it.
fn cached(path: &Path, budget: u64, prefetch: Prefetch, io: IoMode, resident: ResidentMode) -> Model {
    let mut model = Model::open(path).unwrap();
    let fp = Footprint::of(&model);
    let req = MemRequest { expert_cache: Some(Size::Bytes(budget)), ..Default::default() };
    let plan = offload_setup::plan(&fp, 64, &req).unwrap();
    assert_eq!(plan.experts, ExpertPlan::Cache { budget: budget.min(fp.all_experts), from: offload_setup::BudgetFrom::Flag });
    let opts = OffloadOptions { loader_threads: 2, prefetch, io, resident, ..Default::default() };
    let report = offload_setup::setup(&mut model, &plan, &opts).unwrap();
    assert!(model.experts().stats().is_some(), "the cache is in place");
    assert_eq!(model.resident_copy().is_some(), resident == ResidentMode::Copy, "{:?}", report.resident_note);
    assert_eq!(report.resident_copied, resident == ResidentMode::Copy);
    if let Some(copy) = model.resident_copy() {
        assert_eq!(copy.ranges().collect::<Vec<_>>(), model.resident_ranges());
    }
    model
}

/// Compares every cache configuration against the mapping on `path`.
fn check_lossless(path: &Path, prompt: &[u32]) {
    let mapped = Model::open(path).unwrap();
    assert!(mapped.experts().stats().is_none(), "plain mapping");
    let (want, _) = logit_bits(&mapped, prompt);
    assert!(want.iter().flatten().all(|&b| f32::from_bits(b).is_finite()));

    let fp = Footprint::of(&mapped);
    let one = fp.min_expert_cache;
    let layers = fp.n_layer;
    let budgets = [
        ("all experts", fp.all_experts),
        ("2 per layer", 2 * layers * one),
        ("1 per layer", layers * one),
        ("2 experts", 2 * one),
        ("1 expert (minimum)", one),
    ];
    let copy = ResidentMode::Copy;
    let mut cases: Vec<(String, u64, Prefetch, IoMode, ResidentMode)> = Vec::new();
    for (name, b) in budgets {
        for p in [Prefetch::Off, Prefetch::RouterOnFfnInput] {
            cases.push((name.to_string(), b, p, IoMode::Auto, copy));
        }
    }
    cases.push(("2 per layer".into(), 2 * layers * one, Prefetch::RouterOnResidual, IoMode::Auto, copy));
    cases.push(("1 per layer".into(), layers * one, Prefetch::RouterOnFfnInput, IoMode::Buffered, copy));
    cases.push(("2 experts".into(), 2 * one, Prefetch::RouterOnFfnInput, IoMode::Auto, ResidentMode::Map));
    for (name, budget, prefetch, io, resident) in cases {
        let model = cached(path, budget, prefetch, io, resident);
        let (got, prompt_lookups) = logit_bits(&model, prompt);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g == w, "{}: budget {name} ({budget} B), prefetch {prefetch:?}, {io:?}, {resident:?}: logits differ at step {i}", path.display());
        }
        assert_eq!(got.len(), want.len());
        let st = model.experts().stats().unwrap();
        let t = st.total();
        let k = model.config().n_expert_used as u64;
        // The prompt batch looks each chosen expert up once per layer (at
        // least k, at most all of a layer's); each decode step k per layer.
        let p = prompt_lookups.unwrap();
        let n_expert = model.config().n_expert as u64;
        assert!((layers * k..=layers * n_expert.min(k * prompt.len() as u64)).contains(&p), "{name}: {p} prompt lookups");
        assert_eq!(t.hits + t.misses, p + DECODE_STEPS as u64 * layers * k, "{name}");
        assert_eq!(st.read_errors, 0);
        assert!(st.peak_resident_bytes <= budget.max(st.budget_bytes) || st.over_budget_events > 0, "{name}: {st:?}");
        if budget >= fp.all_experts {
            assert_eq!(t.evictions, 0, "{name}: nothing to evict");
        }
        if prefetch == Prefetch::Off {
            assert_eq!(t.prefetch_issued, 0, "{name}");
        }
    }
}

fn tiny(layout: ExpertLayout) -> TinyModel {
    TinyModel {
        n_layer: 4,
        n_embd: 256,
        n_ff: 256,
        n_expert: 8,
        n_expert_used: 2,
        types: WeightTypes { ffn_gate_up: QType::Q4_K, ffn_down: QType::Q6_K, ..WeightTypes::uniform(QType::Q8_0) },
        layout,
        seed: 42,
        ..Default::default()
    }
}

fn prompt() -> Vec<u32> {
    (0..12).map(|i| (i * 71 + 3) % 260).collect()
}

#[test]
fn cache_is_lossless_merged_layout() {
    let path = tmp("cache-lossless-merged.gguf");
    tiny(ExpertLayout::Merged).write(&path).unwrap();
    check_lossless(&path, &prompt());
    std::fs::remove_file(&path).ok();
}

#[test]
fn cache_is_lossless_per_expert_layout() {
    let path = tmp("cache-lossless-per-expert.gguf");
    tiny(ExpertLayout::PerExpert).write(&path).unwrap();
    check_lossless(&path, &prompt());
    std::fs::remove_file(&path).ok();
}

/// Both layouts of one seed give the same logits through the cache too.
#[test]
fn both_layouts_agree_through_the_cache() {
    let a = tmp("cache-layouts-merged.gguf");
    let b = tmp("cache-layouts-per-expert.gguf");
    tiny(ExpertLayout::Merged).write(&a).unwrap();
    tiny(ExpertLayout::PerExpert).write(&b).unwrap();
    let one = Footprint::of(&Model::open(&a).unwrap()).min_expert_cache;
    let x = logit_bits(&cached(&a, 3 * one, Prefetch::RouterOnFfnInput, IoMode::Auto, ResidentMode::Copy), &prompt());
    let y = logit_bits(&cached(&b, 3 * one, Prefetch::RouterOnFfnInput, IoMode::Auto, ResidentMode::Copy), &prompt());
    assert!(x == y, "merged and per-expert logits differ through the cache");
    std::fs::remove_file(&a).ok();
    std::fs::remove_file(&b).ok();
}

/// The shared tiny models (llama.cpp-made files, real quant mixes).
#[test]
fn cache_is_lossless_on_shared_models() {
    for name in ["tiny-moe4x2-q4_0.gguf", "tiny-moe8x2-n256-q4_k_m.gguf"] {
        let Some(path) = shared_model_or_skip(name) else { return };
        let prompt: Vec<u32> = (0..10).map(|i| (i * 4099 + 17) % 49152).collect();
        check_lossless(&path, &prompt);
    }
}

/// The fine-grained architectures: Qwen3-MoE (32 experts, top-8, narrow
/// experts, per-head QK norm, head size ≠ embd/heads), Qwen2-MoE (shared
/// expert beside the routed ones, weights not renormalised), OLMoE and
/// gpt-oss (MXFP4 experts with biases, sinks, windowed layers, YaRN).
#[test]
fn cache_is_lossless_on_other_architectures() {
    use moe::arch::Arch;
    let types = WeightTypes { ffn_gate_up: QType::Q4_K, ffn_down: QType::Q6_K, ..WeightTypes::uniform(QType::Q8_0) };
    let base = TinyModel { n_layer: 3, n_embd: 256, n_ff: 512, n_ff_exp: 256, n_head: 4, n_head_kv: 2, types, seed: 7, ..Default::default() };
    for (name, spec) in [
        ("qwen3moe", TinyModel { arch: Arch::Qwen3Moe, head_dim: 128, n_expert: 32, n_expert_used: 8, ..base.clone() }),
        ("qwen2moe", TinyModel { arch: Arch::Qwen2Moe, n_expert: 8, n_expert_used: 2, n_ff_shexp: 512, ..base.clone() }),
        ("olmoe", TinyModel { arch: Arch::Olmoe, n_head_kv: 4, n_expert: 16, n_expert_used: 4, ..base.clone() }),
        (
            "gpt-oss",
            TinyModel {
                arch: Arch::GptOss,
                head_dim: 64,
                n_expert: 16,
                n_expert_used: 4,
                sliding_window: 4,
                rope_yarn: 32.0,
                n_ctx: 4096,
                types: WeightTypes { ffn_gate_up: QType::MXFP4, ffn_down: QType::MXFP4, ..WeightTypes::uniform(QType::Q8_0) },
                ..base.clone()
            },
        ),
    ] {
        let path = tmp(&format!("cache-lossless-{name}.gguf"));
        spec.write(&path).unwrap();
        check_lossless(&path, &prompt());
        std::fs::remove_file(&path).ok();
    }
}
