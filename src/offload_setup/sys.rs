//! What the system says about memory: `MemAvailable`, `RLIMIT_MEMLOCK`
//! (read from /proc, so no libc call is needed).

/// `MemAvailable` from /proc/meminfo, in bytes; `None` where unknown.
pub fn mem_available() -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemAvailable:")
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
