//! `moe simulate` replays a trace through the cache's own semantics: its
//! hit rate at the budget a run used equals the hit rate that run measured
//! (`--stats-json`, prefetch off), for LRU and LRFU, on the fitted SmolLM2
//! MoE (real-text routing) and on a small synthetic Mixtral (near-uniform
//! routing). Belady's bound is at least every policy's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn moe(args: &[&str]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).args(args).output().expect("running moe");
    assert!(o.status.success(), "moe {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
    o
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `model` with a trace at `budget` and `policy`, no prefetch; returns
/// (measured hit rate, simulate's JSON at that budget).
fn measure(model: &Path, tag: &str, budget: &str, policy: &str, batch: &str) -> (f64, serde_json::Value) {
    let trace = test_model_path(&format!("{tag}-{policy}.trace"));
    let stats = test_model_path(&format!("{tag}-{policy}.json"));
    let sim = test_model_path(&format!("{tag}-{policy}-sim.json"));
    let p = |x: &PathBuf| x.display().to_string();
    let prompt = "In 1848, Ada wrote: the engine weaves algebraic patterns. Prices rose 7% in Q3; def f(x): return x**2 + 1. Zebras graze quietly!";
    moe(&[
        "run", "-m", &p(&model.to_path_buf()), "-p", prompt, "-n", "40", "--temp", "0", "-t", "2", "--ignore-eos", "-b", batch,
        "--expert-cache", budget, "--no-prefetch", "--cache-policy", policy, "--trace", &p(&trace), "--stats-json", &p(&stats),
    ]);
    let measured = json(&stats)["cache"]["total"]["hit_rate"].as_f64().unwrap();
    moe(&["simulate", &p(&trace), "--sizes", budget, "--policy", "lru,lfu,lrfu,static-hot,per-layer,belady", "--json", &p(&sim), "-m", &p(&model.to_path_buf())]);
    (measured, json(&sim))
}

fn rate(sim: &serde_json::Value, policy: &str) -> f64 {
    sim["results"].as_array().unwrap().iter().find(|r| r["policy"] == policy).unwrap()["hit_rate"].as_f64().unwrap()
}

fn check(model: &Path, tag: &str, budget: &str, batch: &str) {
    for (policy, name) in [("lru", "lru"), ("lrfu", "lrfu:16")] {
        let (measured, sim) = measure(model, tag, budget, policy, batch);
        let simulated = rate(&sim, name);
        let belady = rate(&sim, "belady");
        eprintln!("{tag} at {budget}, {policy}: run {:.2}%, simulate {:.2}%, belady {:.2}%", 100.0 * measured, 100.0 * simulated, 100.0 * belady);
        assert!((measured - simulated).abs() <= 0.005, "{tag} {policy}: run {measured} vs simulate {simulated}");
        assert_eq!(sim["recorded_hit_rate"].as_f64().unwrap(), measured, "the trace's outcomes are the run's");
        for r in sim["results"].as_array().unwrap() {
            assert!(r["hit_rate"].as_f64().unwrap() <= belady + 1e-12, "{} beats belady", r["policy"]);
        }
        assert!(belady > simulated, "belady should do better than {policy} at a tight budget");
    }
}

#[test]
fn simulate_matches_run_on_fitted_smollm2() {
    let m = fitted_smollm2();
    check(&m, "fit-b1", "40%", "1");
    check(&m, "fit-b512", "30%", "512");
}

#[test]
fn simulate_matches_run_on_a_synthetic_mixtral() {
    let path = test_model_path("sim-synth-mixtral.gguf");
    if !path.exists() {
        let p = path.display().to_string();
        moe(&["synth", "--embd", "256", "--ff", "512", "--heads", "4", "--kv-heads", "2", "--layers", "8", "--vocab-size", "512", "-o", &p, "--force"]);
    }
    check(&path, "synth", "50%", "1");
}

#[test]
fn a_trace_of_another_model_is_refused() {
    let m = fitted_smollm2();
    let (_, _) = measure(&m, "refuse", "60%", "lru", "512");
    let trace = test_model_path("refuse-lru.trace").display().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).args(["simulate", &trace, "-m"]).arg(smollm2()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("was recorded on smollm2-8x2-fit.gguf") && err.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{err}");
    // A cut trace (a recording run that was killed) replays its whole
    // passes, with a note; one cut inside its header is refused.
    let bytes = std::fs::read(&trace).unwrap();
    let cut = test_model_path("refuse-cut.trace");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).arg("simulate").arg(&cut).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("ends without its end record") && !err.contains("panicked"), "{err}");
    std::fs::write(&cut, &bytes[..20]).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).arg("simulate").arg(&cut).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("truncated") && !err.contains("panicked"), "{err}");
}
