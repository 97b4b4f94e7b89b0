//! `moe synth`, `moe disk-bench` and the routing diversity report, as a
//! user runs them: full-size plans (dry run), small files of the same
//! shape that load and run, determinism, layouts, and clear errors.

mod common;

use std::process::{Command, Output};

use common::*;
use moe::gguf::GgufFile;
use moe_quant::QType;

fn moe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe")).args(args).output().expect("running moe")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small Mixtral-shaped file: 8 layers (unless `extra` says otherwise),
/// embd 256, ff 512, 8 experts top-2.
fn small(name: &str, extra: &[&str]) -> std::path::PathBuf {
    let path = test_model_path(name);
    let p = path.to_str().unwrap();
    let mut args = vec!["synth", "--embd", "256", "--ff", "512", "--heads", "4", "--kv-heads", "2"];
    if !extra.contains(&"--layers") {
        args.extend_from_slice(&["--layers", "8"]);
    }
    args.extend_from_slice(&["--vocab-size", "300", "--ctx", "512", "-o", p, "--force"]);
    args.extend_from_slice(extra);
    let o = moe(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    path
}

fn dry_run_bytes(args: &[&str]) -> u64 {
    let mut a = vec!["synth", "--dry-run"];
    a.extend_from_slice(args);
    let o = moe(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err.lines().find(|l| l.contains(" tensors, ") && l.contains(" bytes (")).unwrap_or_else(|| panic!("{err}"));
    line.split(" tensors, ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn full_size_presets_have_llama_cpp_q4_k_m_sizes() {
    // Tensor bytes of llama.cpp's Q4_K_M Mixtral-8x7B (published files: 28.448 GB,
    // within ~1 MB of metadata) and Mistral-7B (4.37 GB).
    assert_eq!(dry_run_bytes(&[]), 28_447_727_616);
    assert_eq!(dry_run_bytes(&["--preset", "mistral-7b"]), 4_367_704_064);
    // Q4_0: 26.443 GB published.
    assert_eq!(dry_run_bytes(&["--type", "q4_0"]), 26_442_850_304);
    // 4 layers of the same shape: embeddings, output and its norm; 30,048,256
    // resident bytes per layer; 8 experts of 99,090,432 B (Q4_K down) on
    // layers 0-1 and of 114,229,248 B (Q6_K down) on layers 2-3, the
    // use_more_bits layers of a 4-layer model.
    let expected = 73_728_000 + 107_520_000 + 16_384 + 4 * 30_048_256 + 16 * 99_090_432 + 16 * 114_229_248;
    assert_eq!(dry_run_bytes(&["--layers", "4"]), expected);
}

/// Qwen3-30B-A3B at Q4_K_M: 18,550,716,416 tensor bytes = 17.28 GiB, the
/// size of the published Qwen3-30B-A3B-Q4_K_M.gguf (listed as 18.6 GB /
/// 17.28 GB). The type choices are llama-quantize's for qwen3moe (checked
/// by quantizing a 48-layer qwen3moe file with llama-quantize Q4_K_M:
/// attn_v and ffn_down_exps Q6_K on the 24 use_more_bits layers, Q4_K
/// elsewhere, output Q6_K, norms and routers F32). OLMoE-1B-7B: 4.21 GB.
#[test]
fn qwen3_and_olmoe_presets_have_llama_cpp_q4_k_m_sizes() {
    let qwen3 = dry_run_bytes(&["--preset", "qwen3-30b-a3b"]);
    assert_eq!(qwen3, 18_550_716_416);
    let published = 17.28 * (1u64 << 30) as f64;
    assert!((qwen3 as f64 / published - 1.0).abs() < 0.01, "{qwen3} vs {published}");
    assert_eq!(dry_run_bytes(&["--preset", "olmoe-1b-7b"]), 4_211_730_432);
}

/// gpt-oss-20b in the published file's MXFP4_MOE mix (experts MXFP4, the
/// other matrices Q8_0, norms, biases, sinks and routers F32):
/// 12,096,558,336 tensor bytes, within 1% of the published
/// gpt-oss-20b-mxfp4.gguf (listed as 12.1 GB).
#[test]
fn gpt_oss_preset_has_the_published_size() {
    let bytes = dry_run_bytes(&["--preset", "gpt-oss-20b"]);
    assert_eq!(bytes, 12_096_558_336);
    assert!((bytes as f64 / 12.1e9 - 1.0).abs() < 0.01, "{bytes}");
}

/// A small gpt-oss-shaped file: its biases, sinks, windowed layers and
/// MXFP4 experts, and it runs.
#[test]
fn small_gpt_oss_file_has_its_tensors_and_runs() {
    let path = test_model_path("synth-gpt-oss.gguf");
    let p = path.to_str().unwrap();
    let o = moe(&[
        "synth", "--preset", "gpt-oss-20b", "--layers", "2", "--embd", "256", "--ff", "256", "--heads", "4", "--kv-heads", "2", "--experts", "8",
        "--vocab-size", "300", "--ctx", "512", "-o", p, "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = GgufFile::open(&path).unwrap();
    let md = f.metadata();
    assert_eq!(md.str("general.architecture").unwrap(), "gpt-oss");
    assert_eq!(md.u64("gpt-oss.attention.sliding_window").unwrap(), 128);
    assert_eq!(md.str("gpt-oss.rope.scaling.type").unwrap(), "yarn");
    let ty = |n: &str| f.require(n).unwrap().qtype;
    assert_eq!((ty("blk.0.ffn_gate_exps.weight"), ty("blk.0.ffn_down_exps.weight"), ty("blk.0.attn_q.weight")), (QType::MXFP4, QType::MXFP4, QType::Q8_0));
    assert_eq!(f.require("blk.1.attn_sinks.weight").unwrap().dims, [4]);
    assert_eq!(f.require("blk.1.ffn_down_exps.bias").unwrap().dims, [256, 8]);
    assert_eq!(f.require("blk.0.post_attention_norm.weight").unwrap().dims, [256]);
    let o = moe(&["run", "-m", p, "-p", "Varied text, 12 tokens!", "-n", "4", "--temp", "0", "-t", "1", "--ignore-eos"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("generation: 4 tokens"), "{}", stderr(&o));
}

/// A small Qwen3-MoE-shaped file (2 layers, 16 experts of width 256, head
/// size 128 with 4/2 heads over n_embd 256) loads with its QK norms and
/// runs.
#[test]
fn small_qwen3moe_file_has_its_tensors_and_runs() {
    let path = test_model_path("synth-qwen3moe.gguf");
    let p = path.to_str().unwrap();
    let o = moe(&[
        "synth", "--preset", "qwen3-30b-a3b", "--layers", "2", "--embd", "256", "--ff", "256", "--heads", "4", "--kv-heads", "2", "--experts", "16",
        "--vocab-size", "300", "--ctx", "512", "-o", p, "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.metadata().str("general.architecture").unwrap(), "qwen3moe");
    assert_eq!(f.require("blk.1.attn_q.weight").unwrap().dims, [256, 512]);
    assert_eq!(f.require("blk.1.attn_k_norm.weight").unwrap().dims, [128]);
    assert_eq!(f.require("blk.0.ffn_down_exps.weight").unwrap().dims, [256, 256, 16]);
    let o = moe(&["run", "-m", p, "-p", "Varied text, 12 tokens!", "-n", "4", "--temp", "0", "-t", "1", "--ignore-eos"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("generation: 4 tokens"), "{}", stderr(&o));
}

#[test]
fn small_file_has_the_q4_k_m_mix_and_runs() {
    let path = small("synth-mix.gguf", &[]);
    let f = GgufFile::open(&path).unwrap();
    let ty = |n: &str| f.require(n).unwrap().qtype;
    assert_eq!(ty("token_embd.weight"), QType::Q4_K);
    assert_eq!(ty("output.weight"), QType::Q6_K);
    assert_eq!(ty("blk.0.attn_k.weight"), QType::Q8_0);
    assert_eq!(ty("blk.0.attn_v.weight"), QType::Q8_0);
    assert_eq!(ty("blk.0.attn_output.weight"), QType::Q5_K);
    assert_eq!(ty("blk.0.ffn_gate_inp.weight"), QType::F32);
    // use_more_bits over 8 layers: 0, 3, 6, 7.
    let down: Vec<QType> = (0..8).map(|l| ty(&format!("blk.{l}.ffn_down_exps.weight"))).collect();
    let (q6, q4) = (QType::Q6_K, QType::Q4_K);
    assert_eq!(down, [q6, q4, q4, q6, q4, q4, q6, q6]);
    assert_eq!(f.require("blk.0.ffn_gate_exps.weight").unwrap().dims, [256, 512, 8]);

    let p = path.to_str().unwrap();
    let o = moe(&["run", "-m", p, "-p", "Varied text, 12 tokens!", "-n", "4", "--temp", "0", "-t", "1", "--ignore-eos"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("generation: 4 tokens"), "{}", stderr(&o));
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes_and_layouts_agree() {
    let a = std::fs::read(small("synth-seed-a.gguf", &["--seed", "5"])).unwrap();
    let b = std::fs::read(small("synth-seed-b.gguf", &["--seed", "5"])).unwrap();
    let c = std::fs::read(small("synth-seed-c.gguf", &["--seed", "6"])).unwrap();
    assert!(a == b, "same seed, different bytes");
    assert_eq!(a.len(), c.len());
    assert!(a != c, "another seed, same bytes");

    // Per-expert layout: same expert slabs, so the same greedy text.
    let merged = small("synth-layout-m.gguf", &["--seed", "5"]);
    let split = small("synth-layout-p.gguf", &["--seed", "5", "--layout", "per-expert"]);
    let run = |m: &std::path::Path| {
        let o = moe(&["run", "-m", m.to_str().unwrap(), "-p", "abc def", "-n", "6", "--temp", "0", "-t", "1", "--ignore-eos"]);
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    };
    assert_eq!(run(&merged), run(&split));
    let f = GgufFile::open(&split).unwrap();
    assert!(f.tensor("blk.3.ffn_up.7.weight").is_some() && f.tensor("blk.3.ffn_up_exps.weight").is_none());
}

#[test]
fn routing_diversity_is_reported_per_layer_and_varies() {
    let path = small("synth-routing.gguf", &[]);
    let json = test_model_path("synth-routing.json");
    let (p, j) = (path.to_str().unwrap(), json.to_str().unwrap());
    let prompt = "The quick brown fox jumps over the lazy dog; 0123456789.";
    // -b 1: the prompt token by token, so that each token's routing is logged.
    let o = moe(&["run", "-m", p, "-p", prompt, "-n", "5", "--temp", "0", "-t", "1", "-b", "1", "--ignore-eos", "--stats", "--stats-json", j]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("moe: routing diversity over 60 tokens"), "{}", stderr(&o));
    let v = read_json(&json);
    let layers = v["routing"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 8);
    // 56 prompt bytes (byte-level vocab, no BOS) + 4 decode passes.
    for l in layers {
        assert_eq!(l["tokens"], 60);
        let usage: Vec<u64> = l["usage"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap()).collect();
        assert_eq!(usage.iter().sum::<u64>(), 120, "top-2 of every token");
        assert!(usage.iter().all(|&u| u > 0), "every expert used: {usage:?}");
        assert!(l["set_change_rate"].as_f64().unwrap() > 0.7, "{l}");
        assert!(l["distinct_sets"].as_u64().unwrap() >= 10, "{l}");
    }
    // One record per forward pass.
    assert_eq!(v["tokens"].as_array().unwrap().len(), 60);
    assert!(v["first_token_s"].as_f64().unwrap() > 0.0 && v["load_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn disk_bench_reads_every_expert_once() {
    let path = small("synth-disk.gguf", &["--layers", "2"]);
    let o = moe(&["disk-bench", "-m", path.to_str().unwrap(), "--reads", "1000", "--loader-threads", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("moe: disk: 16 reads of 16 experts"), "{out}");
    // Merged layout: gate, up and down sit in three tensors, one read call
    // each; the group defaults to the model's experts used per token (2).
    assert!(out.contains("48 read calls") && out.contains("in groups of 2 "), "{out}");
    assert!(out.contains(" GB/s, ") && out.contains(" reads/s ("), "{out}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let cases: [(&[&str], &str); 6] = [
        (&["synth", "--preset", "llama-70b", "--dry-run"], "unknown preset 'llama-70b'"),
        (&["synth", "--type", "q3_k_s", "--dry-run"], "unknown type 'q3_k_s'"),
        (&["synth", "--preset", "mistral-7b", "--experts", "4", "--dry-run"], "--experts applies to MoE presets"),
        (&["synth", "--embd", "4000", "--heads", "25", "--kv-heads", "5", "--dry-run"], "n_embd 4000 must be a multiple of 256"),
        (&["synth", "--layers", "1", "--embd", "256", "--ff", "256", "--heads", "2", "--kv-heads", "2", "-o", "/nonexistent-dir/x.gguf"], "/nonexistent-dir/x.gguf"),
        (&["synth", "--experts-used", "9", "--dry-run"], "experts used 9 must be in 1..=8"),
    ];
    for (args, want) in cases {
        let o = moe(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want) && !err.contains("panicked"), "{args:?}: {err}");
    }
    let existing = small("synth-exists.gguf", &["--layers", "1"]);
    let o = moe(&["synth", "--layers", "1", "-o", existing.to_str().unwrap()]);
    assert!(stderr(&o).contains("exists; pass --force"), "{}", stderr(&o));
    let o = moe(&["disk-bench", "-m", smollm2().to_str().unwrap()]);
    assert!(stderr(&o).contains("a dense model has no experts"), "{}", stderr(&o));
}

#[test]
fn a_batched_prompt_is_left_out_of_the_routing_log() {
    let path = small("synth-routing-batch.gguf", &[]);
    let p = path.to_str().unwrap();
    let prompt = "The quick brown fox jumps over the lazy dog; 0123456789.";
    let o = moe(&["run", "-m", p, "-p", prompt, "-n", "5", "--temp", "0", "-t", "1", "--ignore-eos", "--stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Only the 4 decode passes: the prompt ran as one batch.
    assert!(stderr(&o).contains("moe: routing diversity over 4 tokens"), "{}", stderr(&o));
}

/// `moe upcycle` checks its input (the file's header) before the minutes of
/// fitting: an impossible request fails at once, naming the file.
#[test]
fn upcycle_refuses_bad_input_before_fitting() {
    let m = smollm2();
    let out = test_model_path("upcycle-never-written.gguf");
    let _ = std::fs::remove_file(&out);
    let cases: [(&[&str], &str); 3] = [
        (&["--arch", "olmoe"], "has 3 KV heads for 9 query heads"),
        (&["--experts", "4", "--experts-used", "5"], "1 <= n_expert_used <= n_expert, got 4 and 5"),
        (&["--arch", "qwen3"], "qwen3 is a dense architecture"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["upcycle", "-m", m.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let start = std::time::Instant::now();
        let o = moe(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {err}");
        assert!(err.contains(want) && !err.contains("fitting"), "{extra:?}: {err}");
        assert!(start.elapsed().as_secs() < 10, "{extra:?} took {:?}", start.elapsed());
        assert!(!out.exists());
    }
}
