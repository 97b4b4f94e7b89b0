//! Matvec throughput per weight type and kernel tier, against the machine's
//! memory read bandwidth. Prints figures; asserts nothing about time.
//!
//! ```text
//! cargo bench -p moe-quant --bench kernels                 # everything (~2-3 min)
//! cargo bench -p moe-quant --bench kernels -- dram q4_0    # filters: size, type, tier
//! cargo bench -p moe-quant --bench kernels -- rayon        # small-matrix threading: rayon vs our pool
//! cargo bench -p moe-quant --bench kernels -- matmul q4_k  # prompt batches: matmul vs one matvec per token
//! cargo bench -p moe-quant --bench kernels -- dram --ms=600 # longer sampling per cell
//! cargo bench -p moe-quant --bench kernels -- pp512 q4_k avx512  # a 7B prompt's matmuls, 2 threads (only when named)
//! ```
//!
//! Throughput is weight bytes per second (the activation row is small and
//! stays in cache). Sizes, all with 4096 columns except `dram`: `l2` = the
//! rows that make ~512 KiB (256 rows of Q4_K; fits a 1 MiB L2), `l3` = ~12
//! MiB (fits the L3), `dram` = 4096×14336 (a Mixtral expert's w1/w3), cycled
//! over enough copies to span ≥ 256 MiB so that it streams from DRAM;
//! `vocab` = 151936×2048 (Qwen3's output matrix) and `fine` = 768×2048 (one
//! Qwen3-30B-A3B expert's gate or up), cycled from DRAM the same way.
//! `1T` runs on a one-thread compute pool, `2T` on a two-thread pool.

use std::hint::black_box;
use std::time::{Duration, Instant};

use moe_quant::{available_tiers, rows_dot_fn_for, QMatrix, QType, Tier};

/// Sampling time per measurement (`--ms=N` overrides).
static MIN_TIME: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
const DRAM_SPAN: usize = 256 << 20;

struct Args {
    filters: Vec<String>,
}

impl Args {
    fn parse() -> Args {
        let ms = std::env::args()
            .find_map(|a| a.strip_prefix("--ms=").and_then(|v| v.parse().ok()))
            .unwrap_or(150);
        MIN_TIME.set(Duration::from_millis(ms)).expect("set once");
        let filters = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with("--"))
            .map(|a| a.to_lowercase())
            .collect();
        Args { filters }
    }
    /// A section runs if no filter names a section, or one names it.
    fn section(&self, name: &str) -> bool {
        let sections = ["bandwidth", "matvec", "matmul", "rayon", "l2", "l3", "dram", "pp512"];
        let named: Vec<&String> = self
            .filters
            .iter()
            .filter(|f| sections.contains(&f.as_str()))
            .collect();
        (named.is_empty() && name != "pp512")
            || named.iter().any(|f| f.as_str() == name)
            || (name == "matvec"
                && named
                    .iter()
                    .any(|f| ["l2", "l3", "dram", "vocab", "fine"].contains(&f.as_str())))
    }
    fn size(&self, name: &str) -> bool {
        let sizes = ["l2", "l3", "dram", "vocab", "fine"];
        let named: Vec<&String> = self
            .filters
            .iter()
            .filter(|f| sizes.contains(&f.as_str()))
            .collect();
        named.is_empty() || named.iter().any(|f| f.as_str() == name)
    }
    fn qtype(&self, t: QType) -> bool {
        let named: Vec<&String> = self
            .filters
            .iter()
            .filter(|f| {
                QType::WEIGHT_TYPES
                    .iter()
                    .any(|q| q.name().eq_ignore_ascii_case(f))
            })
            .collect();
        named.is_empty() || named.iter().any(|f| t.name().eq_ignore_ascii_case(f))
    }
    fn tier(&self, t: Tier) -> bool {
        let named: Vec<&String> = self
            .filters
            .iter()
            .filter(|f| Tier::from_name(f).is_some())
            .collect();
        named.is_empty() || named.iter().any(|f| f.as_str() == t.name())
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// Seconds per call of `f`: the fastest of at least 3 calls and 150 ms of
/// calls, after one warm-up call. (Best-of, because this machine is shared:
/// slower calls mostly measure other processes.)
fn time_it(mut f: impl FnMut()) -> f64 {
    f();
    let mut samples = Vec::new();
    let start = Instant::now();
    let min_time = *MIN_TIME.get().expect("parsed");
    while samples.len() < 3 || start.elapsed() < min_time {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.into_iter().fold(f64::INFINITY, f64::min)
}

// ---------- memory bandwidth ----------

fn read_sum(chunk: &[u64]) -> u64 {
    // Eight independent lanes so the adds are not the bottleneck.
    let mut acc = [0u64; 8];
    for c in chunk.chunks_exact(8) {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(x);
        }
    }
    acc.iter().fold(0, |s, &a| s.wrapping_add(a))
}

/// Read bandwidth with 1 and 2 threads: the 1 GiB buffer is summed in
/// 64 MiB slabs (each split between the threads), four passes, and the
/// fastest slab counts, so that samples are as short as the matvec ones
/// (the machine is shared; long samples mostly measure other processes).
fn bandwidth() -> (f64, f64) {
    let words = (1usize << 30) / 8;
    let slab = (64usize << 20) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut out = [0.0; 2];
    for (k, threads) in [1usize, 2].into_iter().enumerate() {
        let mut best = f64::INFINITY;
        for _pass in 0..4 {
            for s in buf.chunks(slab) {
                let t = Instant::now();
                std::thread::scope(|sc| {
                    for part in s.chunks(s.len().div_ceil(threads)) {
                        sc.spawn(move || black_box(read_sum(part)));
                    }
                });
                best = best.min(t.elapsed().as_secs_f64());
            }
        }
        out[k] = (slab * 8) as f64 / best / 1e9;
    }
    (out[0], out[1])
}

// ---------- test matrices ----------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Byte offsets of the f16 scale fields per block.
fn f16_fields(t: QType) -> &'static [usize] {
    match t {
        QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => &[0],
        QType::Q4_1 | QType::Q5_1 | QType::Q4_K | QType::Q5_K => &[0, 2],
        QType::Q2_K => &[80, 82],
        QType::Q3_K => &[108],
        QType::Q6_K => &[208],
        _ => &[],
    }
}

