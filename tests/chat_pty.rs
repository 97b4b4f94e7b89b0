//! `moe chat` in a real pseudo-terminal (rexpect): type a message and get
//! the answer, Ctrl-C in the middle of an answer returns to the prompt,
//! /stats, /exit; Ctrl-C twice at the prompt and Ctrl-D exit.

mod common;

use std::process::Command;

use rexpect::session::{spawn_with_options, Options, PtySession};

fn spawn_chat() -> PtySession {
    let model = common::smollm2();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moe"));
    cmd.args(["chat", "-m", model.to_str().unwrap(), "--temp", "0", "-t", "2", "-c", "2048"]);
    cmd.env("TERM", "xterm").env("NO_COLOR", "1");
    let mut p =
        spawn_with_options(cmd, Options::new().timeout_ms(Some(60_000)).strip_ansi_escape_codes(true)).expect("spawning moe chat in a pty");
    p.exp_string("chat ready").expect("the chat starts");
    p.exp_string("> ").expect("a prompt");
    p
}

#[test]
fn answer_interrupt_stats_exit() {
    let mut p = spawn_chat();
    p.send_line("hi").unwrap();
    // Greedy SmolLM2's answer to "hi" (as `moe run` gives it from the rendered prompt).
    p.exp_string("Hello there! How can I assist you today?").expect("the answer");
    p.exp_string("> ").expect("back at the prompt");

    // A long answer, stopped by Ctrl-C once it streams.
    // (Short enough not to wrap in the pty's 80 columns.)
    p.send_line("Tell a long story about a dragon who counts.").unwrap();
    p.exp_string("who counts.").unwrap();
    p.exp_regex("[A-Za-z]{3}").expect("the answer starts");
    p.send_control('c').unwrap();
    p.exp_string("[answer stopped]").expect("Ctrl-C stops the answer");
    p.exp_string("> ").expect("and returns to the prompt");

    p.send_line("/stats").unwrap();
    let (_, line) = p.exp_regex(r"prompt \d+ tokens: \d+ reused from the KV cache, \d+ evaluated").expect("/stats: last turn");
    let nums: Vec<usize> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    assert!(nums[1] > 0 && nums[2] < nums[0], "the second turn reused the first from the KV cache: {line}");
    p.exp_string("chat: 2 turns").unwrap();
    p.exp_string("dense model, no experts").unwrap();
    p.exp_string("> ").unwrap();

    p.send_line("/nonsense").unwrap();
    p.exp_string("unknown command /nonsense").unwrap();
    p.send_line("/exit").unwrap();
    p.exp_eof().expect("/exit quits");
    let status = p.process_mut().wait().unwrap();
    assert!(matches!(status, rexpect::process::WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn ctrl_c_twice_or_ctrl_d_at_the_prompt_exits() {
    let mut p = spawn_chat();
    p.send_control('c').unwrap();
    p.exp_string("Ctrl-C again").expect("the first Ctrl-C at the prompt only warns");
    p.send_control('c').unwrap();
    p.exp_eof().expect("the second exits");

    let mut p = spawn_chat();
    p.send_control('d').unwrap();
    p.exp_eof().expect("Ctrl-D exits");
    let status = p.process_mut().wait().unwrap();
    assert!(matches!(status, rexpect::process::WaitStatus::Exited(_, 0)), "{status:?}");
}
