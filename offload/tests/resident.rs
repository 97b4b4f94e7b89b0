//! The resident-weights copy: the bytes it holds are the file's, lookups
//! find any sub-range of a copied range and nothing else, and a bad range
//! is an error naming the file.

mod common;

use common::{pattern, TempFile};
use moe_offload::ResidentCopy;

fn file_bytes(r: std::ops::Range<u64>) -> Vec<u8> {
    r.map(pattern).collect()
}

#[test]
fn copies_hold_the_file_bytes_and_lookups_find_sub_ranges() {
    let t = TempFile::new("resident", 100_000);
    let f = t.open();
    // Unsorted, overlapping and touching ranges; one empty.
    let ranges = [70_000..90_000, 100..5_000, 4_000..6_001, 6_001..6_100, 50..50];
    let mut calls = Vec::new();
    let c = ResidentCopy::read(&f, &ranges, &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!(c.ranges().collect::<Vec<_>>(), vec![100..6_100, 70_000..90_000]);
    assert_eq!(c.bytes(), 6_000 + 20_000);
    assert_eq!(calls.first(), Some(&(0, 26_000)));
    assert_eq!(calls.last(), Some(&(26_000, 26_000)));
    for r in [100..6_100, 200..201, 4_000..6_001, 6_099..6_100, 70_000..90_000, 89_999..90_000, 75_000..75_000] {
        assert_eq!(c.get(r.clone()), Some(&file_bytes(r.clone())[..]), "{r:?}");
    }
    // Not (wholly) inside one copied range.
    for r in [0..100, 99..101, 6_000..6_101, 6_100..6_101, 69_999..70_001, 89_999..90_001, 95_000..96_000] {
        assert_eq!(c.get(r.clone()), None, "{r:?}");
    }
}

#[test]
fn a_copy_larger_than_one_read_step_is_whole() {
    // 64 MiB reads: a range of 64 MiB + 3 bytes takes two, the second short.
    let len = (64u64 << 20) + 4099;
    let t = TempFile::new("resident-big", len);
    let f = t.open();
    let whole = 1..len - 4095;
    let c = ResidentCopy::read(&f, std::slice::from_ref(&whole), &mut |_, _| {}).unwrap();
    let got = c.get(1..len - 4095).unwrap();
    assert_eq!(got.len() as u64, len - 4096);
    assert!(got.iter().zip(1..).all(|(&b, off)| b == pattern(off)), "a byte of the copy differs from the file");
}

#[test]
fn a_range_past_the_end_is_an_error_naming_the_file() {
    let t = TempFile::new("resident-bad", 1000);
    let f = t.open();
    let e = ResidentCopy::read(&f, &[0..10, 900..1001], &mut |_, _| {}).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&t.path.display().to_string()) && msg.contains("900..1001") && msg.contains("1000 bytes"), "{msg}");
}
