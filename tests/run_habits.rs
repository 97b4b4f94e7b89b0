//! llama.cpp habits `moe run` honours (issue: hostile input and habits):
//! `-n -1`, `--seed -1`, `-f FILE`, `-p -` / `-f -` from stdin, a notice
//! when `-c` cuts `-n` short or the context passes the training context,
//! `-t` above the processors capped, and `-c` beyond the machine's memory
//! refused before anything is allocated; `-ctk`/`-ctv` cache types;
//! `--stop`/`-r` stop strings.

mod common;

use std::process::Output;

use common::*;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const PROMPT: &str = "The capital of France is";

fn greedy(extra: &[&str], stdin: &str) -> Output {
    let model = smollm2();
    let mut args = vec!["run", "-m", model.to_str().unwrap(), "--temp", "0", "--no-display-prompt"];
    if !extra.contains(&"-t") {
        args.extend_from_slice(&["-t", "2"]);
    }
    args.extend_from_slice(extra);
    let o = moe_with_stdin(&args, stdin);
    assert!(o.status.success(), "{extra:?}: {}", err(&o));
    o
}

#[test]
fn prompt_from_file_and_stdin_equals_the_flag() {
    let want = out(&greedy(&["-p", PROMPT, "-n", "6"], ""));
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("habits-prompt.txt");
    std::fs::write(&file, PROMPT).unwrap();
    assert_eq!(out(&greedy(&["-f", file.to_str().unwrap(), "-n", "6"], "")), want);
    assert_eq!(out(&greedy(&["-f", "-", "-n", "6"], PROMPT)), want);
    assert_eq!(out(&greedy(&["-p", "-", "-n", "6"], PROMPT)), want);
    // Neither, both, or a missing file: errors that say so.
    let model = smollm2();
    let m = model.to_str().unwrap();
    let o = moe_with_stdin(&["run", "-m", m], "");
    assert!(!o.status.success() && err(&o).contains("--prompt") && !err(&o).contains("panicked"), "{}", err(&o));
    let o = moe_with_stdin(&["run", "-m", m, "-p", "x", "-f", "y"], "");
    assert!(!o.status.success() && err(&o).contains("cannot be used with"), "{}", err(&o));
    let o = moe_with_stdin(&["run", "-m", m, "-f", "/nonexistent/prompt.txt"], "");
    assert!(!o.status.success() && err(&o).contains("/nonexistent/prompt.txt"), "{}", err(&o));
}

#[test]
fn n_minus_one_runs_to_the_end_of_the_context_and_seed_minus_one_is_random() {
    // -n -1 with -c 24: stops when the context is full (SmolLM2 does not end
    // this text within it), having generated every position left, as llama.cpp.
    let o = greedy(&["-p", PROMPT, "-n", "-1", "-c", "24", "-o", "json", "--ignore-eos"], "");
    let done: serde_json::Value = serde_json::from_str(out(&o).lines().last().unwrap()).unwrap();
    let prompt = done["prompt_tokens"].as_u64().unwrap();
    assert_eq!(done["n_ctx"], 24);
    assert_eq!(done["generated_tokens"].as_u64().unwrap(), 24 - prompt + 1, "{done}");
    assert!(!err(&o).contains("warning: -n"), "{}", err(&o));
    // -n -1 without -c: llama.cpp's 4096 (SmolLM2 trained at 8192); one
    // chat turn, which ends at the template's end of turn.
    let o = greedy(&["-p", "Say hi.", "--chat", "-n", "-1", "-o", "json"], "");
    let done: serde_json::Value = serde_json::from_str(out(&o).lines().last().unwrap()).unwrap();
    assert_eq!((done["n_ctx"].as_u64(), done["stop"].as_str()), (Some(4096), Some("eog")), "{done}");
    // --seed -1: a random seed, printed; two runs differ.
    let seeds: Vec<u64> = (0..2)
        .map(|_| {
            let o = greedy(&["-p", PROMPT, "-n", "1", "--seed", "-1", "-o", "json"], "");
            let done: serde_json::Value = serde_json::from_str(out(&o).lines().last().unwrap()).unwrap();
            done["seed"].as_u64().unwrap()
        })
        .collect();
    assert_ne!(seeds[0], seeds[1]);
    let model = smollm2();
    let o = moe_with_stdin(&["run", "-m", model.to_str().unwrap(), "-p", PROMPT, "--seed", "-2"], "");
    assert!(!o.status.success() && err(&o).contains("-1 for a random seed"), "{}", err(&o));
    let o = moe_with_stdin(&["run", "-m", model.to_str().unwrap(), "-p", PROMPT, "-n", "-3"], "");
    assert!(!o.status.success() && err(&o).contains("-3"), "{}", err(&o));
}

