//! `moe inspect`: figures checked against the file's own tensor table and
//! the memory planner, for the fitted SmolLM2 MoE (merged layout), a
//! per-expert-layout synthetic Mixtral and the dense SmolLM2.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use moe::gguf::GgufFile;

fn inspect(path: &Path, extra: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).arg("inspect").arg(path).arg("--json").args(extra).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Bytes of the tensors whose names satisfy `f`.
fn bytes_where(path: &Path, f: impl Fn(&str) -> bool) -> u64 {
    GgufFile::open(path).unwrap().tensors().iter().filter(|t| f(&t.name)).map(|t| t.n_bytes).sum()
}

#[test]
fn merged_moe_figures_match_the_tensor_table_and_the_plan() {
    let path = fitted_smollm2();
    let j = inspect(&path, &["--mem", "1G", "-c", "2048"]);
    assert_eq!(j["n_expert"], 8);
    assert_eq!(j["n_expert_used"], 2);
    assert_eq!(j["n_layer"], 30);
    assert_eq!(j["expert_layout"], "merged");
    assert_eq!(j["tokenizer"], "gpt2");
    assert!(j["chat_template_bytes"].as_u64().unwrap() > 0, "SmolLM2 ships a chat template");
    let experts = bytes_where(&path, |n| n.contains("_exps."));
    assert_eq!(j["expert_payload_bytes"].as_u64().unwrap(), experts);
    assert_eq!(j["by_role"]["experts"]["bytes"].as_u64().unwrap(), experts);
    assert_eq!(j["by_role"]["router"]["tensors"], 30);
    let all = bytes_where(&path, |_| true);
    let roles: u64 = j["by_role"].as_object().unwrap().values().map(|g| g["bytes"].as_u64().unwrap()).sum();
    let types: u64 = j["by_type"].as_object().unwrap().values().map(|g| g["bytes"].as_u64().unwrap()).sum();
    assert_eq!((roles, types), (all, all));
    // One expert = its three slabs (Q4_1 1536×576: 20 bytes per 32), each
    // rounded out to whole pages where it lies in the file.
    let slab = 1536 * 576 / 32 * 20;
    let f = GgufFile::open(&path).unwrap();
    let per = j["expert_bytes_per_layer"].as_array().unwrap();
    assert_eq!(per.len(), 30);
    for (l, b) in per.iter().enumerate() {
        let most = (0..8u64)
            .map(|e| {
                ["gate", "up", "down"]
                    .iter()
                    .map(|k| {
                        let start = f.tensor(&format!("blk.{l}.ffn_{k}_exps.weight")).unwrap().offset + e * slab;
                        (start + slab).div_ceil(4096) * 4096 - start / 4096 * 4096
                    })
                    .sum::<u64>()
            })
            .max()
            .unwrap();
        assert_eq!(b.as_u64().unwrap(), most, "layer {l}");
    }
    assert!(j["expert_cache_bytes"].as_u64().unwrap() <= 240 * per[0].as_u64().unwrap());
    assert!(j["expert_cache_bytes"].as_u64().unwrap() >= 240 * 3 * slab);
    // The plan: the cache gets what --mem leaves, at most every expert.
    let p = &j["plan"];
    let fixed = p["resident"].as_u64().unwrap() + p["kv"].as_u64().unwrap() + p["scratch"].as_u64().unwrap();
    let all_experts = j["expert_cache_bytes"].as_u64().unwrap();
    assert_eq!(p["expert_cache"].as_u64().unwrap(), ((1u64 << 30) - fixed).min(all_experts));
    let j = inspect(&path, &["--mem", "400M", "-c", "2048"]);
    assert_eq!(j["plan"]["expert_cache"].as_u64().unwrap(), (400u64 << 20) - fixed);
    let p = &j["plan"];
    assert_eq!(p["n_ctx"], 2048);
    // f16 KV: 2 (K and V) × 30 layers × 192 (kv dim) × 2 bytes per position.
    assert_eq!(p["kv"].as_u64().unwrap(), 2 * 30 * 192 * 2 * 2048);
    let fit = p["experts_per_layer"].as_f64().unwrap();
    let want = p["expert_cache"].as_u64().unwrap() as f64 / 30.0 / per[0].as_u64().unwrap() as f64;
    assert!((fit - want.min(8.0)).abs() < 1e-9);
}

#[test]
fn per_expert_layout_dense_model_and_bad_budgets() {
    let path = test_model_path("inspect-per-expert.gguf");
    let o = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(["synth", "--embd", "256", "--ff", "512", "--heads", "4", "--kv-heads", "2", "--layers", "2", "--vocab-size", "300", "--layout", "per-expert", "--force", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = inspect(&path, &[]);
    assert_eq!(j["expert_layout"], "per-expert");
    assert_eq!(j["by_role"]["experts"]["tensors"], 2 * 8 * 3);
    assert_eq!(j["expert_payload_bytes"].as_u64().unwrap(), bytes_where(&path, |n| n.matches('.').count() == 4));
    assert!(j["plan"].is_null());
    let dense = inspect(&smollm2(), &["--mem", "2G"]);
    assert!(dense["expert_layout"].is_null());
    assert_eq!(dense["expert_payload_bytes"], 0);
    assert!(dense["by_role"]["dense ffn"]["bytes"].as_u64().unwrap() > 0);
    assert!(dense["plan"]["expert_cache"].is_null());
    // An impossible --mem is reported, not a crash.
    let j = inspect(&fitted_smollm2(), &["--mem", "100M"]);
    assert!(j["plan_error"].as_str().unwrap().contains("too small"), "{}", j["plan_error"]);
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).args(["inspect", "/nonexistent.gguf"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("/nonexistent.gguf") && !err.contains("panicked"), "{err}");
    std::fs::remove_file(&path).ok();
}

/// Strings from the file reach the terminal escaped (an ESC sequence or a
/// newline in `general.name` cannot recolour the terminal or forge a
/// line), and `--json` stays valid JSON holding the exact string.
#[test]
fn file_strings_cannot_drive_the_terminal() {
    let path = test_model_path("inspect-evil-name.gguf");
    let evil = "evil\u{1b}]0;owned\u{7}\u{1b}[31m\nforged: line";
    moe::synth::TinyModel { name: Some(evil.into()), ..Default::default() }.write(&path).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).arg("inspect").arg(&path).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}') && !text.lines().any(|l| l.starts_with("forged")), "{text}");
    assert!(text.contains(r"evil\u{1b}]0;owned\u{7}\u{1b}[31m\nforged: line"), "{text}");
    assert_eq!(inspect(&path, &[])["name"], evil);
}
