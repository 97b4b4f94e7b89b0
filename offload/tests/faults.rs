//! Faults injected into the loader's reads (`CacheConfig::faults`): an
//! EIO or an end of file fails that request with an error naming the file
//! and the expert, promptly (no hang), and the cache serves other experts
//! afterwards; short reads are continued and give exact bytes. A file
//! rewritten in place under the cache is refused, not read as garbage.

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use moe_offload::{CacheConfig, ExpertCache, ExpertKey, ExpertSource, FaultInjector, IoMode, OffloadError, ReadFault};

/// Faults for every read call that overlaps `range`, while `on`.
fn faults_in(range: std::ops::Range<u64>, fault: ReadFault, on: Arc<AtomicBool>, hits: Arc<AtomicU64>) -> FaultInjector {
    FaultInjector(Arc::new(move |offset, len| {
        let overlaps = offset < range.end && offset + len as u64 > range.start;
        (overlaps && on.load(Ordering::Relaxed)).then(|| {
            hits.fetch_add(1, Ordering::Relaxed);
            fault
        })
    }))
}

/// `with_expert(key)` on another thread, with a deadline: a hang fails the
/// test instead of wedging it.
fn with_expert_within(cache: &Arc<ExpertCache>, key: ExpertKey, via_request: bool) -> Result<(), OffloadError> {
    let (tx, rx) = mpsc::channel();
    let c = Arc::clone(cache);
    std::thread::spawn(move || {
        if via_request {
            c.request(&[key]);
        }
        let r = c.with_expert(key, &mut |_| {});
        tx.send(r).ok();
    });
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("with_expert({key:?}) hung after an injected fault"))
}

#[test]
fn eio_and_eof_fail_the_request_and_the_cache_goes_on() {
    for io in [IoMode::Auto, IoMode::Buffered] {
        for (fault, kind, words) in [
            (ReadFault::Errno(libc::EIO), None, "Input/output error (os error 5)"),
            (ReadFault::Eof, Some(std::io::ErrorKind::UnexpectedEof), "truncated file?"),
        ] {
            let layout = merged(2, 4, [3 * 4096 + 100, 3 * 4096 + 100, 5 * 4096 + 7]);
            let file = TempFile::new("faults", layout.len);
            let bad = key(1, 2);
            let up = layout.ranges(bad).up.clone();
            let on = Arc::new(AtomicBool::new(true));
            let hits = Arc::new(AtomicU64::new(0));
            let cfg = CacheConfig {
                // Bytes inside `bad`'s up slab, more than a page from its
                // neighbours, so no page-aligned read of another expert
                // touches them.
                faults: Some(faults_in(up.start + 5000..up.start + 5001, fault, Arc::clone(&on), Arc::clone(&hits))),
                ..config(layout.total_footprint(), io, 2)
            };
            let cache = Arc::new(ExpertCache::new(file.open(), layout.ranges.clone(), cfg).unwrap());
            for via_request in [false, true] {
                let err = with_expert_within(&cache, bad, via_request).unwrap_err();
                let msg = err.to_string();
                match &err {
                    OffloadError::Io { path, key, source } => {
                        assert_eq!((path, *key), (&file.path, bad), "{msg}");
                        // The loader hands waiters the error's kind and text.
                        if let Some(kind) = kind {
                            assert_eq!(source.kind(), kind, "{msg}");
                        }
                    }
                    other => panic!("{fault:?}: expected Io, got {other:?}"),
                }
                assert!(msg.contains(&file.path.display().to_string()) && msg.contains("layer: 1") && msg.contains(words), "{msg}");
            }
            assert!(hits.load(Ordering::Relaxed) >= 2, "the fault was injected");
            // Every other expert still loads, exactly.
            for k in layout.keys().into_iter().filter(|&k| k != bad) {
                use_and_check(&*cache, &layout, k);
            }
            // The failed one was not cached: once the disk recovers it loads.
            on.store(false, Ordering::Relaxed);
            use_and_check(&*cache, &layout, bad);
            let s = cache.stats();
            // One failed read per `with_expert`, plus one when the
            // `request`'s own load failed before `with_expert` began to
            // wait on it (that wait then starts a fresh read): 2 or 3.
            assert!((2..=3).contains(&s.read_errors), "{fault:?} {io:?}: {} read errors", s.read_errors);
            assert_eq!(s.resident_bytes, layout.total_footprint());
        }
    }
}

#[test]
fn short_reads_are_continued_and_exact() {
    for io in [IoMode::Auto, IoMode::Buffered] {
        for max in [1, 1000, 4096, 4097] {
            let layout = odd();
            let file = TempFile::new("short", layout.len);
            let hits = Arc::new(AtomicU64::new(0));
            let cfg = CacheConfig {
                faults: Some(faults_in(0..u64::MAX, ReadFault::Short(max), Arc::new(AtomicBool::new(true)), Arc::clone(&hits))),
                ..config(layout.total_footprint(), io, 3)
            };
            let cache = ExpertCache::new(file.open(), layout.ranges.clone(), cfg).unwrap();
            let keys = layout.keys();
            cache.request(&keys);
            for k in keys {
                use_and_check(&cache, &layout, k);
            }
            assert_eq!(cache.stats().read_errors, 0);
            assert!(hits.load(Ordering::Relaxed) > 0);
        }
    }
}

/// Same length, other bytes: the modification time gives it away.
#[test]
fn a_file_rewritten_in_place_is_refused() {
    for io in [IoMode::Auto, IoMode::Buffered] {
        let layout = merged(1, 3, [2 * 4096, 2 * 4096, 2 * 4096]);
        let file = TempFile::new("rewrite", layout.len);
        let cache = ExpertCache::new(file.open(), layout.ranges.clone(), config(layout.total_footprint(), io, 1)).unwrap();
        use_and_check(&cache, &layout, key(0, 0));
        std::thread::sleep(Duration::from_millis(20));
        let f = std::fs::OpenOptions::new().write(true).open(&file.path).unwrap();
        f.write_all_at(&[0xAB; 64], layout.ranges(key(0, 2)).gate.start).unwrap();
        f.sync_all().unwrap();
        let err = cache.with_expert(key(0, 2), &mut |_| panic!("garbage served")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&file.path.display().to_string()) && msg.contains("changed while in use"), "{msg}");
    }
}
