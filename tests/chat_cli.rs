//! `moe chat` driven from a pipe, `moe run --chat`, `moe render-template`,
//! completions and the man page, as a script uses them.

mod common;

use std::process::Output;

fn moe(args: &[&str], stdin: &str) -> Output {
    common::moe_with_stdin(args, stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

/// The prompt render-template makes of `messages` (JSON).
fn render(model: &str, messages: &str) -> String {
    let o = moe(&["render-template", "-m", model, "--messages", messages], "");
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
}

/// `moe run` on a whole prompt, from scratch, greedy.
fn run_from_scratch(model: &str, prompt: &str, n: &str) -> String {
    let o = moe(&["run", "-m", model, "-p", prompt, "-n", n, "--temp", "0", "--no-display-prompt", "-t", "2"], "");
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
}

#[test]
fn piped_chat_prints_only_the_answers_which_moe_run_gives_from_scratch() {
    let model = common::smollm2();
    let m = model.to_str().unwrap();
    let o = moe(&["chat", "-m", m, "--temp", "0", "-n", "32", "-t", "2"], "hi\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let answer = text(&o.stdout);
    assert!(!answer.contains("moe:") && !answer.contains('\x1b') && !answer.contains("<|im_"), "{answer:?}");
    let prompt = render(m, r#"[{"role": "user", "content": "hi"}]"#);
    assert_eq!(answer, run_from_scratch(m, &prompt, "32"), "chat vs moe run of the rendered prompt");
    assert!(text(&o.stderr).contains("chat template: tokenizer.chat_template of"), "{}", text(&o.stderr));

    // Two turns: the second answer is the one the whole rendered
    // conversation gets from scratch (the KV cache held the first turn).
    let o = moe(
        &["chat", "-m", m, "--temp", "0", "-n", "12", "-t", "2", "-q", "-sys", "You are a geography teacher."],
        "Name a big river.\n\nAnd a mountain?\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "", "-q: nothing on stderr");
    let out = text(&o.stdout);
    let first_prompt =
        render(m, r#"[{"role": "system", "content": "You are a geography teacher."}, {"role": "user", "content": "Name a big river."}]"#);
    let first = run_from_scratch(m, &first_prompt, "12");
    assert!(out.starts_with(&first), "{out:?} vs {first:?}");
    let messages = serde_json::json!([
        {"role": "system", "content": "You are a geography teacher."},
        {"role": "user", "content": "Name a big river."},
        {"role": "assistant", "content": first.strip_suffix('\n').unwrap()},
        {"role": "user", "content": "And a mountain?"},
    ]);
    let second = run_from_scratch(m, &render(m, &messages.to_string()), "12");
    assert_eq!(&out[first.len()..], second);
}

#[test]
fn single_turn_reads_all_of_stdin_as_one_message() {
    let model = common::smollm2();
    let m = model.to_str().unwrap();
    let o = moe(&["chat", "-m", m, "--temp", "0", "-n", "16", "-t", "2", "--single-turn"], "Say hello\nto me.\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let prompt = render(m, r#"[{"role": "user", "content": "Say hello\nto me."}]"#);
    assert_eq!(text(&o.stdout), run_from_scratch(m, &prompt, "16"));
}

#[test]
fn run_chat_renders_the_prompt_through_the_template() {
    let model = common::smollm2();
    let m = model.to_str().unwrap();
    let o = moe(&["run", "-m", m, "-cnv", "-p", "hi", "--temp", "0", "-n", "32", "-t", "2"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let prompt = render(m, r#"[{"role": "user", "content": "hi"}]"#);
    assert_eq!(text(&o.stdout), run_from_scratch(m, &prompt, "32"));
}

#[test]
fn render_template_prints_the_jinja2_fixture() {
    let model = common::smollm2();
    let m = model.to_str().unwrap();
    let path = common::repo_root().join("tests/fixtures/chat/expected.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["case"] == "smollm2/system+3turns+gen").unwrap();
    let messages = case["messages"].to_string();
    assert_eq!(render(m, &messages), case["rendered"].as_str().unwrap());
    let o = moe(&["render-template", "-m", m, "--messages", &messages, "--tokens"], "");
    let ids: Vec<u32> = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|>");
    assert_eq!(ids.iter().filter(|&&t| t == 2).count(), 6, "six <|im_end|>");
    // A built-in instead of the file's.
    let o = moe(&["render-template", "-m", m, "--messages", r#"[{"role":"user","content":"Hi"}]"#, "--chat-template", "mistral"], "");
    // SmolLM2's BOS is <|im_start|>: the template writes it as bos_token.
    assert_eq!(text(&o.stdout), "<|im_start|> [INST] Hi [/INST]");
}

#[test]
fn template_flags_fail_clearly() {
    let model = common::smollm2();
    let m = model.to_str().unwrap();
    let msgs = r#"[{"role":"user","content":"Hi"}]"#;
    let o = moe(&["render-template", "-m", m, "--messages", msgs, "--chat-template", "vicuna"], "");
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(e.contains("'vicuna'") && e.contains("chatml, mistral, llama3, gemma"), "{e}");
    let o = moe(&["render-template", "-m", m, "--messages", msgs, "--chat-template-file", "/nonexistent/t.jinja"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("/nonexistent/t.jinja"), "{}", text(&o.stderr));
    let o = moe(&["render-template", "-m", m, "--messages", "[{]"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--messages: invalid JSON"), "{}", text(&o.stderr));
    let o = moe(&["render-template", "-m", m, "--messages", msgs, "--chat-template", "{{ raise_exception('nope') }}"], "");
    assert!(text(&o.stderr).contains("raised an exception: nope"), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"));
}

#[test]
fn completions_and_man_page_cover_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let o = moe(&["completions", shell], "");
        assert!(o.status.success(), "{shell}");
        let s = text(&o.stdout);
        for word in ["chat", "render-template", "chat-template", "context-shift", "expert-cache"] {
            assert!(s.contains(word), "{shell} completion lacks {word}");
        }
    }
    let o = moe(&["man"], "");
    assert!(o.status.success());
    let s = text(&o.stdout);
    assert!(s.starts_with(".ie") || s.contains(".TH moe"), "{}", &s[..200.min(s.len())]);
    assert!(s.contains("chat") && s.contains("moe\\-run(1)"), "{s}");
    // The pages moe(1) names exist: `moe man run`, and all with --dir.
    let o = moe(&["man", "run"], "");
    let run_page = text(&o.stdout);
    assert!(o.status.success() && run_page.contains(".TH moe-run") && run_page.contains("\\-\\-n\\-predict"), "{run_page}");
    let dir = common::repo_root().join("target/test-models/man");
    let _ = std::fs::remove_dir_all(&dir);
    let o = moe(&["man", "--dir", dir.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", text(&o.stderr));
    for page in ["moe.1", "moe-run.1", "moe-chat.1", "moe-simulate.1", "moe-man.1"] {
        assert!(dir.join(page).is_file(), "{page} missing");
    }
    assert!(!dir.join("moe-help.1").exists());
    let o = moe(&["man", "frobnicate"], "");
    assert!(!o.status.success() && text(&o.stderr).contains("moe man frobnicate: no such subcommand"), "{}", text(&o.stderr));
    let o = moe(&["completions", "tcsh"], "");
    assert_eq!(o.status.code(), Some(2), "clap rejects an unknown shell");
}

#[test]
fn every_subcommand_help_has_examples() {
    for sub in [
        "run", "chat", "render-template", "tokenize", "bench", "synth", "disk-bench", "completions", "inspect", "upcycle", "simulate",
        "report", "tune",
    ] {
        let o = moe(&[sub, "--help"], "");
        assert!(o.status.success(), "{sub}");
        assert!(text(&o.stdout).contains("Examples:\n  moe "), "moe {sub} --help has no examples");
    }
}

/// `--chat-template-kwargs` and `--reasoning-budget 0` reach the template
/// as llama.cpp passes them: Qwen3's template with enable_thinking false
/// renders as Python jinja2 does (the fixture), and a bad value is an error
/// naming the flag.
#[test]
fn chat_template_kwargs_turn_qwen3_thinking_off() {
    let model = common::smollm2();
    let m = model.to_str().unwrap();
    let fixtures = common::repo_root().join("tests/fixtures/chat");
    let cases: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures.join("expected.json")).unwrap()).unwrap();
    let case = cases["cases"].as_array().unwrap().iter().find(|c| c["case"] == "qwen3/no-thinking+gen").unwrap();
    let messages = case["messages"].to_string();
    let tmpl = fixtures.join("qwen3.jinja");
    let t = tmpl.to_str().unwrap();
    let render_with = |extra: &[&str]| {
        let mut args = vec!["render-template", "-m", m, "--messages", &messages, "--chat-template-file", t];
        args.extend_from_slice(extra);
        let o = moe(&args, "");
        assert!(o.status.success(), "{extra:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let want = case["rendered"].as_str().unwrap();
    assert!(want.ends_with("<think>\n\n</think>\n\n"));
    assert_eq!(render_with(&["--chat-template-kwargs", r#"{"enable_thinking": false}"#]), want);
    assert_eq!(render_with(&["--reasoning-budget", "0"]), want);
    let thinking = render_with(&["--reasoning-budget", "-1"]);
    assert_eq!(thinking, render_with(&[]));
    assert!(thinking.ends_with("<|im_start|>assistant\n") && !thinking.contains("<think>"), "{thinking:?}");
    for (bad, want) in [("[1]", "--chat-template-kwargs: expected a JSON object"), ("{", "--chat-template-kwargs: invalid JSON")] {
        let o = moe(&["render-template", "-m", m, "--messages", &messages, "--chat-template-kwargs", bad], "");
        let err = text(&o.stderr);
        assert!(!o.status.success() && err.contains(want) && !err.contains("panicked"), "{err}");
    }
}
