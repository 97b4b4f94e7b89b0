//! The default expert cache fits the memory cgroup the process runs in,
//! not only the machine's `MemAvailable`: in a container or a cgroup with a
//! limit below the free RAM, planning from MemAvailable alone gave the
//! cache more than the limit and the kernel killed the process (seen with
//! `moe serve` on a 26 GiB Mixtral in a 16 GiB cgroup).
//!
//! Needs root and a cgroup v1 memory controller (as on the dev machines);
//! elsewhere it says so and returns.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_default_budget_reads_the_cgroup_limit() {
    let root = Path::new("/sys/fs/cgroup/memory");
    let cg = root.join(format!("moe-test-budget-{}", std::process::id()));
    if !root.is_dir() || std::fs::create_dir(&cg).is_err() {
        eprintln!("skipping: no writable cgroup v1 memory controller at {}", root.display());
        return;
    }
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(self.0);
        }
    }
    let _remove = Remove(&cg);
    let limit: u64 = 600 << 20;
    std::fs::write(cg.join("memory.limit_in_bytes"), limit.to_string()).unwrap();
    let model = common::fitted_smollm2();
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
        .arg(&cg)
        .arg(env!("CARGO_BIN_EXE_moe"))
        .args(["run", "-m", model.to_str().unwrap(), "-p", "Hello", "-n", "2", "--temp", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // 600 MiB less the resident weights, KV cache, scratch and 1 GiB of
    // headroom leaves nothing: the minimum cache, and a note naming the
    // cgroup's 600 MiB as the memory available (not the machine's RAM).
    assert!(err.contains("the available memory (600.0 MiB) leaves less than the minimum expert cache"), "{err}");
}