/// `len` bytes of valid `t` data (normal, moderate values: no NaN or
/// subnormal slow paths), as one random 1 MiB pattern repeated.
fn matrix_bytes(t: QType, len: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let pat_elems = (1 << 20) / t.block_bytes() * t.block_len();
    let pattern = match t {
        QType::F32 | QType::F16 | QType::BF16 => {
            let x: Vec<f32> = (0..pat_elems)
                .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                .collect();
            let mut out = Vec::new();
            moe_quant::quantize_row(t, &x, &mut out);
            out
        }
        _ => {
            let mut out: Vec<u8> = (0..pat_elems / t.block_len() * t.block_bytes())
                .map(|_| (rng.next() >> 56) as u8)
                .collect();
            for blk in out.chunks_exact_mut(t.block_bytes()) {
                for &o in f16_fields(t) {
                    let d = moe_quant::fp::f32_to_f16(0.001 + (rng.next() >> 54) as f32 * 1e-5);
                    blk[o..o + 2].copy_from_slice(&d.to_le_bytes());
                }
                if t == QType::MXFP4 {
                    // E8M0 exponent: scales 2^-8..2^-1.
                    blk[0] = 120 + (rng.next() >> 61) as u8;
                }
            }
            out
        }
    };
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let take = (len - out.len()).min(pattern.len());
        out.extend_from_slice(&pattern[..take]);
    }
    out
}

fn activations(t: QType, cols: usize) -> Vec<u8> {
    let mut rng = Rng(12345);
    let x: Vec<f32> = (0..cols)
        .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect();
    let at = t.vec_dot_type();
    let mut a = vec![0u8; at.row_bytes_usize(cols).unwrap()];
    moe_quant::quantize_activations(at, &x, &mut a);
    a
}

// ---------- matvec ----------

