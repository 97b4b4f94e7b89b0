//! Interrupting a profiling run loses nothing: Ctrl-C (SIGINT) during
//! `moe run --trace --stats-json` stops generation, writes the tokens, a
//! whole trace and the stats so far, and exits 130 (as llama.cpp); then
//! `moe simulate` and `moe report` read the files. A run killed outright
//! (SIGKILL) leaves a trace cut short, which both still read, saying how
//! many passes it holds.

mod common;

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A run that would generate until its context is full (thousands of
/// tokens), one JSON line per token, with a small expert cache.
fn start(model: &Path, trace: &Path, stats: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(["run", "-m"])
        .arg(model)
        // A context long enough that the run is still going when the tests
        // signal it (the tiny model's own 256 ran out within the KILL
        // test's 1.5 s wait on a fast machine).
        .args(["-p", "Once upon a time", "-n", "-1", "-c", "16384", "--ignore-eos", "--temp", "0", "-t", "2", "--json", "--expert-cache", "50%", "--no-prefetch", "--trace"])
        .arg(trace)
        .arg("--stats-json")
        .arg(stats)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running moe")
}

/// Reads `n` token lines from the run's output.
fn read_tokens(child: &mut Child, n: usize) -> Lines<BufReader<ChildStdout>> {
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    for i in 0..n {
        let line = lines.next().unwrap_or_else(|| panic!("the run ended after {i} lines")).unwrap();
        assert!(line.contains("\"type\":\"token\""), "{line}");
    }
    lines
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().expect("running kill").success();
    assert!(ok, "kill {sig} failed");
}

/// Waits at most `limit` for the child (killing it if it hangs).
fn wait(child: &mut Child, limit: Duration) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t0.elapsed() > limit {
            child.kill().ok();
            panic!("moe did not end within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn moe(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).args(args).output().expect("running moe");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("panicked"), "moe {}: {err}", args.join(" "));
    o
}

fn paths(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let t = |ext: &str| test_model_path(&format!("interrupt-{tag}.{ext}"));
    let (trace, stats, report) = (t("trace"), t("json"), t("report"));
    std::fs::remove_file(&trace).ok();
    std::fs::remove_file(&stats).ok();
    std::fs::remove_dir_all(&report).ok();
    (trace, stats, report)
}

#[test]
fn ctrl_c_leaves_the_output_a_whole_trace_and_the_stats() {
    let model = kquant_moe();
    let (trace, stats, report) = paths("sigint");
    let mut child = start(&model, &trace, &stats);
    let lines = read_tokens(&mut child, 5);
    signal(&child, "-INT");
    let status = wait(&mut child, Duration::from_secs(60));
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted (Ctrl-C)") && !err.contains("panicked"), "{err}");
    // The output ends with its summary line.
    let done: serde_json::Value = serde_json::from_str(rest.last().expect("a done line")).unwrap();
    assert_eq!(done["type"], "done");
    assert_eq!(done["stop"], "interrupted");
    let generated = done["generated_tokens"].as_u64().unwrap();
    assert!((5..2000).contains(&generated), "{generated} tokens");

    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).expect("the stats file")).unwrap();
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["generated_tokens"].as_u64(), Some(generated));
    let hit_rate = s["cache"]["total"]["hit_rate"].as_f64().unwrap();

    // The trace is whole: simulate reads it without a note and replays the
    // run's hit rate at its budget.
    let o = moe(&["simulate", &trace.display().to_string(), "--sizes", "50%", "--policy", "lru", "--json", "-"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("without its end record"));
    let sim: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(sim["recorded_hit_rate"].as_f64(), Some(hit_rate));
    moe(&["report", &trace.display().to_string(), "-o", &report.display().to_string()]);
    assert!(report.join("tables.txt").exists());
}

#[test]
fn a_killed_run_leaves_a_trace_simulate_and_report_still_read() {
    let model = kquant_moe();
    let (trace, stats, report) = paths("sigkill");
    let mut child = start(&model, &trace, &stats);
    let _lines = read_tokens(&mut child, 5);
    // Past the trace's flush interval, so whole passes are in the file.
    std::thread::sleep(moe_offload::trace::FLUSH_INTERVAL + Duration::from_millis(500));
    signal(&child, "-KILL");
    wait(&mut child, Duration::from_secs(60));
    let t = trace.display().to_string();
    for o in [
        moe(&["simulate", &t, "--sizes", "50%", "--policy", "lru"]),
        moe(&["report", &t, "-o", &report.display().to_string()]),
    ] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("ends without its end record") && err.contains("whole passes"), "{err}");
        let passes: u64 = err.split("it holds ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(passes >= 2, "{err}");
    }
}
