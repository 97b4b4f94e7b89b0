//! `moe disk-bench`: how fast the expert cache reads this model's experts
//! from disk: random (layer, expert) slabs read through an `ExpertCache`
//! (O_DIRECT where the filesystem allows) with the run's loader threads,
//! `--group` experts requested at a time, as the forward pass does. Every
//! read misses. The benchmark script divides missed bytes by this figure
//! to get the I/O bound of a run.

use std::sync::Arc;
use std::time::Instant;

use moe::{Error, Result};
use moe_offload::{CacheConfig, ExpertCache, ExpertKey, ExpertSource, IoMode};

use crate::args::DiskBenchArgs;

pub fn disk_bench(a: DiskBenchArgs, quiet: bool) -> Result<()> {
    let model = crate::progress::open_model(&a.model, quiet)?;
    let ranges = model.expert_ranges();
    let keys: Vec<ExpertKey> = ranges
        .iter()
        .enumerate()
        .flat_map(|(l, r)| (0..r.len()).map(move |e| ExpertKey { layer: l as u32, expert: e as u32 }))
        .collect();
    if keys.is_empty() {
        return Err(Error::InvalidArgument(format!("{}: a dense model has no experts to read", a.model.display())));
    }
    let n = a.reads.min(keys.len());
    let group = a.group.map_or(model.config().n_expert_used, usize::from).clamp(1, n);
    // A pseudo-random order over the whole file (Fibonacci hashing), one per seed.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    let salt = a.seed.wrapping_mul(0xd6e8_feb8_6659_fd93);
    order.sort_by_key(|&i| ((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt).rotate_left(17));
    let picked: Vec<ExpertKey> = order[..n].iter().map(|&i| keys[i]).collect();
    let largest = ranges.iter().flatten().map(ExpertCache::footprint).max().unwrap_or(0);
    let config = CacheConfig {
        budget_bytes: largest * group as u64,
        loader_threads: a.loader_threads.into(),
        prefetch: false,
        io: if a.buffered { IoMode::Buffered } else { IoMode::Auto },
        faults: None,
    };
    let cache = ExpertCache::new(Arc::clone(model.file().file()), ranges, config).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let mut sink = 0u8;
    let pb = crate::progress::count("moe: disk-bench: experts read", n as u64, quiet);
    let t0 = Instant::now();
    for g in picked.chunks(group) {
        pb.inc(g.len() as u64);
        cache.request(g);
        for &k in g {
            cache
                .with_expert(k, &mut |b| sink ^= b.gate[0] ^ b.up[b.up.len() / 2] ^ b.down[b.down.len() - 1])
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let s = cache.stats();
    let t = s.total();
    let calls = s.direct_reads + s.buffered_reads;
    outln!(
        "moe: disk: {} reads of {} experts ({:.1} MB each on average, {} read calls of {:.2} MB) in groups of {group} \
         with {} loader threads: {:.3} GB in {wall:.2} s = {:.3} GB/s, {:.0} experts/s, {:.0} reads/s ({}; sink {sink})",
        t.loads,
        n,
        t.bytes_read as f64 / t.loads.max(1) as f64 / 1e6,
        calls,
        t.io_bytes as f64 / calls.max(1) as f64 / 1e6,
        a.loader_threads,
        t.io_bytes as f64 / 1e9,
        t.io_bytes as f64 / wall / 1e9,
        t.loads as f64 / wall,
        calls as f64 / wall,
        if s.direct_io { "O_DIRECT" } else { "buffered" },
    )?;
    Ok(())
}
