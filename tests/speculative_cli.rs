//! `--draft` through the CLI: `moe run`, `moe chat` from a pipe and
//! `moe bench` print the same text with and without drafting, report the
//! drafts, and reject bad draft flags with a clear message.

mod common;

use std::process::Output;

fn moe(args: &[&str], stdin: &str) -> Output {
    common::moe_with_stdin(args, stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PROMPT: &str = "Copy the list. List: red, green, blue, yellow, purple, orange, pink, brown. Copy: red, green,";

#[test]
fn run_prints_the_same_text_with_drafts_and_reports_them() {
    let model = common::smollm2().display().to_string();
    let stats = common::test_model_path("speculative-cli-stats.json");
    let base = ["run", "-m", &model, "-p", PROMPT, "-n", "40", "-t", "2", "--ignore-eos"];
    for sampling in [&["--temp", "0"][..], &["--temp", "0.8", "-s", "5"][..]] {
        let plain = moe(&[&base[..], sampling].concat(), "");
        assert!(plain.status.success(), "{}", text(&plain.stderr));
        let drafted =
            moe(&[&base[..], sampling, &["--draft", "8", "--stats-json", &stats.display().to_string()][..]].concat(), "");
        let err = text(&drafted.stderr);
        assert!(drafted.status.success(), "{err}");
        assert_eq!(text(&drafted.stdout), text(&plain.stdout), "{sampling:?}");
        assert!(err.contains("moe: drafts: ") && err.contains("accepted"), "{err}");
        let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        let d = &j["draft"];
        assert!(d["proposed"].as_u64().unwrap() > 0 && d["accepted"].as_u64().unwrap() <= d["proposed"].as_u64().unwrap(), "{d}");
        assert_eq!(d["tokens"].as_u64().unwrap(), 39, "{d}");
    }
}

#[test]
fn piped_chat_answers_the_same_with_drafts() {
    let model = common::smollm2().display().to_string();
    let input = "Repeat after me: one two three four five six seven eight.\nAgain, the same words.\n";
    let args = ["chat", "-m", &model, "--temp", "0", "-n", "32", "-t", "2"];
    let plain = moe(&args, input);
    let drafted = moe(&[&args[..], &["--draft", "6"][..]].concat(), input);
    assert!(plain.status.success() && drafted.status.success(), "{}", text(&drafted.stderr));
    assert!(!text(&plain.stdout).trim().is_empty());
    assert_eq!(text(&drafted.stdout), text(&plain.stdout));
}

#[test]
fn bench_reports_both_and_bad_draft_flags_are_clear() {
    let model = common::smollm2().display().to_string();
    let o = moe(&["bench", "-m", &model, "-p", "0", "-n", "16", "-r", "1", "-t", "2", "--draft", "4"], "");
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.contains("tg16 draft 0") && out.contains("tg16 draft 4") && out.contains("drafted tokens"), "{out}");
    for (flag, value, want) in [
        ("--draft-ngram", "0..3", "expected MIN..MAX with 1 <= MIN <= MAX <= 32"),
        ("--draft-ngram", "4..2", "expected MIN..MAX"),
        ("--draft", "65", "65"),
    ] {
        let mut args = vec!["run", "-m", &model, "-p", "x", flag, value];
        if flag != "--draft" {
            args.extend(["--draft", "2"]);
        }
        let o = moe(&args, "");
        let err = text(&o.stderr);
        assert!(!o.status.success() && err.contains(flag) && err.contains(want), "{flag} {value}: {err}");
    }
}

/// `--draft-echo`: on prose, where prompt lookup finds nothing to draft,
/// the prompt extended with the model's own continuation (and the prose's
/// last tokens again) makes the model write that continuation once more,
/// so drafts are proposed and stand.
#[test]
fn bench_draft_echo_gives_the_model_its_own_text_to_repeat() {
    let model = common::smollm2().display().to_string();
    let prose = "The history of the harbour town begins in the twelfth century, when a few families of fishermen settled on the sheltered side of the bay. Over the next";
    let accepted = |echo: &str| -> (u64, String) {
        let args = ["bench", "-m", &model, "-p", "0", "-n", "16", "-r", "1", "-t", "2", "--draft", "4", "--draft-fixed", "--draft-prompt", prose, "--draft-echo", echo];
        let o = moe(&args, "");
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        assert!(o.status.success(), "{err}");
        let line = out.lines().find(|l| l.starts_with("tg16 draft 4:")).unwrap_or_else(|| panic!("no draft line: {out}"));
        let n = line.split(" drafted tokens, ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok());
        (n.unwrap_or_else(|| panic!("no accepted count: {line}")), err)
    };
    let (plain, err) = accepted("0");
    assert!(!err.contains("--draft-echo"), "{err}");
    let (echoed, err) = accepted("24");
    assert!(err.contains("--draft-echo: prompt of ") && err.contains(" + 24 generated + 4 repeated"), "{err}");
    assert!(echoed >= 4 && echoed > plain, "accepted drafts: {plain} on the prose, {echoed} with its echo");
    let o = moe(&["bench", "-m", &model, "-p", "0", "-n", "4", "--draft", "2", "--draft-echo", "40000"], "");
    let err = text(&o.stderr);
    assert!(!o.status.success() && err.contains("--draft-echo") && err.contains("0..=32768"), "{err}");
}
