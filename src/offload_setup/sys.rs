//! What the system says about memory: `MemAvailable`, `RLIMIT_MEMLOCK`
//! (read from /proc, so no libc call is needed).

/// `MemAvailable` from /proc/meminfo, in bytes; `None` where unknown.
pub fn mem_available() -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemAvailable:")
}

/// The memory this process may use at most: the smaller of
/// `MemAvailable` and its memory cgroup's limit (v1 or v2, where set).
pub fn machine_memory() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|text| {
        cgroup_memory_files(&text).into_iter().find_map(|f| parse_cgroup_limit(&std::fs::read_to_string(f).ok()?))
    });
    match (mem_available(), cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// The files that hold this process's memory cgroup limit, from the text
/// of /proc/self/cgroup: v1 `N:memory:/PATH` → memory.limit_in_bytes, v2
/// `0::/PATH` → memory.max.
pub fn cgroup_memory_files(proc_self_cgroup: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let path = path.trim_end_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            files.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        } else if controllers.is_empty() {
            files.push(format!("/sys/fs/cgroup{path}/memory.max"));
        }
    }
    files
}

/// A cgroup limit file's bytes; `None` for "max" or v1's "no limit"
/// (a number near 2^63).
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n < 1 << 60).then_some(n)
}

/// A `Key:  N kB` line of /proc/meminfo, in bytes.
pub fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let mut it = line[key.len()..].split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    match it.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// The soft `RLIMIT_MEMLOCK` from /proc/self/limits: `Some(None)` for
/// unlimited, `None` where unknown.
pub fn memlock_limit() -> Option<Option<u64>> {
    parse_memlock(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

pub fn parse_memlock(text: &str) -> Option<Option<u64>> {
    let line = text.lines().find(|l| l.starts_with("Max locked memory"))?;
    let soft = line["Max locked memory".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(None);
    }
    soft.parse().ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_limits_v1_and_v2() {
        let v1 = "12:memory:/moe-bench\n11:cpu,cpuacct:/\n";
        assert_eq!(cgroup_memory_files(v1), ["/sys/fs/cgroup/memory/moe-bench/memory.limit_in_bytes"]);
        assert_eq!(cgroup_memory_files("0::/user.slice/a.scope\n"), ["/sys/fs/cgroup/user.slice/a.scope/memory.max"]);
        assert_eq!(cgroup_memory_files("0::/\n"), ["/sys/fs/cgroup/memory.max"]);
        assert_eq!(parse_cgroup_limit("17179869184\n"), Some(16 << 30));
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("9223372036854771712\n"), None);
    }

    #[test]
    fn meminfo() {
        let t = "MemTotal:       16318208 kB\nMemFree:         1000 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(parse_meminfo(t, "MemAvailable:"), Some(12_000_000 * 1024));
        assert_eq!(parse_meminfo(t, "MemTotal:"), Some(16_318_208 * 1024));
        assert_eq!(parse_meminfo(t, "SwapTotal:"), None);
        assert_eq!(parse_meminfo("MemAvailable: x kB", "MemAvailable:"), None);
        if cfg!(target_os = "linux") {
            assert!(mem_available().is_some_and(|b| b > 0));
        }
    }

    #[test]
    fn memlock() {
        let t = "Limit                     Soft Limit           Hard Limit           Units     \nMax locked memory         8388608              8388608              bytes     \n";
        assert_eq!(parse_memlock(t), Some(Some(8 << 20)));
        let t = "Max locked memory         unlimited            unlimited            bytes     \n";
        assert_eq!(parse_memlock(t), Some(None));
        assert_eq!(parse_memlock("nothing"), None);
        if cfg!(target_os = "linux") {
            assert!(memlock_limit().is_some());
        }
    }
}
