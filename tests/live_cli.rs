//! `moe run --live`: nothing changes when stderr is not a terminal, and on a
//! terminal (a pty from `script`) the status line never lands in the text.

mod common;

use std::process::Command;

use common::*;

fn run(extra: &[&str]) -> (String, String) {
    let m = fitted_smollm2().display().to_string();
    let mut args = vec!["run", "-m", &m, "-p", "The capital of France is", "-n", "24", "--temp", "0", "--ignore-eos", "--expert-cache", "30%", "-t", "1"];
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_moe")).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
}

/// Removes our status-line drawing (save cursor … restore cursor) and the
/// scroll-region set-up.
fn strip_live(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\x1b7") {
        out.push_str(&rest[..i]);
        match rest[i..].find("\x1b8") {
            Some(j) => rest = &rest[i + j + 2..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out.replace("\x1b[1A", "").replace('\r', "")
}

#[test]
fn live_is_off_without_a_terminal() {
    let (plain, _) = run(&[]);
    let (live, err) = run(&["--live"]);
    assert_eq!(plain, live);
    assert!(!err.contains('\x1b') && !live.contains('\x1b'), "escape codes without a terminal");
}

#[test]
fn live_on_a_pty_keeps_the_text_intact() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to make a pty");
        return;
    }
    let (plain, _) = run(&[]);
    let m = fitted_smollm2().display().to_string();
    let log = test_model_path("live.typescript");
    let cmd = format!(
        "{} run -m {m} -p 'The capital of France is' -n 24 --temp 0 --ignore-eos --expert-cache 30% -t 1 --live 2>&1",
        env!("CARGO_BIN_EXE_moe")
    );
    let o = Command::new("script").args(["-qec", &cmd]).arg(&log).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let typed = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(typed.contains("\x1b7") && typed.contains(" hit "), "no live line drawn on the pty");
    let text = strip_live(&typed);
    assert!(text.contains(plain.trim_end()), "generated text garbled:\n{text:?}\nwanted:\n{plain:?}");
}
