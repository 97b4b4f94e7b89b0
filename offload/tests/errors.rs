//! Bad input and failed reads become errors that name the file and the
//! expert, never panics; the cache stays usable afterwards.

mod common;

use std::fs::OpenOptions;

use common::*;
use moe_offload::{CacheConfig, ExpertCache, ExpertRanges, ExpertSource, IoMode, OffloadError};

/// A file truncated under an open cache: the experts past the cut fail
/// with end of file, those before it with "changed while in use" (the
/// file is no longer what was opened); every error names the file and the
/// expert, nothing hangs, nothing is cached.
#[test]
fn truncated_file_gives_io_error_naming_file_and_key() {
    for io in [IoMode::Auto, IoMode::Buffered] {
        let layout = merged(1, 4, [3 * 4096, 3 * 4096, 4 * 4096]);
        let file = TempFile::new("trunc", layout.len);
        let wf = file.open();
        let cache = ExpertCache::new(
            wf,
            layout.ranges.clone(),
            config(layout.total_footprint(), io, 2),
        )
        .unwrap();
        use_and_check(&cache, &layout, key(0, 0));
        // Cut the file in the middle of expert 2's down slab (the last tensor):
        // expert 1 stays whole, 2 is short, 3 is gone.
        let cut = layout.ranges[0][2].down.start + 5000;
        OpenOptions::new()
            .write(true)
            .open(&file.path)
            .unwrap()
            .set_len(cut)
            .unwrap();

        // Already cached: still served (its bytes were read before the cut).
        use_and_check(&cache, &layout, key(0, 0));
        for e in [1, 2, 3] {
            // Through request (the waiter may find the read failed or still
            // running) and straight through with_expert.
            for via_request in [true, false] {
                if via_request {
                    cache.request(&[key(0, e)]);
                }
                let mut called = false;
                let err = cache
                    .with_expert(key(0, e), &mut |_| called = true)
                    .unwrap_err();
                assert!(!called);
                match &err {
                    OffloadError::Io {
                        path,
                        key: k,
                        source,
                    } => {
                        assert_eq!(path, &file.path);
                        assert_eq!(*k, key(0, e));
                        if e == 1 {
                            assert!(source.to_string().contains("changed while in use"), "{source}");
                        } else {
                            assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof, "{source}");
                        }
                    }
                    other => panic!("expected Io, got {other:?}"),
                }
                let msg = err.to_string();
                assert!(msg.contains(&file.path.display().to_string()), "{msg}");
                assert!(msg.contains(&format!("{:?}", key(0, e))), "{msg}");
            }
        }
        let s = cache.stats();
        assert!(s.read_errors >= 6, "{}", s.read_errors);
        // Failed reads hold nothing.
        assert_eq!(s.resident_bytes, layout.footprint(key(0, 0)));
    }
}

#[test]
fn ranges_outside_the_file_are_rejected_at_construction() {
    let layout = odd();
    let file = TempFile::new("oob", layout.len);
    let mut ranges = layout.ranges.clone();
    ranges[0][1].up = layout.len - 10..layout.len + 10;
    match ExpertCache::new(file.open(), ranges, CacheConfig::new(1 << 30)) {
        Err(OffloadError::OutOfBounds(e)) => assert_eq!(e.end, layout.len + 10),
        other => panic!("expected OutOfBounds, got {other:?}"),
    }
}

#[test]
fn unknown_keys_and_bad_config_are_errors() {
    let layout = odd();
    let file = TempFile::new("unknown", layout.len);
    let cache = ExpertCache::new(
        file.open(),
        layout.ranges.clone(),
        CacheConfig::new(1 << 30),
    )
    .unwrap();
    for k in [key(0, 99), key(7, 0)] {
        cache.request(&[k]); // ignored
        cache.prefetch(&[k]); // ignored
        let err = cache.with_expert(k, &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, OffloadError::UnknownExpert { key } if key == k),
            "{err:?}"
        );
    }
    let cfg = CacheConfig {
        loader_threads: 0,
        ..CacheConfig::new(1 << 30)
    };
    let err = ExpertCache::new(file.open(), layout.ranges.clone(), cfg).unwrap_err();
    assert!(matches!(err, OffloadError::InvalidConfig(_)), "{err:?}");
}

#[test]
fn empty_model_and_empty_slabs_are_fine() {
    let file = TempFile::new("empty", 10_000);
    // A dense layer (no experts) next to a layer with an empty slab.
    let ranges = vec![
        vec![],
        vec![ExpertRanges {
            gate: 100..200,
            up: 300..300,
            down: 5000..9000,
        }],
    ];
    assert_eq!(ExpertCache::min_budget(&[]), 0);
    let cache = ExpertCache::new(file.open(), ranges.clone(), CacheConfig::new(3 * 4096)).unwrap();
    cache
        .with_expert(key(1, 0), &mut |b| {
            assert!(b.up.is_empty());
            check(b, &ranges[1][0]);
        })
        .unwrap();
}
