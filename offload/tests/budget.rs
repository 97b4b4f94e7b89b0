//! Byte budget and LRU eviction: exact hit/miss/eviction counts for scripted
//! sequences worked out by hand, pinning, over-budget accounting, request
//! and in-flight dedup, and the too-small-budget error.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use moe_offload::{ExpertCache, ExpertKey, ExpertSource, IoMode, LayerStats, OffloadError};

/// Two layers of two experts, all the same footprint F.
/// a = (0,0), b = (0,1), c = (1,0), d = (1,1).
fn abcd() -> (Layout, [ExpertKey; 4], u64) {
    let layout = merged(2, 2, [5 * 4096, 5 * 4096, 6 * 4096]);
    let keys = [key(0, 0), key(0, 1), key(1, 0), key(1, 1)];
    let f = layout.footprint(keys[0]);
    assert!(keys.iter().all(|&k| layout.footprint(k) == f));
    (layout, keys, f)
}

const SCRIPT: &str = "abacbadacc";

fn run_script(budget_experts: u64, io: IoMode) -> (moe_offload::CacheStats, u64) {
    let (layout, keys, f) = abcd();
    let file = TempFile::new("lru", layout.len);
    // A budget of n experts plus slack below one more expert.
    let budget = budget_experts * f + f / 2;
    let cache =
        ExpertCache::new(file.open(), layout.ranges.clone(), config(budget, io, 2)).unwrap();
    for c in SCRIPT.chars() {
        let k = keys[(c as u8 - b'a') as usize];
        use_and_check(&cache, &layout, k);
    }
    let s = cache.stats();
    assert_eq!(s.resident_bytes, budget_experts.min(4) * f);
    assert!(s.peak_resident_bytes <= budget);
    assert_eq!(s.over_budget_events, 0);
    (s, layout.ranges(keys[0]).total_bytes())
}

fn counts(l: &LayerStats) -> (u64, u64, u64) {
    (l.hits, l.misses, l.evictions)
}

// Worked by hand (LRU order, least recent first, after each access):
//
// budget 4 (all): nothing is evicted; first uses of a, b, c, d miss.
//   layer 0 (a: m h h h, b: m h) = 4 hits, 2 misses
//   layer 1 (c: m h h,   d: m)   = 2 hits, 2 misses
//
// budget 2:
//   a m [a] | b m [a b] | a h [b a] | c m, evict b [a c] | b m, evict a [c b]
//   a m, evict c [b a] | d m, evict b [a d] | a h [d a] | c m, evict d [a c] | c h
//   layer 0: hits 2 (a), misses 4, evicted b a b = 3
//   layer 1: hits 1 (c), misses 3, evicted c d = 2
//
// budget 1: every access but the last misses and evicts the previous key.
//   evicted a b a c b a d a: layer 0: 6, layer 1: 2
//   layer 0: hits 0, misses 6; layer 1: hits 1 (the second c), misses 3
#[test]
fn scripted_lru_counts_all_experts() {
    for io in [IoMode::Auto, IoMode::Buffered] {
        let (s, payload) = run_script(4, io);
        assert_eq!(counts(&s.layers[0]), (4, 2, 0));
        assert_eq!(counts(&s.layers[1]), (2, 2, 0));
        assert_eq!(s.total().loads, 4);
        assert_eq!((s.evictions(), s.recycled_buffers), (0, 0));
        assert_eq!(s.total().bytes_read, 4 * payload);
    }
}

#[test]
fn scripted_lru_counts_two_experts() {
    for io in [IoMode::Auto, IoMode::Buffered] {
        let (s, payload) = run_script(2, io);
        assert_eq!(counts(&s.layers[0]), (2, 4, 3));
        assert_eq!(counts(&s.layers[1]), (1, 3, 2));
        assert_eq!(s.evictions(), 5);
        // Same-sized experts: every eviction hands its buffer to the load.
        assert_eq!(s.recycled_buffers, 5);
        assert_eq!(s.total().loads, 7);
        assert_eq!(s.total().bytes_read, 7 * payload);
    }
}

#[test]
fn scripted_lru_counts_one_expert() {
    for io in [IoMode::Auto, IoMode::Buffered] {
        let (s, payload) = run_script(1, io);
        assert_eq!(counts(&s.layers[0]), (0, 6, 6));
        assert_eq!(counts(&s.layers[1]), (1, 3, 2));
        assert_eq!(s.evictions(), 8);
        assert_eq!(s.recycled_buffers, 8);
        assert_eq!(s.total().bytes_read, 9 * payload);
    }
}

