//! What the binary writes for scripts: `run -o json` (one JSON object per
//! line), `-q` (nothing on stderr but errors), and no progress bars or
//! escape codes when stderr is not a terminal.

mod common;

use std::process::{Command, Output};

fn moe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe")).args(args).output().expect("running moe")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

#[test]
fn run_json_is_one_object_per_line_with_the_tokens_and_stats() {
    let model = common::smollm2();
    let m = model.to_str().unwrap();
    let args = ["run", "-m", m, "-p", "The capital of France is", "-n", "8", "--temp", "0", "-t", "2"];
    let plain = moe(&args);
    let o = moe(&[&args[..], &["-o", "json"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> =
        text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect();
    let (done, tokens) = lines.split_last().unwrap();
    assert_eq!(done["type"], "done");
    assert_eq!(tokens.len(), 8);
    assert_eq!(done["generated_tokens"], 8);
    assert_eq!(done["prompt_tokens"], 5);
    assert_eq!(done["stop"], "length");
    let mut joined = String::new();
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(t["type"], "token");
        assert_eq!(t["index"], i);
        assert!(t["id"].as_u64().unwrap() < 49152);
        joined.push_str(t["text"].as_str().unwrap());
    }
    assert_eq!(done["text"].as_str().unwrap(), joined);
    // The same text as the plain output, which echoes the prompt (llama.cpp's
    // greedy continuation starts " Paris.\n\nThe United States has").
    assert_eq!(text(&plain.stdout), format!("The capital of France is{joined}\n"));
    assert!(joined.starts_with(" Paris.\n\nThe United States has"), "{joined:?}");
    for key in ["prompt_s", "prompt_tok_per_s", "generation_s", "generation_tok_per_s", "load_s", "first_token_s"] {
        assert!(done[key].as_f64().unwrap() >= 0.0, "{key}");
    }
    // --json is the same flag.
    let o = moe(&[&args[..], &["--json"]].concat());
    assert_eq!(text(&o.stdout).lines().count(), 9);
}

#[test]
fn quiet_leaves_stderr_empty() {
    let model = common::smollm2();
    let m = model.to_str().unwrap();
    let o = moe(&["-q", "run", "-m", m, "-p", "Hi", "-n", "2", "--temp", "0", "-t", "2"]);
    assert!(o.status.success());
    assert_eq!(text(&o.stderr), "");
    let o = moe(&["run", "-m", m, "-p", "Hi", "-n", "2", "--temp", "0", "-t", "2", "--quiet"]);
    assert_eq!(text(&o.stderr), "", "-q is global: after the subcommand too");
    // Errors still show.
    let o = moe(&["-q", "run", "-m", "/nonexistent.gguf", "-p", "Hi"]);
    assert!(text(&o.stderr).contains("/nonexistent.gguf"));
}

#[test]
fn no_progress_bars_in_a_log() {
    let out = common::test_model_path("progress-synth.gguf");
    let o = moe(&[
        "synth",
        "--layers",
        "1",
        "--embd",
        "256",
        "--ff",
        "256",
        "--heads",
        "2",
        "--kv-heads",
        "2",
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("moe: synth: wrote"), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "progress drawn into a pipe: {err:?}");
    let o = moe(&["disk-bench", "-m", out.to_str().unwrap(), "--reads", "4", "--buffered"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains('\r') && !text(&o.stderr).contains('\x1b'), "{:?}", text(&o.stderr));
    let model = common::smollm2();
    let o = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(["chat", "-m", model.to_str().unwrap(), "-n", "4", "-t", "2"])
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(!text(&o.stderr).contains('\r') && !text(&o.stderr).contains('\x1b'), "{:?}", text(&o.stderr));
}
