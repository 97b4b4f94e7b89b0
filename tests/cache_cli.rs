//! `moe run` with the expert-cache flags, end to end through the binary:
//! impossible budgets are clear errors (naming the flag and the minimum, no
//! panic), bad sizes are clap errors, and the cache, the mapping and every
//! flag combination print the same greedy text; `--stats-json` is valid
//! JSON with one entry per token.

mod common;

use std::process::{Command, Output};

use common::*;
use moe::model::Model;
use moe::offload_setup::{human, Footprint};

fn moe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe")).args(args).output().expect("running moe")
}

fn model() -> String {
    kquant_moe().display().to_string()
}

fn run(extra: &[&str]) -> Output {
    let m = model();
    let mut args = vec!["run", "-m", &m, "-p", "Once upon a time", "-n", "12", "--temp", "0", "-t", "1"];
    args.extend_from_slice(extra);
    moe(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn too_small_expert_cache_is_a_clear_error() {
    let o = run(&["--expert-cache", "1K"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let min = Footprint::of(&Model::open(std::path::Path::new(&model())).unwrap()).min_expert_cache;
    assert!(err.contains("--expert-cache 1.0 KiB is below"), "{err}");
    assert!(err.contains(&format!("minimum expert cache of {}", human(min))), "{err}");
    assert!(o.stdout.is_empty(), "nothing generated");
    // A percentage below the minimum too (1% of this model's experts).
    let o = run(&["--expert-cache", "1%"]);
    assert!(!o.status.success() && stderr(&o).contains("is below this model's minimum expert cache"), "{}", stderr(&o));
}

#[test]
fn too_small_mem_is_a_clear_error() {
    let o = run(&["--mem", "64M"]);
    let err = stderr(&o);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("--mem 64.0 MiB is too small: this model needs at least"), "{err}");
}

#[test]
fn bad_sizes_are_clap_errors_naming_the_flag() {
    for (flag, value, why) in [
        ("--expert-cache", "12X", "unknown unit"),
        ("--expert-cache", "150%", "(0, 100]"),
        ("--expert-cache", "", "empty size"),
        ("--mem", "50%", "not a percentage"),
        ("--mem", "lots", "not a size"),
    ] {
        let o = run(&[flag, value]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(&format!("invalid value '{value}' for '{flag} <SIZE>'")), "{err}");
        assert!(err.contains(why), "{flag} {value}: {err}");
    }
    let o = run(&["--expert-cache", "1G", "--mmap-experts"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

/// The cache is lossless end to end: every configuration prints the text
/// the plain mapping prints.
#[test]
fn every_configuration_prints_the_same_text() {
    let want = run(&["--mmap-experts"]);
    assert!(want.status.success(), "{}", stderr(&want));
    assert!(stderr(&want).contains("experts: mmap"), "{}", stderr(&want));
    for extra in [
        &[][..],
        &["--expert-cache", "100%"],
        &["--expert-cache", "100%", "--no-prefetch"],
        &["--expert-cache", "10%"],
        &["--expert-cache", "300K", "--loader-threads", "1"],
        &["--mem", "200M", "--mlock"],
    ] {
        let o = run(extra);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&want.stdout), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("experts: cache"), "{extra:?}: {}", stderr(&o));
    }
}

#[test]
fn stats_table_and_json() {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("cache-cli-stats.json");
    let o = run(&["--expert-cache", "50%", "-b", "1", "--stats", "--stats-json", json.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("layer     hits   misses"), "{err}");
    assert!(err.contains("total"), "{err}");
    assert!(err.contains("moe: decode (11 tokens"), "{err}");
    assert!(err.contains("moe: prompt ("), "{err}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["expert_source"], "cache");
    assert_eq!(v["generated_tokens"], 12);
    // One record per forward pass: each prompt token (with -b 1 they run
    // one at a time), then each of the 11 decode steps.
    let tokens = v["tokens"].as_array().unwrap();
    let prompt = v["prompt_tokens"].as_u64().unwrap();
    assert!(prompt >= 2);
    assert_eq!(tokens.len() as u64, prompt + 11);
    assert!(tokens.iter().all(|t| t["n_tokens"] == 1));
    assert!(tokens[..prompt as usize].iter().all(|t| t["phase"] == "prompt"));
    assert!(tokens[prompt as usize..].iter().all(|t| t["phase"] == "decode"));
    let k = 2;
    let layers = v["layers"].as_array().unwrap().len() as u64;
    let accesses: u64 = tokens.iter().map(|t| t["hits"].as_u64().unwrap() + t["misses"].as_u64().unwrap()).sum();
    // Forward passes: the prompt and 11 decode steps, k experts per layer each.
    assert_eq!(accesses, (prompt + 11) * layers * k);
    let read: u64 = tokens.iter().map(|t| t["bytes_read"].as_u64().unwrap()).sum();
    assert_eq!(read, v["cache"]["total"]["bytes_read"].as_u64().unwrap());
    assert_eq!(v["cache"]["layers"].as_array().unwrap().len() as u64, layers);
    assert!(v["plan"]["expert_cache_bytes"].as_u64().unwrap() * 2 <= v["plan"]["all_experts_bytes"].as_u64().unwrap());
    std::fs::remove_file(&json).ok();

    // Without a cache the JSON still has the per-token array, with nulls.
    let o = run(&["--mmap-experts", "--stats-json", json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["expert_source"], "mmap");
    assert!(v["cache"].is_null());
    assert!(v["tokens"][0]["hits"].is_null());
    std::fs::remove_file(&json).ok();
}

#[test]
fn dense_model_has_no_cache() {
    let m = smollm2().display().to_string();
    let o = moe(&["run", "-m", &m, "-p", "Hi", "-n", "2", "--temp", "0", "--expert-cache", "1G", "--stats"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("--expert-cache ignored: this is a dense model"), "{err}");
    assert!(err.contains("dense model: no experts"), "{err}");
    assert!(!err.contains("experts: cache"), "{err}");
}

/// `--mlock` past `RLIMIT_MEMLOCK` warns (with the limit and how to raise
/// it) and runs on, printing the same text.
#[test]
fn mlock_failure_is_a_warning() {
    let m = model();
    let args = ["run", "-m", &m, "-p", "Once upon a time", "-n", "4", "--temp", "0", "-t", "1", "--mlock"];
    let script = "ulimit -l 64 && exec \"$@\"";
    let shell = |setpriv: bool| {
        // Root's CAP_IPC_LOCK ignores the limit: drop it where setpriv exists.
        let mut c = if setpriv {
            let mut c = Command::new("setpriv");
            c.args(["--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "sh"]);
            c
        } else {
            Command::new("sh")
        };
        c.args(["-c", script, "sh", env!("CARGO_BIN_EXE_moe")]).args(args);
        c.output()
    };
    let o = match shell(true) {
        Ok(o) if !stderr(&o).starts_with("setpriv:") => o,
        _ => shell(false).expect("running sh"),
    };
    let err = stderr(&o);
    if err.contains("resident weights locked (mlock)") {
        eprintln!("skipped: this environment can lock past RLIMIT_MEMLOCK (CAP_IPC_LOCK)");
        return;
    }
    assert!(o.status.success(), "{err}");
    assert!(err.contains("moe: warning: --mlock: could not lock the"), "{err}");
    assert!(err.contains("RLIMIT_MEMLOCK is 64.0 KiB") && err.contains("ulimit -l"), "{err}");
    let plain = moe(&args[..args.len() - 1]);
    assert_eq!(o.stdout, plain.stdout);
}

#[test]
fn stats_json_records_a_prompt_batch_as_one_forward_pass() {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("cache-cli-stats-batch.json");
    let o = run(&["--expert-cache", "50%", "--stats-json", json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1 + 11, "the prompt batch, then 11 decode steps");
    assert_eq!(tokens[0]["phase"], "prompt");
    assert_eq!(tokens[0]["n_tokens"], v["prompt_tokens"]);
    let k = 2;
    let layers = v["layers"].as_array().unwrap().len() as u64;
    let lookups = |t: &serde_json::Value| t["hits"].as_u64().unwrap() + t["misses"].as_u64().unwrap();
    // The batch looks up each expert any of its tokens chose, once per layer.
    let prompt = v["prompt_tokens"].as_u64().unwrap();
    assert!((layers * k..=prompt * layers * k).contains(&lookups(&tokens[0])), "{}", tokens[0]);
    assert!(tokens[1..].iter().all(|t| lookups(t) == layers * k));
    std::fs::remove_file(&json).ok();
}
