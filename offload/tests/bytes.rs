//! The cache returns exactly the file's bytes for every slab, whatever the
//! layout, slab sizes and alignment, budget, I/O path and access pattern.

mod common;

use common::*;
use moe_offload::{ExpertCache, IoMode, MappedExperts};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn layouts() -> Vec<(&'static str, Layout)> {
    vec![
        // Q4_K-like slab proportions, scaled down; merged tensors.
        (
            "merged",
            merged(2, 4, [36 * 1024, 36 * 1024, 45 * 1024 + 96]),
        ),
        // Per-expert tensors back to back (pages shared between slabs).
        ("per_expert", per_expert(2, 4, [9000, 9000, 11_000])),
        ("odd", odd()),
    ]
}

/// Every key, several times, in random order and through `request` too,
/// under budgets from "everything" down to "one expert".
fn check_layout(name: &str, layout: &Layout, io: IoMode) {
    let file = TempFile::new(name, layout.len);
    let wf = file.open();
    let keys = layout.keys();
    let budgets = [
        layout.total_footprint(),
        2 * layout.max_footprint(),
        layout.max_footprint(),
    ];
    for (bi, &budget) in budgets.iter().enumerate() {
        for threads in [1, 3] {
            let cache = ExpertCache::new(
                wf.clone(),
                layout.ranges.clone(),
                config(budget, io, threads),
            )
            .unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(bi as u64 * 10 + threads as u64);
            let mut order = keys.clone();
            for round in 0..3 {
                order.shuffle(&mut rng);
                for pair in order.chunks(2) {
                    if round > 0 {
                        cache.request(pair);
                    }
                    if rng.random_bool(0.3) {
                        cache.prefetch(&[keys[rng.random_range(0..keys.len())]]);
                    }
                    for &k in pair {
                        use_and_check(&cache, layout, k);
                    }
                }
            }
            let s = cache.stats();
            assert_eq!(s.total().accesses(), 3 * keys.len() as u64);
            assert_eq!(s.read_errors, 0);
            if budget == layout.total_footprint() {
                assert_eq!(
                    s.evictions(),
                    0,
                    "{name}: everything fits, nothing is evicted"
                );
            }
            // Over budget only while pins or in-flight reads force it.
            wait_until("resident within budget", || {
                cache.resident_bytes() <= budget
            });
        }
    }
}

#[test]
fn every_slab_matches_the_file_direct_or_auto() {
    for (name, layout) in layouts() {
        check_layout(name, &layout, IoMode::Auto);
    }
}

#[test]
fn every_slab_matches_the_file_buffered() {
    for (name, layout) in layouts() {
        check_layout(name, &layout, IoMode::Buffered);
    }
}

#[test]
fn mapped_experts_agree_with_the_pattern() {
    // The fixture itself is right: the mapping sees the same bytes.
    let layout = odd();
    let file = TempFile::new("mapped", layout.len);
    let mapped = MappedExperts::new(file.open(), layout.ranges.clone());
    for k in layout.keys() {
        use_and_check(&mapped, &layout, k);
    }
}

#[test]
fn auto_mode_uses_o_direct_where_supported() {
    let layout = odd();
    let file = TempFile::new("direct", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(layout.total_footprint(), IoMode::Auto, 2),
    )
    .unwrap();
    for k in layout.keys() {
        use_and_check(&cache, &layout, k);
    }
    let s = cache.stats();
    if direct_supported(&file.path) {
        assert!(s.direct_io && cache.is_direct_io());
        assert!(s.direct_reads > 0);
        assert_eq!(s.buffered_reads, 0);
        // O_DIRECT reads whole pages: at least the payload, at most a page
        // either side of each extent (the last one stops at end of file).
        let t = s.total();
        assert!(t.io_bytes >= t.bytes_read);
        assert!(t.io_bytes <= layout.total_footprint());
    } else {
        eprintln!(
            "note: {} does not support O_DIRECT; only the fallback ran",
            file.path.display()
        );
        assert_eq!(s.direct_reads, 0);
    }
}

#[test]
fn buffered_mode_never_uses_o_direct_and_reads_exact_bytes() {
    let layout = per_expert(1, 3, [5000, 7000, 9001]);
    let file = TempFile::new("buffered", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(layout.total_footprint(), IoMode::Buffered, 2),
    )
    .unwrap();
    for k in layout.keys() {
        use_and_check(&cache, &layout, k);
    }
    let s = cache.stats();
    assert!(!s.direct_io && !cache.is_direct_io());
    assert_eq!(s.direct_reads, 0);
    // The three slabs of each expert touch: one extent each.
    assert_eq!(s.buffered_reads, 3);
    let t = s.total();
    let payload: u64 = layout
        .keys()
        .iter()
        .map(|&k| layout.ranges(k).total_bytes())
        .sum();
    assert_eq!(t.bytes_read, payload);
    // Slabs are back to back, only 32-byte padding between them is read.
    assert!(t.io_bytes >= payload && t.io_bytes < payload + 3 * 64);
}

#[test]
fn recycled_buffers_never_show_stale_bytes() {
    use moe_offload::ExpertRanges;
    // Two experts with the same footprint (5 pages) but slabs in different
    // places: each reuses the other's buffer under a one-expert budget.
    let a = ExpertRanges {
        gate: 100..5000,
        up: 9000..9100,
        down: 20_000..24_000,
    };
    let b = ExpertRanges {
        gate: 40_970..40_970 + 3 * 4096,
        up: 61_445..61_540,
        down: 61_640..61_740,
    };
    let layout = Layout {
        ranges: vec![vec![a, b]],
        len: 70_000,
    };
    assert_eq!(layout.footprint(key(0, 0)), 5 * 4096);
    assert_eq!(layout.footprint(key(0, 1)), 5 * 4096);
    for io in [IoMode::Auto, IoMode::Buffered] {
        let file = TempFile::new("recycle", layout.len);
        let cache =
            ExpertCache::new(file.open(), layout.ranges.clone(), config(5 * 4096, io, 1)).unwrap();
        for e in [0, 1, 0, 1, 1, 0] {
            use_and_check(&cache, &layout, key(0, e));
        }
        let s = cache.stats();
        assert_eq!(
            (s.evictions(), s.recycled_buffers, s.total().loads),
            (4, 4, 5)
        );
    }
}
