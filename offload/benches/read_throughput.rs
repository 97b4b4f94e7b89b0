//! Expert read throughput through `ExpertCache`: O_DIRECT vs buffered, with
//! 1, 2 and 4 loader threads, on a temp file of Mixtral-Q4_K-shaped experts
//! (three 33,030,144-byte slabs each, in three merged tensors, 32-byte but
//! not page aligned). Every read misses: the budget holds the 4 experts of
//! one step, and each step asks for 4 experts not read in the last step.
//! Prints figures; asserts nothing about time.
//!
//! `cargo bench -p moe-offload --bench read_throughput`
//! Env: `MOE_BENCH_EXPERTS` (default 20, ~2 GB), `MOE_BENCH_DIR` (default
//! the target dir's tmp; put it on the disk you care about).

use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use moe_offload::{
    CacheConfig, ExpertCache, ExpertKey, ExpertRanges, ExpertSource, IoMode, WeightFile,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;

const SLAB: u64 = 33_030_144;

struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Drops the whole file from the page cache so every configuration starts
/// cold (only this file; nothing system-wide).
fn drop_cache(f: &File) {
    // SAFETY: posix_fadvise only reads its integer arguments; `f` is open.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

fn main() {
    let n_expert: u64 = env_or("MOE_BENCH_EXPERTS", 20);
    let dir = PathBuf::from(
        std::env::var("MOE_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").to_string()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("offload-bench-{}.bin", std::process::id()));
    let temp = Temp(path.clone());

    // Layout: header, then gate/up/down tensors of n_expert slabs each.
    let base = 1184u64;
    let tensor = SLAB * n_expert;
    let len = base + 3 * tensor + 4096;
    let ranges: Vec<ExpertRanges> = (0..n_expert)
        .map(|e| {
            let at = |t: u64| base + t * tensor + e * SLAB..base + t * tensor + (e + 1) * SLAB;
            ExpertRanges {
                gate: at(0),
                up: at(1),
                down: at(2),
            }
        })
        .collect();

    let t = Instant::now();
    {
        let mut f = std::io::BufWriter::with_capacity(8 << 20, File::create(&path).unwrap());
        let chunk: Vec<u8> = (0..(8u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        let f = f.into_inner().unwrap();
        f.sync_all().unwrap();
        drop_cache(&f);
    }
    println!(
        "file: {} ({:.2} GB, {n_expert} experts x 3 x {SLAB} B), written in {:.1} s",
        path.display(),
        len as f64 / 1e9,
        t.elapsed().as_secs_f64()
    );

    let wf = Arc::new(WeightFile::open(&path).unwrap());
    let footprint = ExpertCache::footprint(&ranges[0]);
    let step = 4usize;
    println!(
        "{:>9} {:>8} {:>9} {:>11} {:>13} {:>12} {:>9} {:>9}",
        "io", "loaders", "GB/s", "MB/s/ldr", "ms/expert", "stall s", "wall s", "recycled"
    );
    for io in [IoMode::Auto, IoMode::Buffered] {
        for threads in [1usize, 2, 4] {
            drop_cache(wf.file());
            let cfg = CacheConfig {
                budget_bytes: step as u64 * footprint,
                loader_threads: threads,
                prefetch: false,
                io,
                faults: None,
            };
            let cache = ExpertCache::new(wf.clone(), vec![ranges.clone()], cfg).unwrap();
            let mut keys: Vec<ExpertKey> = (0..n_expert as u32)
                .map(|e| ExpertKey {
                    layer: 0,
                    expert: e,
                })
                .collect();
            keys.shuffle(&mut rand::rngs::StdRng::seed_from_u64(threads as u64));
            let mut sink = 0u8;
            let start = Instant::now();
            for group in keys.chunks(step) {
                cache.request(group);
                for &k in group {
                    cache
                        .with_expert(k, &mut |b| {
                            sink ^= b.gate[0] ^ b.up[SLAB as usize / 2] ^ b.down[b.down.len() - 1]
                        })
                        .unwrap();
                }
            }
            let wall = start.elapsed().as_secs_f64();
            let s = cache.stats();
            let tot = s.total();
            assert_eq!(tot.loads, n_expert, "every read should miss");
            let name = match (io, s.direct_io) {
                (IoMode::Auto, true) => "O_DIRECT",
                (IoMode::Auto, false) => "auto->buf",
                (IoMode::Buffered, _) => "buffered",
            };
            println!(
                "{name:>9} {threads:>8} {:>9.2} {:>11.0} {:>13.1} {:>12.3} {:>9.2} {:>9}   (sink {sink})",
                tot.io_bytes as f64 / wall / 1e9,
                tot.read_throughput().unwrap_or(0.0) / 1e6,
                tot.read_time.as_secs_f64() * 1e3 / tot.loads as f64,
                tot.stall_time.as_secs_f64(),
                wall,
                s.recycled_buffers,
            );
        }
    }
    drop(wf);
    drop(temp);
    println!(
        "GB/s: bytes read per wall second (all loaders); MB/s/ldr, ms/expert: one loader's view of one read; \
         recycled: loads reusing an evicted expert's buffer (first {step} map fresh ones)"
    );
}