#[test]
fn context_notices_threads_cap_and_impossible_context() {
    // -c 10 -n 20: a warning says how many tokens fit, and that many come.
    let o = greedy(&["-p", PROMPT, "-n", "20", "-c", "10", "-o", "json", "--ignore-eos"], "");
    let done: serde_json::Value = serde_json::from_str(out(&o).lines().last().unwrap()).unwrap();
    let room = 10 - done["prompt_tokens"].as_u64().unwrap() + 1;
    assert_eq!(done["generated_tokens"].as_u64().unwrap(), room);
    assert!(err(&o).contains("warning: -n 20, but after the") && err(&o).contains(&format!("holds {room} more tokens")), "{}", err(&o));
    // A context past the training context (SmolLM2: 8192).
    let o = greedy(&["-p", PROMPT, "-n", "1", "-c", "9000"], "");
    assert!(err(&o).contains("-c 9000 is more than the model's training context (8192)"), "{}", err(&o));
    // -t far above the processors: capped, with a warning.
    let o = greedy(&["-p", PROMPT, "-n", "1", "-t", "1000"], "");
    assert!(err(&o).contains("warning: -t 1000 is more than the") && !err(&o).contains("1000 threads"), "{}", err(&o));
    // -c 100000000: the KV cache alone is far beyond any test machine;
    // refused by the plan, before allocating, naming -c.
    let model = smollm2();
    let o = moe_with_stdin(&["run", "-m", model.to_str().unwrap(), "-p", PROMPT, "-c", "100000000"], "");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("-c 100000000 needs a KV cache of") && err(&o).contains("lower -c"), "{}", err(&o));
}

/// llama.cpp's `-ctk`/`-ctv` (and `--cache-type-k/v`): a Q8_0 cache runs
/// (its logits against llama.cpp's are in tests/arch_reference.rs), the
/// spellings agree, and what llama.cpp's CPU attention cannot run is
/// refused naming the flags.
#[test]
fn cache_type_flags_as_llama_cpp_spells_them() {
    let n = ["-p", PROMPT, "-n", "8"];
    let both = out(&greedy(&[&n[..], &["-ctk", "q8_0", "-ctv", "q8_0"]].concat(), ""));
    assert!(!both.trim().is_empty());
    assert_eq!(out(&greedy(&[&n[..], &["--kv-type", "q8_0"]].concat(), "")), both);
    assert_eq!(out(&greedy(&[&n[..], &["--cache-type-k", "q8_0", "--cache-type-v", "q8_0"]].concat(), "")), both);
    // Keys only, as the older llama.cpp habit.
    greedy(&[&n[..], &["-ctk", "q8_0"]].concat(), "");
    let model = smollm2();
    let m = model.to_str().unwrap();
    for (flags, want) in [
        (&["-ctk", "f32"][..], "f32 keys and f16 values is not supported"),
        (&["--kv-type", "q4_0"][..], "expected f16, q8_0 or f32"),
    ] {
        let o = moe_with_stdin(&[&["run", "-m", m, "-p", PROMPT, "-n", "2"][..], flags].concat(), "");
        assert!(!o.status.success() && err(&o).contains(want) && !err(&o).contains("panicked"), "{flags:?}: {}", err(&o));
    }
}

/// `--stop TEXT` (llama.cpp's `-r`, llama-server's `"stop"`): the output
/// is the run's text up to the first stop string, and generation ends
/// there.
#[test]
fn stop_strings_cut_the_output_where_they_first_appear() {
    let full = out(&greedy(&["-p", PROMPT, "-n", "24"], ""));
    let full = full.trim_end_matches('\n');
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 20, "{full:?}");
    // A stop string from the middle of the text, spanning tokens.
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 4].iter().collect();
    let want = &full[..full.find(&stop).unwrap()];
    for flag in ["--stop", "-r", "--reverse-prompt"] {
        let got = out(&greedy(&["-p", PROMPT, "-n", "24", flag, &stop, "--stop", "never appears"], ""));
        assert_eq!(got.trim_end_matches('\n'), want, "{flag} {stop:?}");
    }
    let o = greedy(&["-p", PROMPT, "-n", "24", "--stop", &stop, "--json"], "");
    let done: serde_json::Value = serde_json::from_str(out(&o).lines().last().unwrap()).unwrap();
    assert_eq!(done["stop"], "stop");
    assert_eq!(done["text"], want);
    assert!(done["generated_tokens"].as_u64().unwrap() < 24);
}
