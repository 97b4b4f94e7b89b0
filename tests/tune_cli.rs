//! `moe tune` end to end on the fitted SmolLM2 MoE: it writes a profile
//! that parses and that `moe run --profile` applies (with and without a
//! warm start) without changing the text; a profile of another model is
//! refused. Speed figures are printed by the command, not asserted here.

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
