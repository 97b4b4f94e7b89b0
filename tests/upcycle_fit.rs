//! `moe upcycle`'s fitted routers: SmolLM2 becomes an 8-expert top-2 MoE
//! whose experts are copies of the dense FFN and whose routers are k-means
//! centroids of real hidden states. Its logits must equal the dense model's
//! (up to the rounding of non-binary router weights), its routing must be
//! clearly non-uniform on text it was not fitted on, and the build must be
//! deterministic.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use moe::model::Model;
use moe::offload_setup::{self, Footprint, MemRequest, OffloadOptions, Size};
use moe::routing::LayerDiversity;
use moe::tokenizer::Tokenizer;

/// Held-out text (not in the corpus the routers were fitted on).
const HELD_OUT: &str = "In 1848, Ada wrote: the engine weaves algebraic patterns. Prices rose 7% in Q3; def f(x): return x**2 + 1. \
Bonjour, le chat noir dort. Zebras graze quietly near Lake Nakuru! The committee will meet again after the harvest festival.";

fn logits(path: &Path, tokens: &[u32]) -> Vec<Vec<f32>> {
    let model = Model::open(path).unwrap();
    let mut s = model.session(tokens.len()).unwrap();
    let mut all = Vec::new();
    s.prefill(tokens, |_, l| all.push(l.to_vec())).unwrap();
    all
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

fn tokens(path: &Path, text: &str) -> Vec<u32> {
    let model = Model::open(path).unwrap();
    Tokenizer::from_metadata(model.metadata()).unwrap().encode(text, true, true).unwrap()
}

#[test]
fn fitted_upcycle_predicts_like_the_dense_model() {
    let dense = smollm2();
    let moe = fitted_smollm2();
    let t = tokens(&dense, HELD_OUT);
    let (d, m) = (logits(&dense, &t), logits(&moe, &t));
    // Router weights are not binary fractions, so w1·y + w2·y differs from
    // y by rounding, which 8-bit activation quantization in later layers can
    // amplify (as with a random router): the logits agree closely and the
    // predictions almost everywhere.
    let (agree, gap, mean) = compare(&m, &d);
    eprintln!("fitted upcycle vs dense: {} positions, argmax equal at {agree}, max |Δlogit| {gap:.4}, mean {mean:.5}", t.len());
    // The same comparison with a random router (tests/moe_equivalence.rs
    // accepts its deviation): the fitted router's must be of its order.
    let rp = test_model_path("smollm2-8x2-random-cmp.gguf");
    moe::synth::upcycle(&dense, &rp, 8, 2, moe::synth::ExpertLayout::Merged, moe::synth::Router::Random { seed: 1 }).unwrap();
    let (r_agree, r_gap, r_mean) = compare(&logits(&rp, &t), &d);
    std::fs::remove_file(&rp).ok();
    eprintln!("random router vs dense: argmax equal at {r_agree}, max |Δlogit| {r_gap:.4}, mean {r_mean:.5}");
    assert!(agree + 3 >= t.len(), "argmax equal at only {agree} of {} positions", t.len());
    assert!(gap < 1.5, "max |Δlogit| {gap}");
    assert!(mean < 1.5 * r_mean, "mean |Δlogit| {mean} against the random router's {r_mean}");
}

/// (argmax agreements, max |Δ|, mean |Δ|) of `m` against `d`.
fn compare(m: &[Vec<f32>], d: &[Vec<f32>]) -> (usize, f32, f64) {
    let (mut agree, mut gap, mut sum) = (0, 0f32, 0f64);
    for (m, d) in m.iter().zip(d) {
        agree += usize::from(argmax(m) == argmax(d));
        for (a, b) in m.iter().zip(d) {
            gap = gap.max((a - b).abs());
            sum += (a - b).abs() as f64;
        }
    }
    (agree, gap, sum / (d.len() * d[0].len()) as f64)
}

/// Routing diversity of `text` fed one token at a time.
fn diversity(path: &Path, text: &str) -> Vec<LayerDiversity> {
    let t = tokens(path, text);
    let mut model = Model::open(path).unwrap();
    let fp = Footprint::of(&model);
    let req = MemRequest { expert_cache: Some(Size::Percent(100.0)), ..Default::default() };
    let plan = offload_setup::plan(&fp, t.len(), &req).unwrap();
    let opts = OffloadOptions { loader_threads: 2, record_routing: true, ..Default::default() };
    let report = offload_setup::setup(&mut model, &plan, &opts).unwrap();
    let mut s = model.session(t.len()).unwrap();
    s.set_batch_size(1).unwrap();
    s.prefill_last(&t).unwrap();
    report.routing.unwrap().diversity(8)
}

fn mean(d: &[LayerDiversity], f: impl Fn(&LayerDiversity) -> f64) -> f64 {
    d.iter().map(f).sum::<f64>() / d.len() as f64
}

/// Uniform random top-2 of 8 has evenness → 1, max share 1/8, reuse 2/8;
/// the fitted routers must be clearly away from that on held-out text.
/// (A random router on these hidden states is printed for comparison: it
/// is non-uniform too, but concentrated on fewer experts.)
#[test]
fn fitted_routing_is_far_from_uniform() {
    let fitted = diversity(&fitted_smollm2(), HELD_OUT);
    assert_eq!(fitted.len(), 30);
    let random_path = test_model_path("smollm2-8x2-random-router.gguf");
    moe::synth::upcycle(&smollm2(), &random_path, 8, 2, moe::synth::ExpertLayout::Merged, moe::synth::Router::Random { seed: 1 }).unwrap();
    let random = diversity(&random_path, HELD_OUT);
    std::fs::remove_file(&random_path).ok();
    let row = |name: &str, d: &[LayerDiversity]| {
        eprintln!(
            "{name:>7}: evenness {:.3}, max share {:.3}, set change {:.3}, reuse {:.3}, distinct sets {:.1}/28",
            mean(d, |l| l.usage_evenness),
            mean(d, |l| l.max_share),
            mean(d, |l| l.set_change_rate),
            mean(d, |l| l.reuse_rate),
            mean(d, |l| l.distinct_sets as f64)
        )
    };
    row("fitted", &fitted);
    row("random", &random);
    assert!(mean(&fitted, |l| l.reuse_rate) > 0.35, "reuse too close to uniform's 0.25");
    assert!(mean(&fitted, |l| l.max_share) > 0.18, "max share too close to uniform's 0.125");
    assert!(mean(&fitted, |l| l.usage_evenness) < 0.95);
    // Every layer uses several experts: fitted, not collapsed.
    for (l, d) in fitted.iter().enumerate() {
        assert!(d.usage.iter().filter(|&&u| u > 0).count() >= 5, "layer {l} uses too few experts: {:?}", d.usage);
    }
}

/// `moe upcycle` twice from the same input gives the same bytes, and equals
/// the library's build (fitted on a shorter text to keep this quick: the
/// code path is the same).
#[test]
fn upcycle_cli_is_deterministic() {
    let text_path = test_model_path("fit-text-short.txt");
    let short: String = moe::synth::BUILTIN_CORPUS.lines().step_by(6).map(|l| format!("{l}\n")).collect();
    std::fs::write(&text_path, &short).unwrap();
    let out = |name: &str| {
        let p = test_model_path(name);
        let st = Command::new(env!("CARGO_BIN_EXE_moe"))
            .args(["upcycle", "--force", "-m"])
            .arg(smollm2())
            .arg("-o")
            .arg(&p)
            .arg("--fit-text")
            .arg(&text_path)
            .output()
            .unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        std::fs::read(&p).unwrap()
    };
    let (a, b) = (out("fit-det-a.gguf"), out("fit-det-b.gguf"));
    assert!(a == b, "two builds differ");
    let opts = moe::synth::FitOptions { text: short, ..Default::default() };
    let fitted = moe::synth::fit_routers(&smollm2(), 8, &opts).unwrap();
    let lib = test_model_path("fit-det-lib.gguf");
    moe::synth::upcycle(&smollm2(), &lib, 8, 2, moe::synth::ExpertLayout::Merged, moe::synth::Router::Fitted(Arc::new(fitted))).unwrap();
    assert!(std::fs::read(&lib).unwrap() == a, "library and CLI builds differ");
    // Existing output is refused without --force.
    let st = Command::new(env!("CARGO_BIN_EXE_moe")).args(["upcycle", "-m"]).arg(smollm2()).arg("-o").arg(&lib).output().unwrap();
    assert!(!st.status.success() && String::from_utf8_lossy(&st.stderr).contains("--force"));
    for n in ["fit-det-a.gguf", "fit-det-b.gguf", "fit-det-lib.gguf"] {
        std::fs::remove_file(test_model_path(n)).ok();
    }
}