fn matvec_section(args: &Args, tiers: &[Tier]) {
    // (name, target bytes or 0 for a fixed shape, rows, cols)
    let sizes = [
        ("l2", 512usize << 10, 0usize, 4096usize),
        ("l3", 12 << 20, 0, 4096),
        ("dram", 0, 4096, 14336),
        // Qwen3-30B-A3B: the output matrix (152k short rows) and one
        // expert's gate/up (768 rows), cycled from DRAM as in decode.
        ("vocab", 0, 151_936, 2048),
        ("fine", 0, 768, 2048),
    ];
    let pools = [moe_quant::pool::Pool::new(1), moe_quant::pool::Pool::new(2)];
    println!("\n== matvec, GB/s of weight bytes (1T / 2T) ==");
    print!("{:<6} {:<5} {:>11}", "type", "size", "shape");
    for t in tiers {
        print!(" {:>15}", t.name());
    }
    println!();
    for t in QType::WEIGHT_TYPES.into_iter().filter(|&t| args.qtype(t)) {
        for (name, target, rows, cols) in sizes.into_iter().filter(|s| args.size(s.0)) {
            let rb = t.row_bytes_usize(cols).unwrap();
            let rows = if target > 0 {
                (target / rb / 16).max(1) * 16
            } else {
                rows
            };
            let mbytes = rb * rows;
            let copies = if matches!(name, "dram" | "vocab" | "fine") {
                DRAM_SPAN.div_ceil(mbytes)
            } else {
                1
            };
            let bytes = matrix_bytes(t, mbytes * copies);
            let mats: Vec<QMatrix> = bytes
                .chunks_exact(mbytes)
                .map(|b| QMatrix::new(t, rows, cols, b).unwrap())
                .collect();
            let act = activations(t, cols);
            let mut out = vec![0.0f32; rows];
            print!(
                "{:<6} {:<5} {:>11}",
                t.name(),
                name,
                format!("{rows}x{cols}")
            );
            for &tier in tiers {
                let mut gbs = [0.0; 2];
                for (k, p) in pools.iter().enumerate() {
                    let mut next = 0;
                    let secs = time_it(|| {
                        mats[next].matvec_on(p, tier, &act, &mut out);
                        black_box(&out);
                        next = (next + 1) % mats.len();
                    });
                    gbs[k] = mbytes as f64 / secs / 1e9;
                }
                print!(" {:>7.2}/{:<7.2}", gbs[0], gbs[1]);
            }
            println!();
        }
    }
}

// ---------- matrix-matrix (prompt batches) ----------

/// Tokens per batch in the matmul section.
const MATMUL_TOKENS: usize = 32;

/// A prompt batch of 32 tokens against an L2-sized 4096-column matrix, one
/// thread: `matmul` (4×4 tiles where the tier has them) against one
/// `matvec` per token, in multiply-adds per second.
fn matmul_section(args: &Args, tiers: &[Tier]) {
    let serial = moe_quant::pool::Pool::new(1);
    let n = MATMUL_TOKENS;
    println!("\n== matmul of {n} tokens, 1 thread, GMAC/s (matmul / {n} matvecs = speed-up) ==");
    print!("{:<6} {:>10}", "type", "shape");
    for t in tiers {
        print!(" {:>20}", t.name());
    }
    println!();
    for (t, size) in QType::WEIGHT_TYPES
        .into_iter()
        .filter(|&t| args.qtype(t))
        .flat_map(|t| ["l2", "dram"].map(|s| (t, s)))
        .filter(|&(_, s)| args.size(s))
    {
        let cols = 4096;
        let rb = t.row_bytes_usize(cols).unwrap();
        // L2: ~512 KiB of weights; DRAM: 4096 rows (a 7B model's wq).
        let rows = if size == "l2" { ((512 << 10) / rb / 16).max(1) * 16 } else { 4096 };
        let bytes = matrix_bytes(t, rb * rows);
        let m = QMatrix::new(t, rows, cols, &bytes).unwrap();
        let act = activations(t, cols);
        let acts = act.repeat(n);
        let mut out = vec![0.0f32; rows * n];
        print!("{:<6} {:>10}", t.name(), format!("{rows}x{cols}"));
        let macs = (rows * cols * n) as f64 / 1e9;
        for &tier in tiers {
            let mm = time_it(|| {
                m.matmul_with(tier, &acts, n, &mut out);
                black_box(&out);
            });
            let mv = time_it(|| {
                for o in out.chunks_exact_mut(rows) {
                    m.matvec_on(&serial, tier, &act, o);
                }
                black_box(&out);
            });
            print!(" {:>7.2}/{:<6.2} {:>4.2}x", macs / mm, macs / mv, mv / mm);
        }
        println!();
    }
}

