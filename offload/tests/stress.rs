//! Concurrency stress: many threads use random experts under a tiny budget,
//! hold them for a random short time (some nest a second expert), while
//! requests and prefetches race. Inside every closure the bytes must match
//! the file and the expert must still be resident, before and after the
//! hold: an expert in use is never evicted.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use moe_offload::{ExpertCache, ExpertKey, ExpertSource, IoMode};
use rand::{Rng, SeedableRng};

fn hold(
    cache: &ExpertCache,
    layout: &Layout,
    k: ExpertKey,
    rng: &mut impl Rng,
    calls: &AtomicU64,
    depth: u32,
) {
    let nested = (depth == 0 && rng.random_bool(0.15)).then(|| ExpertKey {
        layer: rng.random_range(0..2),
        expert: rng.random_range(0..6),
    });
    let pause = Duration::from_micros(rng.random_range(0..300));
    calls.fetch_add(1, Ordering::Relaxed);
    let mut inner_rng = rand::rngs::StdRng::seed_from_u64(rng.random());
    cache
        .with_expert(k, &mut |b| {
            check(b, layout.ranges(k));
            assert!(cache.is_resident(k), "{k:?} evicted while in use");
            std::thread::sleep(pause);
            if let Some(n) = nested {
                hold(cache, layout, n, &mut inner_rng, calls, depth + 1);
            }
            assert!(cache.is_resident(k), "{k:?} evicted while in use");
            check(b, layout.ranges(k));
        })
        .unwrap();
}

fn stress(io: IoMode, loader_threads: usize, budget_experts: u64, seed: u64) {
    // Varied, unaligned slab sizes: footprints differ between experts.
    let layout = Arc::new(merged(2, 6, [7000, 9000, 11_000]));
    let file = TempFile::new("stress", layout.len);
    let budget = budget_experts * layout.max_footprint();
    let cache = Arc::new(
        ExpertCache::new(
            file.open(),
            layout.ranges.clone(),
            config(budget, io, loader_threads),
        )
        .unwrap(),
    );
    let calls = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let keys = layout.keys();

    let prefetcher = {
        let (cache, stop, keys) = (cache.clone(), stop.clone(), keys.clone());
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xFF);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let pick = [
                    keys[rng.random_range(0..keys.len())],
                    keys[rng.random_range(0..keys.len())],
                ];
                cache.prefetch(&pick);
                n += 1;
                if n.is_multiple_of(200) {
                    cache.set_prefetch(!cache.prefetch_enabled());
                }
                std::thread::sleep(Duration::from_micros(rng.random_range(0..200)));
            }
        })
    };
    let users: Vec<_> = (0..6)
        .map(|t| {
            let (cache, layout, calls, keys) =
                (cache.clone(), layout.clone(), calls.clone(), keys.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed + t);
                for _ in 0..250 {
                    let k = keys[rng.random_range(0..keys.len())];
                    if rng.random_bool(0.3) {
                        cache.request(&[k, keys[rng.random_range(0..keys.len())]]);
                    }
                    hold(&cache, &layout, k, &mut rng, &calls, 0);
                }
            })
        })
        .collect();
    for u in users {
        u.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    prefetcher.join().unwrap();

    wait_until("resident within budget", || {
        cache.resident_bytes() <= budget
    });
    let s = cache.stats();
    let t = s.total();
    assert_eq!(t.accesses(), calls.load(Ordering::Relaxed));
    assert_eq!(s.read_errors, 0);
    assert!(
        t.prefetch_hits + t.prefetch_wasted <= t.prefetch_issued,
        "{s}"
    );
    assert!(s.peak_resident_bytes >= s.resident_bytes);
    // Over budget only when pinned experts forced it: at most one demand
    // read per pin (two pins by each of six threads) beyond the budget.
    assert!(
        s.peak_resident_bytes <= budget + 12 * layout.max_footprint(),
        "{s}"
    );
    eprintln!("{io:?}, {loader_threads} loaders, budget {budget_experts} experts:\n{s}");
}

#[test]
fn stress_auto_io_tiny_budget() {
    stress(IoMode::Auto, 3, 2, 1);
}

#[test]
fn stress_auto_io_roomier_budget() {
    // Room for hints to get through and race with uses and evictions.
    stress(IoMode::Auto, 2, 7, 3);
}

#[test]
fn stress_buffered_io_one_loader() {
    stress(IoMode::Buffered, 1, 3, 2);
}