#[test]
fn budget_below_the_largest_expert_is_an_error_naming_the_minimum() {
    let layout = odd();
    let min = layout.max_footprint();
    let file = TempFile::new("small", layout.len);
    match ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(min - 1, IoMode::Auto, 1),
    ) {
        Err(e @ OffloadError::BudgetTooSmall { .. }) => {
            let OffloadError::BudgetTooSmall {
                budget,
                minimum,
                key,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*budget, *minimum), (min - 1, min));
            assert_eq!(*key, key_of_largest(&layout));
            let msg = e.to_string();
            assert!(msg.contains(&format!("at least {min} bytes")), "{msg}");
        }
        other => panic!("expected BudgetTooSmall, got {other:?}"),
    }
    // Exactly the minimum is fine.
    ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(min, IoMode::Auto, 1),
    )
    .unwrap();
}

fn key_of_largest(layout: &Layout) -> ExpertKey {
    *layout
        .keys()
        .iter()
        .max_by_key(|&&k| layout.footprint(k))
        .unwrap()
}

#[test]
fn a_pinned_expert_is_never_evicted_and_over_budget_is_counted() {
    let (layout, [a, b, c, _], f) = abcd();
    let file = TempFile::new("pin", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(f, IoMode::Auto, 2),
    )
    .unwrap();
    // Budget of one expert; using b and then c while a is still in use.
    cache
        .with_expert(a, &mut |ba| {
            use_and_check(&cache, &layout, b);
            assert!(cache.is_resident(a), "a is pinned");
            use_and_check(&cache, &layout, c);
            assert!(cache.is_resident(a), "a is pinned");
            check(ba, layout.ranges(a));
        })
        .unwrap();
    let s = cache.stats();
    // b and c each had to load with a pinned and the budget full.
    assert_eq!(s.over_budget_events, 2);
    assert_eq!(s.peak_resident_bytes, 2 * f);
    // With a pinned, b and c were each evicted as soon as they were unpinned.
    assert_eq!(s.evictions(), 2);
    assert!(cache.is_resident(a) && !cache.is_resident(b) && !cache.is_resident(c));
    assert_eq!(s.resident_bytes, f);
}

#[test]
fn request_loads_in_parallel_before_use_and_protects_from_hints() {
    let (layout, [a, b, c, d], f) = abcd();
    let file = TempFile::new("request", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(2 * f, IoMode::Auto, 2),
    )
    .unwrap();
    cache.request(&[a, b]);
    wait_resident(&cache, &[a, b]);
    assert_eq!(
        cache.stats().total().loads,
        2,
        "request read both before any use"
    );
    // Wanted by the current request: a prefetch may not evict them.
    cache.prefetch(&[c]);
    assert_eq!(cache.stats().prefetch_dropped, 1);
    use_and_check(&cache, &layout, a);
    use_and_check(&cache, &layout, b);
    let s = cache.stats();
    // First uses of demand reads are misses; nothing was read twice.
    assert_eq!(
        (s.total().hits, s.total().misses, s.total().loads),
        (0, 2, 2)
    );

    // Next layer: a again (hit) and d (evicts b, the least recent).
    cache.request(&[a, d]);
    wait_resident(&cache, &[a, d]);
    use_and_check(&cache, &layout, a);
    use_and_check(&cache, &layout, d);
    let s = cache.stats();
    assert_eq!(
        (s.total().hits, s.total().misses, s.total().loads),
        (1, 3, 3)
    );
    assert_eq!(s.evictions(), 1);
    assert!(!cache.is_resident(b));
    assert_eq!(s.over_budget_events, 0);
}

#[test]
fn concurrent_uses_of_one_key_read_it_once() {
    let (layout, [a, b, ..], f) = abcd();
    let file = TempFile::new("dedup", layout.len);
    let cache = Arc::new(
        ExpertCache::new(
            file.open(),
            layout.ranges.clone(),
            config(4 * f, IoMode::Auto, 4),
        )
        .unwrap(),
    );
    let layout = Arc::new(layout);
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (cache, layout, barrier) = (cache.clone(), layout.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                if i % 2 == 0 {
                    cache.request(&[a, a, b]);
                }
                use_and_check(&*cache, &layout, a);
                use_and_check(&*cache, &layout, b);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = cache.stats();
    assert_eq!(s.total().loads, 2);
    assert_eq!(s.total().bytes_read, 2 * layout.ranges(a).total_bytes());
    assert_eq!(s.total().accesses(), 2 * n as u64);
}
