//! Prefetch: exact counters for a scripted sequence, no reads when off,
//! one read when a prefetched expert is wanted while still queued, and
//! prefetches never push out what is in use.

mod common;

use common::*;
use moe_offload::{CacheConfig, ExpertCache, ExpertKey, ExpertSource, IoMode};

/// One layer of five experts with one footprint F.
fn five() -> (Layout, Vec<ExpertKey>, u64) {
    let layout = merged(1, 5, [4 * 4096, 4 * 4096, 5 * 4096]);
    let keys = layout.keys();
    let f = layout.footprint(keys[0]);
    assert!(keys.iter().all(|&k| layout.footprint(k) == f));
    (layout, keys, f)
}

#[test]
fn scripted_prefetch_counters() {
    let (layout, k, f) = five();
    let (a, b, c, d, e) = (k[0], k[1], k[2], k[3], k[4]);
    let file = TempFile::new("pf", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(3 * f, IoMode::Auto, 1),
    )
    .unwrap();

    cache.prefetch(&[a, b]); // LRU: [a b]
    wait_resident(&cache, &[a, b]);
    use_and_check(&cache, &layout, a); // hit, prefetch hit; [b a]
    use_and_check(&cache, &layout, c); // miss; [b a c], budget full
    cache.prefetch(&[d]); // evicts b, never used: wasted; [a c d]
    wait_resident(&cache, &[d]);
    assert!(!cache.is_resident(b));
    use_and_check(&cache, &layout, d); // hit, prefetch hit
    cache.prefetch(&[a]); // resident: no read, just recency
    cache.set_prefetch(false);
    cache.prefetch(&[e]); // off: nothing
    assert!(!cache.is_resident(e));

    let t = cache.stats().total();
    assert_eq!((t.hits, t.misses), (2, 1));
    assert_eq!(
        (t.prefetch_issued, t.prefetch_hits, t.prefetch_wasted),
        (3, 2, 1)
    );
    assert_eq!((t.loads, t.evictions), (4, 1));
    assert_eq!(t.bytes_read, 4 * layout.ranges(a).total_bytes());
    let s = cache.stats();
    assert_eq!(s.prefetch_dropped, 0);
    assert!(!s.prefetch_enabled);
}

#[test]
fn prefetch_off_reads_nothing() {
    let (layout, keys, f) = five();
    let file = TempFile::new("pfoff", layout.len);
    let cfg = CacheConfig {
        prefetch: false,
        ..config(5 * f, IoMode::Auto, 2)
    };
    let cache = ExpertCache::new(file.open(), layout.ranges.clone(), cfg).unwrap();
    assert!(!cache.prefetch_enabled());
    cache.prefetch(&keys);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let s = cache.stats();
    assert_eq!(
        (
            s.total().loads,
            s.total().bytes_read,
            s.total().prefetch_issued
        ),
        (0, 0, 0)
    );
    assert_eq!(s.resident_bytes, 0);
    for &k in &keys {
        use_and_check(&cache, &layout, k);
    }
    let t = cache.stats().total();
    assert_eq!((t.hits, t.misses, t.loads, t.prefetch_hits), (0, 5, 5, 0));
}

#[test]
fn a_prefetch_wanted_while_queued_is_read_once() {
    let (layout, k, f) = five();
    let file = TempFile::new("pfpromote", layout.len);
    for round in 0..20 {
        let cache = ExpertCache::new(
            file.open(),
            layout.ranges.clone(),
            config(5 * f, IoMode::Auto, 1),
        )
        .unwrap();
        // One loader, a backlog of prefetches; then the last one is needed
        // now: it jumps the queue (or is already read), and is read once.
        cache.prefetch(&k[..4]);
        let want = k[3 - round % 4];
        use_and_check(&cache, &layout, want);
        wait_resident(&cache, &k[..4]);
        let t = cache.stats().total();
        assert_eq!(t.hits + t.misses, 1);
        assert_eq!(t.prefetch_hits, 1);
        assert_eq!(t.loads, 4);
        assert_eq!(t.bytes_read, 4 * layout.ranges(want).total_bytes());
    }
}

#[test]
fn prefetch_never_evicts_an_expert_in_use() {
    let (layout, k, f) = five();
    let file = TempFile::new("pfpin", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(f, IoMode::Auto, 2),
    )
    .unwrap();
    cache
        .with_expert(k[0], &mut |b| {
            cache.prefetch(&[k[1], k[2]]);
            assert!(cache.is_resident(k[0]));
            check(b, layout.ranges(k[0]));
        })
        .unwrap();
    let s = cache.stats();
    assert_eq!(s.prefetch_dropped, 2);
    assert_eq!((s.total().prefetch_issued, s.total().loads), (0, 1));
    assert_eq!(s.over_budget_events, 0);
    // Once unpinned, the same hint may replace it.
    cache.prefetch(&[k[1]]);
    wait_resident(&cache, &[k[1]]);
    let s = cache.stats();
    assert_eq!(
        (
            s.total().prefetch_issued,
            s.total().evictions,
            s.total().prefetch_wasted
        ),
        (1, 1, 0)
    );
}
