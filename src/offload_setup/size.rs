//! Sizes on the command line (`8G`, `512MiB`, `1.5GB`, `1048576`, `50%`)
//! and in messages (`1.50 GiB`).
//!
//! Suffixes are case-insensitive. `K`, `M`, `G`, `T` and `KiB`, `MiB`,
//! `GiB`, `TiB` are binary (1K = 1024), as memory flags usually are
//! (docker, the JVM, systemd); `KB`, `MB`, `GB`, `TB` are decimal (1 KB =
//! 1000); `B` or no suffix is bytes. A number with a suffix may have a
//! fraction (`1.5G`); a plain byte count may not. A percentage (`50%`, in
//! (0, 100]) is relative to something the flag names (for `--expert-cache`,
//! the bytes of all experts).

use std::fmt;
use std::str::FromStr;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

/// A parsed size: an absolute byte count, or a percentage of a whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Bytes(u64),
    /// In (0, 100].
    Percent(f64),
}

impl Size {
    /// Parses a size; the error says what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Size, String> {
        let s = text.trim();
        let accepted = "expected a size such as 8G, 512M, 1.5GiB, 2000000000 or 50%";
        if s.is_empty() {
            return Err(format!("empty size; {accepted}"));
        }
        if let Some(num) = s.strip_suffix('%') {
            let p: f64 = num.trim().parse().map_err(|_| format!("'{text}' is not a percentage; {accepted}"))?;
            if !(p.is_finite() && p > 0.0 && p <= 100.0) {
                return Err(format!("'{text}': a percentage must be in (0, 100]"));
            }
            return Ok(Size::Percent(p));
        }
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (num, suffix) = (&s[..split], s[split..].trim());
        if num.is_empty() || num.matches('.').count() > 1 || num == "." {
            return Err(format!("'{text}' is not a size; {accepted}"));
        }
        let unit = match suffix.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => KIB,
            "m" | "mib" => MIB,
            "g" | "gib" => GIB,
            "t" | "tib" => TIB,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(format!("'{text}': unknown unit '{suffix}'; {accepted} (K/M/G/T = KiB/MiB/GiB/TiB, KB/MB/GB/TB decimal)")),
        };
        if unit == 1 {
            if num.contains('.') {
                return Err(format!("'{text}': a byte count must be a whole number"));
            }
            return num.parse::<u64>().map(Size::Bytes).map_err(|_| format!("'{text}' is too large"));
        }
        let v: f64 = num.parse().map_err(|_| format!("'{text}' is not a size; {accepted}"))?;
        let bytes = v * unit as f64;
        if !(bytes.is_finite() && bytes < u64::MAX as f64) {
            return Err(format!("'{text}' is too large"));
        }
        Ok(Size::Bytes(bytes as u64))
    }

    /// The byte count; a percentage is taken of `whole` (rounded down).
    pub fn resolve(self, whole: u64) -> u64 {
        match self {
            Size::Bytes(b) => b,
            Size::Percent(p) if p >= 100.0 => whole,
            Size::Percent(p) => (whole as f64 * p / 100.0) as u64,
        }
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        Size::parse(s)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Bytes(b) => write!(f, "{}", human(*b)),
            Size::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `b` in binary units with three significant-ish digits: `512 B`,
/// `4.0 KiB`, `12.5 MiB`, `1.50 GiB`.
pub fn human(b: u64) -> String {
    let f = b as f64;
    if b < KIB {
        format!("{b} B")
    } else if b < MIB {
        format!("{:.1} KiB", f / KIB as f64)
    } else if b < GIB {
        format!("{:.1} MiB", f / MIB as f64)
    } else if b < TIB {
        format!("{:.2} GiB", f / GIB as f64)
    } else {
        format!("{:.2} TiB", f / TIB as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> u64 {
        match Size::parse(s) {
            Ok(Size::Bytes(b)) => b,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn units() {
        assert_eq!(b("0"), 0);
        assert_eq!(b("1048576"), 1 << 20);
        assert_eq!(b("100B"), 100);
        assert_eq!(b("1K"), 1024);
        assert_eq!(b("1k"), 1024);
        assert_eq!(b("1KiB"), 1024);
        assert_eq!(b("512M"), 512 << 20);
        assert_eq!(b("512mib"), 512 << 20);
        assert_eq!(b("8G"), 8 << 30);
        assert_eq!(b("8 GiB"), 8 << 30);
        assert_eq!(b(" 2T "), 2 << 40);
        assert_eq!(b("1.5G"), 3 << 29);
        assert_eq!(b(".5M"), 1 << 19);
        assert_eq!(b("1KB"), 1000);
        assert_eq!(b("16GB"), 16_000_000_000);
        assert_eq!(b("2MB"), 2_000_000);
        assert_eq!(b("1TB"), 1_000_000_000_000);
    }

    #[test]
    fn percentages() {
        assert_eq!(Size::parse("100%"), Ok(Size::Percent(100.0)));
        assert_eq!(Size::parse("12.5 %"), Ok(Size::Percent(12.5)));
        assert_eq!(Size::Percent(50.0).resolve(1001), 500);
        assert_eq!(Size::Percent(100.0).resolve(u64::MAX), u64::MAX);
        assert_eq!(Size::Bytes(7).resolve(1000), 7);
        for bad in ["0%", "101%", "-5%", "%", "x%", "nan%", "inf%"] {
            assert!(Size::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in ["", "  ", "G", "8X", "8 GiBs", "1.2.3G", "-1G", "1.5", "1e9", "99999999999999999999", "1e30G", "99999999999T", "."] {
            let e = Size::parse(bad).expect_err(bad);
            assert!(!e.is_empty());
        }
        assert!(Size::parse("8X").unwrap_err().contains("unknown unit 'X'"));
        assert!(Size::parse("lots").unwrap_err().contains("not a size"));
        assert!(Size::parse("1.5").unwrap_err().contains("whole number"));
    }

    #[test]
    fn human_units() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1.0 KiB");
        assert_eq!(human(20 * 1024 + 512), "20.5 KiB");
        assert_eq!(human(512 << 20), "512.0 MiB");
        assert_eq!(human(3 << 29), "1.50 GiB");
        assert_eq!(human(3 << 40), "3.00 TiB");
    }
}
