//! The `moe` binary as a user runs it: output format, exit codes, and clear
//! errors (never a panic) for bad input.

mod common;

use std::process::{Command, Output};

use common::*;

fn moe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe")).args(args).output().expect("running moe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn last_line_ids(o: &Output) -> Vec<u64> {
    let out = stdout(o);
    let last = out.lines().last().expect("no output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line {last:?} is not a JSON array: {e}"))
}

#[test]
fn tokenize_vocab_only_spm_file_matches_llama_cpp() {
    let vocab = gemma3_vocab();
    let v = vocab.to_str().unwrap();
    let o = moe(&["tokenize", "-m", v, "-p", "The capital of France is"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // llama.cpp: ids_add_special in tokenizer_refs_gemma3_spm.jsonl.
    assert_eq!(last_line_ids(&o), vec![2, 818, 5279, 529, 7001, 563]);
    let o = moe(&["tokenize", "-m", v, "-p", "The capital of France is", "--no-bos", "--ids"]);
    assert_eq!(stdout(&o).lines().count(), 1);
    assert_eq!(last_line_ids(&o), vec![818, 5279, 529, 7001, 563]);
}

#[test]
fn run_streams_llama_cpp_greedy_text() {
    let model = smollm2();
    let m = model.to_str().unwrap();
    let o = moe(&["run", "-m", m, "-p", "The capital of France is", "-n", "8", "--temp", "0", "-t", "2", "--kv-type", "f32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // llama.cpp's greedy continuation (f32 KV cache) starts " Paris.\n\nThe answer is:".
    assert!(stdout(&o).starts_with("The capital of France is Paris.\n\nThe answer is:"), "{:?}", stdout(&o));
    // Its default (f16 KV cache, flash attention), which is ours too.
    let o = moe(&["run", "-m", m, "-p", "The capital of France is", "-n", "8", "--temp", "0", "-t", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("The capital of France is Paris.\n\nThe United States has"), "{:?}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("tok/s") && err.contains("prompt") && err.contains("generation"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let o = moe(&["run", "-m", "/nonexistent/model.gguf", "-p", "hi"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("/nonexistent/model.gguf") && !err.contains("panicked"), "{err}");
    assert!(err.contains("no such file") && err.contains("/nonexistent does not exist"), "{err}");
    // A wrong name next to real models: they are listed.
    let model = smollm2();
    let wrong = model.with_file_name("SmolLM2.gguf");
    let o = moe(&["chat", "-m", wrong.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("SmolLM2.gguf: no such file") && err.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{err}");
    // A directory: its GGUF files.
    let o = moe(&["run", "-m", model.parent().unwrap().to_str().unwrap(), "-p", "hi"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a directory") && stderr(&o).contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{}", stderr(&o));
}

#[test]
fn not_a_gguf_file_is_a_clear_error() {
    let o = moe(&["tokenize", "-m", file!(), "-p", "hi"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("cli.rs") && err.contains("magic") && !err.contains("panicked"), "{err}");
}

#[test]
fn bad_flags_are_rejected_with_the_flag_named() {
    let model = smollm2();
    let m = model.to_str().unwrap();
    for (args, needle) in [
        (vec!["run", "-m", m, "-p", "x", "--temp", "hot"], "--temp"),
        (vec!["run", "-m", m, "-p", "x", "--top-p", "1.5"], "--top-p"),
        (vec!["run", "-m", m, "-p", "x", "-t", "0"], "--threads"),
        (vec!["run", "-m", m, "-p", "x", "--repeat-penalty", "-1"], "--repeat-penalty"),
        (vec!["run", "-m", m, "-p", "x", "--bogus"], "--bogus"),
        (vec!["run", "-p", "x"], "--model"),
    ] {
        let o = moe(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn context_too_small_for_the_prompt_is_a_clear_error() {
    let model = smollm2();
    let o = moe(&["run", "-m", model.to_str().unwrap(), "-p", "The capital of France is", "-c", "3", "-n", "4"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("ctx-size") && !err.contains("panicked"), "{err}");
}

#[test]
fn bench_prints_a_llama_bench_style_table_and_json() {
    let model = smollm2();
    let m = model.to_str().unwrap();
    let o = moe(&["bench", "-m", m, "-p", "16", "-n", "4", "-r", "2", "-t", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| SmolLM2")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    for (row, test) in rows.iter().zip(["pp16", "tg4"]) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[7], test, "{row}");
        let (mean, sd) = cells[8].split_once(" ± ").unwrap_or_else(|| panic!("{row}"));
        let (mean, sd): (f64, f64) = (mean.parse().unwrap(), sd.parse().unwrap());
        assert!(mean > 0.0 && sd >= 0.0 && mean.is_finite(), "{row}");
    }
    let o = moe(&["bench", "-m", m, "-p", "8,0", "-n", "0", "-r", "3", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tests = v.as_array().unwrap();
    assert_eq!(tests.len(), 1);
    assert_eq!(tests[0]["test"], "pp8");
    assert_eq!(tests[0]["samples_ts"].as_array().unwrap().len(), 3);
    assert_eq!(tests[0]["model_n_params"], 134_515_008);
    assert_eq!(tests[0]["n_depth"], 0);

    // -d: the tests again after a prompt already in the KV cache, named as
    // llama-bench names them.
    let o = moe(&["bench", "-m", m, "-p", "8", "-n", "4", "-d", "0,40", "-r", "1", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let got: Vec<(String, u64)> = v.as_array().unwrap().iter().map(|t| (t["test"].as_str().unwrap().to_string(), t["n_depth"].as_u64().unwrap())).collect();
    let want = [("pp8", 0), ("tg4", 0), ("pp8 @ d40", 40), ("tg4 @ d40", 40)].map(|(t, d)| (t.to_string(), d));
    assert_eq!(got, want);
    // With --draft, depth is refused by name.
    let o = moe(&["bench", "-m", m, "-p", "0", "-n", "4", "-d", "16", "--draft", "2"]);
    assert!(!o.status.success() && stderr(&o).contains("-d/--n-depth"), "{}", stderr(&o));
}

#[test]
fn bench_rejects_bad_flags() {
    let model = smollm2();
    let m = model.to_str().unwrap();
    for (args, needle) in [
        (vec!["-r", "0"], "0"),
        (vec!["-o", "xml"], "xml"),
        (vec!["-p", "x"], "x"),
        (vec!["-b", "0"], "0"),
        (vec!["-d", "-5"], "-5"),
    ] {
        let mut all = vec!["bench", "-m", m];
        all.extend(&args);
        let o = moe(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Only regular files are models: a FIFO (which would block `open` forever
/// waiting for a writer) and character devices are refused at once, named.
#[test]
fn non_regular_files_are_refused_without_hanging() {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join(format!("fifo-{}.gguf", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils)").success());
    let cases = [(fifo.to_str().unwrap().to_string(), "is a FIFO (named pipe); a model must be a regular file"), ("/dev/null".to_string(), "is a character device")];
    for (path, want) in &cases {
        for args in [vec!["run", "-m", path.as_str(), "-p", "hi"], vec!["inspect", path.as_str()]] {
            let start = std::time::Instant::now();
            let o = moe(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
            assert!(err.contains(path.as_str()) && err.contains(want), "{args:?}: {err}");
            assert!(start.elapsed().as_secs() < 20, "{args:?} took {:?}", start.elapsed());
        }
    }
    std::fs::remove_file(&fifo).unwrap();
}

/// A closed stdout ends a command quietly (exit 0, as `| head` expects)
/// and a full disk is an error naming `<stdout>`: never a panic.
#[test]
fn closed_pipe_and_full_disk_on_stdout() {
    let model = smollm2();
    let m = model.to_str().unwrap();
    let cases: [&[&str]; 4] = [&["inspect", m, "--json"], &["inspect", m], &["completions", "bash"], &["man"]];
    for args in cases {
        let mut child = Command::new(env!("CARGO_BIN_EXE_moe"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away at once
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let full = std::fs::File::create("/dev/full").unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_moe")).args(args).stdout(full).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("<stdout>: No space left on device") && !err.contains("panicked"), "{args:?}: {err}");
    }
}