/// A 512-token prompt batch against a 7B model's three matrix shapes (wq
/// 4096×4096, ffn_up 14336×4096, ffn_down 4096×14336) on the two-thread
/// compute pool, as `moe bench -p 512` runs them: GMAC/s. Only when named
/// (`pp512`): a few seconds per cell.
fn prompt_section(args: &Args, tiers: &[Tier]) {
    let n = 512;
    let shapes = [(4096usize, 4096usize), (14336, 4096), (4096, 14336)];
    let threads = moe_quant::pool::global().threads();
    println!("\n== matmul of {n} tokens, {threads} threads, GMAC/s per shape (rows x cols) ==");
    print!("{:<6} {:<8}", "type", "tier");
    for (r, c) in shapes {
        print!(" {:>12}", format!("{r}x{c}"));
    }
    println!();
    for t in QType::WEIGHT_TYPES.into_iter().filter(|&t| args.qtype(t)) {
        for &tier in tiers.iter().filter(|&&t| t >= Tier::Avx2) {
            print!("{:<6} {:<8}", t.name(), tier.name());
            for (rows, cols) in shapes {
                let bytes = matrix_bytes(t, t.row_bytes_usize(cols).unwrap() * rows);
                let m = QMatrix::new(t, rows, cols, &bytes).unwrap();
                let acts: Vec<u8> = (0..n).flat_map(|_| activations(t, cols)).collect();
                let mut out = vec![0.0f32; rows * n];
                let secs = time_it(|| {
                    m.matmul_with(tier, &acts, n, &mut out);
                    black_box(&out);
                });
                print!(" {:>12.2}", (rows * cols * n) as f64 / secs / 1e9);
            }
            println!();
        }
    }
}

// ---------- threading overhead at small sizes ----------

fn rayon_section(tiers: &[Tier]) {
    use rayon::prelude::*;
    let best = *tiers.last().unwrap();
    let p2 = pool(2);
    let spin2 = moe_quant::pool::Pool::new(2);
    println!("\n== threading overhead on small matrices ({best} kernels), µs per matvec, 2 threads ==");
    println!(
        "{:<6} {:>10} {:>9} {:>11} {:>11} {:>9}",
        "type", "shape", "serial", "rayon 2×4", "pool 2×4", "matvec"
    );
    // SmolLM2-135M shapes (576 hidden, 1536 FFN; its K-quant files keep
    // these in Q8_0/Q5_0 since 576 is not a multiple of 256), then larger ones.
    for t in [QType::Q8_0, QType::Q4_1, QType::Q4_0, QType::F16, QType::Q4_K, QType::Q6_K] {
        for (rows, cols) in [(576usize, 576usize), (1536, 576), (576, 1536), (1024, 1024), (4096, 4096)] {
            let Some(rb) = t.row_bytes_usize(cols) else {
                continue;
            };
            let bytes = matrix_bytes(t, rb * rows);
            let m = QMatrix::new(t, rows, cols, &bytes).unwrap();
            let act = activations(t, cols);
            let f = rows_dot_fn_for(best, t).unwrap();
            let mut out = vec![0.0f32; rows];
            let serial = time_it(|| {
                f(&bytes, rb, &act, cols, &mut out);
                black_box(&out);
            });
            // 8 chunks of rows, as `QMatrix::matvec` splits for 2 threads.
            let chunk = rows.div_ceil(8).next_multiple_of(4);
            let rayon = time_it(|| {
                p2.install(|| {
                    out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| f(&bytes[c * chunk * rb..], rb, &act, cols, o))
                })
            });
            let spin = time_it(|| spin2.for_each_slice_mut(&mut out, chunk, &|c, o| f(&bytes[c * chunk * rb..], rb, &act, cols, o)));
            let mv = time_it(|| m.matvec_with(best, &act, &mut out));
            println!(
                "{:<6} {:>10} {:>9.1} {:>11.1} {:>11.1} {:>9.1}",
                t.name(),
                format!("{rows}x{cols}"),
                serial * 1e6,
                rayon * 1e6,
                spin * 1e6,
                mv * 1e6
            );
        }
    }
}

fn main() {
    let args = Args::parse();
    let tiers: Vec<Tier> = available_tiers()
        .into_iter()
        .filter(|&t| args.tier(t))
        .collect();
    println!(
        "moe-quant kernels benchmark; tiers: {tiers:?}; rayon threads: {}",
        rayon::current_num_threads()
    );
    if args.section("bandwidth") {
        let (one, two) = bandwidth();
        println!("\n== memory read bandwidth (sum over 1 GiB, best 64 MiB slab) ==\n1 thread: {one:.2} GB/s, 2 threads: {two:.2} GB/s");
    }
    if args.section("rayon") {
        rayon_section(&tiers);
    }
    if args.section("matvec") {
        matvec_section(&args, &tiers);
    }
    if args.section("matmul") {
        // matmul runs on the global pool: one thread, as the matvecs here.
        moe_quant::pool::set_threads(1);
        matmul_section(&args, &tiers);
    }
    if args.section("pp512") {
        moe_quant::pool::set_threads(2);
        prompt_section(&args, &tiers);
    }
}
