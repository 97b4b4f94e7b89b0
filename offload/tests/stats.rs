//! Stats: per-token deltas, the JSON writer (valid JSON, same numbers), the
//! table, and stats through the `ExpertSource` trait object.

mod common;

use common::*;
use moe_offload::{ExpertCache, ExpertSource, IoMode, MappedExperts};

#[test]
fn mark_gives_per_token_deltas() {
    let layout = merged(2, 2, [4096, 4096, 8192]);
    let file = TempFile::new("mark", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(layout.total_footprint(), IoMode::Auto, 2),
    )
    .unwrap();
    let payload = |l: u32, e: u32| layout.ranges(key(l, e)).total_bytes();

    // Token 1: two cold experts.
    cache.request(&[key(0, 0), key(1, 1)]);
    use_and_check(&cache, &layout, key(0, 0));
    use_and_check(&cache, &layout, key(1, 1));
    let d = cache.mark();
    assert_eq!((d.hits, d.misses), (0, 2));
    assert_eq!(d.bytes_read, payload(0, 0) + payload(1, 1));
    assert_eq!(d.hit_rate(), Some(0.0));

    // Token 2: one warm, one cold.
    use_and_check(&cache, &layout, key(0, 0));
    use_and_check(&cache, &layout, key(0, 1));
    let d = cache.mark();
    assert_eq!((d.hits, d.misses, d.bytes_read), (1, 1, payload(0, 1)));
    assert_eq!(d.hit_rate(), Some(0.5));

    // Token 3: all warm: nothing read.
    use_and_check(&cache, &layout, key(1, 1));
    let d = cache.mark();
    assert_eq!((d.hits, d.misses, d.bytes_read, d.io_bytes), (1, 0, 0, 0));
    assert_eq!(d.stall_time, std::time::Duration::ZERO);
    assert!(d.to_string().contains("hit rate 100.0%"), "{d}");

    // Nothing since: an empty delta.
    assert_eq!(cache.mark().hit_rate(), None);

    // Snapshots subtract the same way.
    let s = cache.stats();
    assert_eq!(s.since(&s).total(), Default::default());
}

#[test]
fn json_is_valid_and_matches_the_snapshot() {
    let layout = merged(3, 2, [4096, 4096, 8192]);
    let file = TempFile::new("json", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        config(2 * layout.max_footprint(), IoMode::Auto, 2),
    )
    .unwrap();
    for k in [key(0, 0), key(0, 1), key(0, 0), key(2, 1), key(2, 0)] {
        use_and_check(&cache, &layout, k);
    }
    let s = cache.stats();
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(v["budget_bytes"], s.budget_bytes);
    assert_eq!(v["resident_bytes"], s.resident_bytes);
    assert_eq!(v["peak_resident_bytes"], s.peak_resident_bytes);
    assert_eq!(v["evictions"], s.evictions());
    assert_eq!(v["direct_io"], s.direct_io);
    assert_eq!(v["total"]["hits"], 1);
    assert_eq!(v["total"]["misses"], 4);
    assert_eq!(v["total"]["bytes_read"], s.total().bytes_read);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[0]["hits"], 1);
    assert_eq!(layers[0]["hit_rate"].as_f64(), Some(1.0 / 3.0));
    assert!(
        layers[1]["hit_rate"].is_null(),
        "no accesses: null, not NaN"
    );
    assert_eq!(layers[2]["misses"], 2);
    assert!(layers[2]["read_s"].as_f64().unwrap() > 0.0);

    let table = s.to_string();
    assert!(table.lines().next().unwrap().contains("hit%"));
    assert!(table.contains("total"));
    assert!(
        !table.lines().any(|l| l.trim_start().starts_with("1 ")),
        "idle layer 1 is skipped:\n{table}"
    );
}

#[test]
fn stats_through_the_trait_object() {
    let layout = odd();
    let file = TempFile::new("dyn", layout.len);
    let wf = file.open();
    let cached: Box<dyn ExpertSource> = Box::new(
        ExpertCache::new(
            wf.clone(),
            layout.ranges.clone(),
            config(layout.max_footprint(), IoMode::Auto, 1),
        )
        .unwrap(),
    );
    let mapped: Box<dyn ExpertSource> = Box::new(MappedExperts::new(wf, layout.ranges.clone()));
    for src in [&cached, &mapped] {
        // The hints are part of the trait; the mapping ignores them.
        src.request(&[key(0, 0)]);
        src.prefetch(&[key(0, 1)]);
        use_and_check(src.as_ref(), &layout, key(0, 0));
    }
    assert!(mapped.stats().is_none());
    let s = cached.stats().unwrap();
    assert_eq!(s.total().accesses(), 1);
}
