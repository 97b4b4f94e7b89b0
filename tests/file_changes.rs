//! The model file changes while `moe run` generates: truncated, rewritten
//! in place, or replaced by rename. Truncation and rewriting end the run
//! with an error naming the file (exit 1, or 135 when a mapped page faults
//! first), never a bare SIGBUS or garbage; a replaced file is no change at
//! all (the open file keeps its bytes), so the text is the same.

mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use moe::synth::{TinyModel, WeightTypes};
use moe_quant::QType;

/// A model slow enough (a few ms a token) that a run of 3000 tokens is
/// still going when the file changes.
fn model(name: &str, n_expert: usize) -> PathBuf {
    let path = test_model_path(name);
    TinyModel {
        n_layer: 4,
        n_embd: 512,
        n_ff: 1024,
        n_head: 8,
        n_head_kv: 4,
        n_expert,
        n_ctx: 4096,
        types: WeightTypes::uniform(QType::Q8_0),
        seed: 21,
        ..TinyModel::default()
    }
    .write(&path)
    .unwrap();
    path
}

struct Outcome {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// `moe run` on `path` for `n` tokens, greedy, one thread.
fn run_command(path: &Path, n: usize, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moe"));
    c.args(["run", "-m", path.to_str().unwrap(), "-p", "abc", "-n", &n.to_string(), "-c", "4096", "--temp", "0", "--ignore-eos", "-t", "1"])
        .args(extra);
    c
}

/// Runs `moe run` on `path` (3000 tokens); after its first 32 bytes of output, applies
/// `change` to the file, then waits for the end (killing it after 120 s).
fn run_and_change(path: &Path, extra: &[&str], change: impl FnOnce(&Path)) -> Outcome {
    let mut child = run_command(path, 3000, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).ok();
        s
    });
    let mut stdout = vec![0u8; 32];
    out.read_exact(&mut stdout).expect("the run printed its first tokens");
    change(path);
    let deadline = Instant::now() + Duration::from_secs(120);
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).ok();
        rest
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("moe run did not stop within 120 s after the file changed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stdout.extend(reader.join().unwrap());
    Outcome { status, stdout, stderr: err_reader.join().unwrap() }
}

/// A run that must end with an error naming `path`, not a signal.
fn assert_clear_error(o: &Outcome, path: &Path, what: &str) {
    let err = &o.stderr;
    eprintln!("{what}: {:?}, {}", o.status, err.lines().last().unwrap_or(""));
    assert_eq!(o.status.signal(), None, "{what}: killed by a signal: {err}");
    assert!(matches!(o.status.code(), Some(1) | Some(135)), "{what}: {:?}: {err}", o.status);
    assert!(err.contains(&path.display().to_string()), "{what}: the error does not name the file: {err}");
    assert!(
        err.contains("changed while in use") || err.contains("truncated or changed while mapped") || err.contains("truncated file?"),
        "{what}: {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
}

fn truncate_to_half(p: &Path) {
    let len = std::fs::metadata(p).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len / 2).unwrap();
}

fn rewrite_in_place(p: &Path) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    let len = f.metadata().unwrap().len();
    f.write_all_at(&vec![0x5A; 4096], len / 2).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn truncated_dense_model_stops_with_a_clear_error() {
    let path = model("changes-dense-trunc.gguf", 0);
    let o = run_and_change(&path, &[], truncate_to_half);
    assert_clear_error(&o, &path, "dense, truncated");
}

#[test]
fn truncated_moe_model_stops_with_a_clear_error() {
    for (i, extra) in [&["--expert-cache", "30%"][..], &["--mmap-experts"][..]].into_iter().enumerate() {
        let path = model(&format!("changes-moe-trunc-{i}.gguf"), 8);
        let o = run_and_change(&path, extra, truncate_to_half);
        assert_clear_error(&o, &path, &format!("MoE {extra:?}, truncated"));
    }
}

#[test]
fn rewritten_model_stops_with_a_clear_error() {
    for (i, n_expert) in [0, 8].into_iter().enumerate() {
        let path = model(&format!("changes-rewrite-{i}.gguf"), n_expert);
        let o = run_and_change(&path, &["--expert-cache", "30%"], rewrite_in_place);
        assert_clear_error(&o, &path, &format!("{n_expert} experts, rewritten in place"));
    }
}

/// Replacing the file by rename (what `cp new tmp && mv tmp model` does)
/// leaves the open file alone: the run goes on and prints what it would
/// have printed.
#[test]
fn replaced_model_runs_on_unchanged() {
    let path = model("changes-replace.gguf", 8);
    let other = model("changes-replace-other.gguf", 0);
    let extra = ["--expert-cache", "30%"];
    let want = run_command(&path, 300, &extra).output().unwrap();
    assert!(want.status.success(), "{}", String::from_utf8_lossy(&want.stderr));
    let mut child = run_command(&path, 300, &extra).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 32];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    std::fs::rename(&other, &path).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Outcome { status: o.status, stdout: [&first[..], &o.stdout].concat(), stderr: String::new() };
    assert_eq!(o.stdout, want.stdout, "the text changed after the file was replaced");
}
