//! A mapped model file truncated under the process: touching the mapping
//! past the new end raises SIGBUS, which must end the process with a
//! message naming the file and the byte (exit status 135), not a bare
//! signal death. Runs in a child process (this test binary, re-run with
//! `MOE_SIGBUS_CHILD` set), since the guard exits the process.

mod common;

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::TempFile;

const CHILD: &str = "MOE_SIGBUS_CHILD";

/// In the child: map, truncate to one page, read a byte 10 pages in.
#[test]
fn child_touches_a_truncated_mapping() {
    let Ok(mode) = std::env::var(CHILD) else { return };
    let file = TempFile::new("sigbus", 64 * 4096);
    let wf = file.open();
    OpenOptions::new().write(true).open(&file.path).unwrap().set_len(4096).unwrap();
    if mode == "other" {
        // A SIGBUS that is not on a watched mapping keeps the default action.
        // SAFETY: raising a signal at ourselves.
        unsafe { libc::raise(libc::SIGBUS) };
    }
    let byte = std::hint::black_box(wf.all())[10 * 4096 + 7];
    println!("read {byte} past the end: no SIGBUS?");
}

#[test]
fn sigbus_on_a_truncated_mapping_is_a_clear_fatal_error() {
    let run = |mode: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_touches_a_truncated_mapping", "--nocapture", "--test-threads=1"])
            .env(CHILD, mode)
            .output()
            .unwrap()
    };
    let o = run("mapping");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(135), "{:?}: {err}", o.status);
    assert!(err.contains("moe: fatal: ") && err.contains("offload-sigbus-"), "{err}");
    assert!(err.contains("truncated or changed while mapped (SIGBUS reading byte 40967)"), "{err}");

    // Not our mapping: the signal keeps its default action (death by SIGBUS).
    let o = run("other");
    assert_eq!(o.status.signal(), Some(libc::SIGBUS), "{:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
}
