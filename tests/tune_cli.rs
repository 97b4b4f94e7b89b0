//! `moe tune` end to end on the fitted SmolLM2 MoE: it writes a profile
//! that parses and that `moe run --profile` applies (with and without a
//! warm start) without changing the text, and so does `moe serve`; a
//! profile of another model is refused. Speed figures are printed by the command, not asserted here.

mod common;

use std::process::Command;

use common::*;
use moe::tune::Profile;

fn moe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_moe")).args(args).output().expect("running moe")
}

#[test]
fn tune_writes_a_profile_that_run_applies() {
    let m = fitted_smollm2().display().to_string();
    let profile = test_model_path("fit.moe-profile");
    let pr = profile.display().to_string();
    let o = moe(&["tune", "-m", &m, "--mem", "400M", "-n", "8", "-o", &pr, "-t", "2"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for want in ["loader threads", "calibration runs", "prefetch off", "<- recommended", "(needs more memory)", "profile written to"] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    let p = Profile::parse(&std::fs::read_to_string(&profile).unwrap(), &profile).unwrap();
    assert_eq!(p.model_name, "smollm2-8x2-fit.gguf");
    assert!(p.expert_cache > 0 && p.mem <= 400 << 20, "{p:?}");
    assert!(p.predicted_tok_s > 0.0 && (0.0..=1.0).contains(&p.predicted_hit_rate));
    assert!(!p.hot.is_empty() && p.hot.len() <= 240);
    assert!([1, 2, 4, 8].contains(&p.loader_threads));

    let prompt = "The capital of France is";
    let plain = moe(&["run", "-m", &m, "-p", prompt, "-n", "16", "--temp", "0", "--expert-cache", "100%"]);
    for warm in [false, true] {
        let mut args = vec!["run", "-m", &m, "-p", prompt, "-n", "16", "--temp", "0", "--profile", &pr, "--stats"];
        if warm {
            args.push("--warm");
        }
        let o = moe(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert_eq!(o.stdout, plain.stdout, "the profile changed the text");
        assert!(err.contains("moe: profile ") && err.contains(&format!("{} loader threads", p.loader_threads)), "{err}");
        assert!(err.contains(&format!("cache {} of", moe::offload_setup::human(p.expert_cache))), "{err}");
        if warm {
            assert!(err.contains("moe: warm start: reading ") && !err.contains("reading 0 hot"), "{err}");
        }
    }
    // `moe serve` applies it too: the same settings, a warm start, the same text.
    let (err, answer) = serve_once(&["-m", &m, "--profile", &pr, "--warm"], prompt, 16);
    assert!(err.contains("moe: profile ") && err.contains(&format!("{} loader threads", p.loader_threads)), "{err}");
    assert!(err.contains("moe: warm start: reading ") && !err.contains("reading 0 hot"), "{err}");
    assert_eq!(answer.as_bytes(), plain.stdout.strip_prefix(prompt.as_bytes()).unwrap().strip_suffix(b"\n").unwrap(), "{err}");

    // A flag on the command line wins over the profile.
    let o = moe(&["run", "-m", &m, "-p", prompt, "-n", "2", "--profile", &pr, "--expert-cache", "50%"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("(50%)"), "{}", String::from_utf8_lossy(&o.stderr));

    // Another model's profile is refused, naming both.
    let o = moe(&["run", "-m", &smollm2().display().to_string(), "-p", prompt, "-n", "2", "--profile", &pr]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("was made for smollm2-8x2-fit.gguf") && err.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{err}");
    // A dense model cannot be tuned.
    let o = moe(&["tune", "-m", &smollm2().display().to_string(), "--mem", "1G"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("dense model") && !err.contains("panicked"), "{err}");
}

/// Starts `moe serve` with `args`, asks one greedy completion of `n` tokens
/// of `prompt` over HTTP, stops the server; its stderr and the text.
fn serve_once(args: &[&str], prompt: &str, n: usize) -> (String, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let log = test_model_path("serve-profile.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(["serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_string();
    let body = serde_json::json!({"prompt": prompt, "max_tokens": n, "temperature": 0}).to_string();
    let t0 = std::time::Instant::now();
    let answer = loop {
        let (status, answer) = common::http::request_to(&addr, "POST", "/v1/completions", Some(&body), &[]);
        if status == 200 {
            break answer;
        }
        assert!(status == 503 && t0.elapsed().as_secs() < 60, "{status}: {answer}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let json: serde_json::Value = serde_json::from_str(&answer).unwrap();
    (std::fs::read_to_string(&log).unwrap(), json["choices"][0]["text"].as_str().unwrap().to_string())
}
