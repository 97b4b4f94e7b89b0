//! Test fixtures: temp files with a known, position-dependent byte pattern,
//! and expert layouts over them shaped like the two GGUF layouts (slabs at
//! 32-byte, not page, alignment, as in real files).
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moe_offload::{
    CacheConfig, ExpertBytes, ExpertCache, ExpertKey, ExpertRanges, ExpertSource, IoMode,
    WeightFile,
};

/// The byte at file offset `off`: a hash, so a slab read from a shifted
/// offset or into the wrong place never matches.
pub fn pattern(off: u64) -> u8 {
    (off.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// A file in the test temp dir, removed on drop.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    /// `len` bytes of `pattern`.
    pub fn new(tag: &str, len: u64) -> TempFile {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!(
            "offload-{tag}-{}-{}.bin",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).unwrap());
        let mut chunk = vec![0u8; 1 << 16];
        let mut off = 0u64;
        while off < len {
            let n = chunk.len().min((len - off) as usize);
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = pattern(off + i as u64);
            }
            w.write_all(&chunk[..n]).unwrap();
            off += n as u64;
        }
        w.flush().unwrap();
        TempFile { path }
    }

    pub fn open(&self) -> Arc<WeightFile> {
        Arc::new(WeightFile::open(&self.path).unwrap())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Hands out 32-byte-aligned file ranges in order, like tensor data in a
/// GGUF file, starting at a non-page-aligned data offset.
pub struct Alloc {
    pub pos: u64,
}

impl Alloc {
    pub fn new() -> Alloc {
        Alloc { pos: 1184 } // like a GGUF header + metadata: 32-aligned, not 4096-aligned
    }

    pub fn take(&mut self, len: u64) -> Range<u64> {
        let start = self.pos.next_multiple_of(32);
        self.pos = start + len;
        start..start + len
    }

    /// Some bytes between tensors (a resident tensor, say).
    pub fn gap(&mut self, len: u64) {
        self.pos += len;
    }
}

/// A layout: `ranges[layer][expert]` and the file length it needs.
pub struct Layout {
    pub ranges: Vec<Vec<ExpertRanges>>,
    pub len: u64,
}

impl Layout {
    pub fn keys(&self) -> Vec<ExpertKey> {
        let mut v = Vec::new();
        for (l, layer) in self.ranges.iter().enumerate() {
            for e in 0..layer.len() {
                v.push(ExpertKey {
                    layer: l as u32,
                    expert: e as u32,
                });
            }
        }
        v
    }

    pub fn ranges(&self, k: ExpertKey) -> &ExpertRanges {
        &self.ranges[k.layer as usize][k.expert as usize]
    }

    pub fn footprint(&self, k: ExpertKey) -> u64 {
        ExpertCache::footprint(self.ranges(k))
    }

    pub fn max_footprint(&self) -> u64 {
        ExpertCache::min_budget(&self.ranges)
    }

    pub fn total_footprint(&self) -> u64 {
        self.keys().iter().map(|&k| self.footprint(k)).sum()
    }
}

/// Merged `ffn_{gate,up,down}_exps`: per layer three tensors, expert e's
/// slab at `e * slab` inside each; a resident tensor between layers.
pub fn merged(n_layers: usize, n_expert: usize, slab: [u64; 3]) -> Layout {
    let mut a = Alloc::new();
    let mut ranges = Vec::new();
    for _ in 0..n_layers {
        a.gap(4000); // attention weights etc.
        let tensors: Vec<Range<u64>> = (0..3).map(|i| a.take(slab[i] * n_expert as u64)).collect();
        let at = |t: usize, e: usize| {
            let s = tensors[t].start + e as u64 * slab[t];
            s..s + slab[t]
        };
        ranges.push(
            (0..n_expert)
                .map(|e| ExpertRanges {
                    gate: at(0, e),
                    up: at(1, e),
                    down: at(2, e),
                })
                .collect(),
        );
    }
    Layout {
        ranges,
        len: a.pos + 100,
    }
}

/// Per-expert `ffn_{gate,down,up}.E`: each expert's three slabs stored back
/// to back (32-byte padded), so their pages touch and share reads.
pub fn per_expert(n_layers: usize, n_expert: usize, slab: [u64; 3]) -> Layout {
    let mut a = Alloc::new();
    let mut ranges = Vec::new();
    for _ in 0..n_layers {
        a.gap(5000);
        let mut layer = Vec::new();
        for _ in 0..n_expert {
            let gate = a.take(slab[0]);
            let down = a.take(slab[2]);
            let up = a.take(slab[1]);
            layer.push(ExpertRanges { gate, up, down });
        }
        ranges.push(layer);
    }
    Layout {
        ranges,
        len: a.pos + 100,
    }
}

/// Odd sizes: tiny slabs, slabs straddling page boundaries, a multi-MB slab,
/// and one that ends exactly at the end of the file (not page-aligned).
pub fn odd() -> Layout {
    let mut a = Alloc::new();
    let sizes: [[u64; 3]; 4] = [
        [1, 33, 4095],
        [4096, 4097, 8191],
        [3 * 1024 * 1024 + 17, 100, 2 * 1024 * 1024 + 5],
        [64, 31 * 4096, 77],
    ];
    let layer = sizes
        .iter()
        .map(|s| {
            a.gap(13);
            ExpertRanges {
                gate: a.take(s[0]),
                up: a.take(s[1]),
                down: a.take(s[2]),
            }
        })
        .collect();
    Layout {
        ranges: vec![layer],
        len: a.pos,
    }
}

/// Asserts `b` holds exactly the file's bytes for `r`.
pub fn check(b: ExpertBytes<'_>, r: &ExpertRanges) {
    for (name, got, want) in [
        ("gate", b.gate, &r.gate),
        ("up", b.up, &r.up),
        ("down", b.down, &r.down),
    ] {
        assert_eq!(
            got.len() as u64,
            want.end - want.start,
            "{name} slab length for {want:?}"
        );
        if let Some(i) = got
            .iter()
            .enumerate()
            .position(|(i, &x)| x != pattern(want.start + i as u64))
        {
            panic!("{name} slab {want:?}: byte {i} differs from the file");
        }
    }
}

/// Uses `key` once and checks its bytes.
pub fn use_and_check(src: &dyn ExpertSource, layout: &Layout, key: ExpertKey) {
    let mut called = false;
    src.with_expert(key, &mut |b| {
        check(b, layout.ranges(key));
        called = true;
    })
    .unwrap();
    assert!(called);
}

pub fn config(budget: u64, io: IoMode, threads: usize) -> CacheConfig {
    CacheConfig {
        budget_bytes: budget,
        loader_threads: threads,
        prefetch: true,
        io,
        faults: None,
    }
}

/// Waits (up to 10 s) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until every key in `keys` is resident and ready.
pub fn wait_resident(cache: &ExpertCache, keys: &[ExpertKey]) {
    wait_until(&format!("{keys:?} resident"), || {
        keys.iter().all(|&k| cache.is_resident(k))
    });
}

/// Whether the filesystem of `path` supports O_DIRECT reads.
pub fn direct_supported(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .is_ok()
}

pub fn key(layer: u32, expert: u32) -> ExpertKey {
    ExpertKey { layer, expert }
}
