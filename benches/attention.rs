//! The f16 attention kernel alone (`moe::model::attend_group_f16`, the
//! flash attention the forward pass runs over an f16 KV cache, in
//! llama.cpp's tiled order), on one thread: GFLOP/s for the query heads of
//! one KV head against n positions, for one token (a decode step) and for
//! a chunk of 16 consecutive tokens (a prompt: the forward pass's chunk,
//! which shares each tile's conversion), and the same figure as a share of
//! this core's f32 FMA peak (measured here with independent FMA chains).
//! Prints figures; asserts nothing about time.
//!
//! cargo bench --bench attention [-- --reps N]

use std::time::Instant;

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use moe::model::attention::ValueLayout;
use moe::model::{attend_group_f16, HeadCache, KeyTiles, WindowSinks, KEY_TILE};

/// 16 independent FMA chains in the CPU's widest vectors, `steps` long:
/// enough of them to hide the FMA latency. Returns a lane, so the work is
/// not optimised away.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn chains_avx512(steps: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(std::hint::black_box(0.999_999)), _mm512_set1_ps(std::hint::black_box(1e-7)));
    let mut acc = [_mm512_set1_ps(1.0); 16];
    for _ in 0..steps {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chains_avx2(steps: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(std::hint::black_box(0.999_999)), _mm256_set1_ps(std::hint::black_box(1e-7)));
    let mut acc = [_mm256_set1_ps(1.0); 16];
    for _ in 0..steps {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut lanes = [0.0f32; 8];
    let mut total = 0.0;
    for v in acc {
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        total += lanes.iter().sum::<f32>();
    }
    total
}

/// Single-thread f32 FMA throughput in GFLOP/s, in the widest vectors this
/// CPU has (the attention kernels' own tier); 0 where it has no FMA.
fn fma_peak() -> f64 {
    let steps = 20_000_000u64;
    let t = Instant::now();
    #[cfg(target_arch = "x86_64")]
    let lanes = if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512 F (and FMA, which every AVX-512 CPU has) detected.
        std::hint::black_box(unsafe { chains_avx512(steps) });
        16.0
    } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA detected.
        std::hint::black_box(unsafe { chains_avx2(steps) });
        8.0
    } else {
        0.0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let lanes = 0.0;
    // 16 chains × lanes × 2 flops per step.
    steps as f64 * 16.0 * lanes * 2.0 / t.elapsed().as_secs_f64() / 1e9
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let reps = std::env::args().skip_while(|a| a != "--reps").nth(1).and_then(|v| v.parse().ok()).unwrap_or(5usize);
    let peak = fma_peak();
    println!("single-thread f32 FMA peak: {peak:.1} GFLOP/s");
    println!("| head size | tokens × queries | positions | µs per call | GFLOP/s | of peak |");
    println!("|---|---|---|---|---|---|");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut next = move || rng.random_range(-0.5f32..0.5);
    // SmolLM2 (64, 3 per KV head), Mistral/Mixtral (128, 4), Qwen3 (128, 8).
    for (hd, group) in [(64usize, 3usize), (128, 4), (128, 8)] {
        for n_pos in [512usize, 2048, 8192] {
            // One KV head: keys in tiles of 64 positions, values by position.
            let keys: Vec<u16> = (0..n_pos.div_ceil(KEY_TILE) * KEY_TILE * hd).map(|_| f16::from_f32(next()).to_bits()).collect();
            let values: Vec<u16> = (0..n_pos * hd).map(|_| f16::from_f32(next()).to_bits()).collect();
            let head = HeadCache { keys: &keys, values: &values, tiles: KeyTiles { offset: 0, tile_stride: KEY_TILE * hd, wrap: usize::MAX }, layout: ValueLayout::contiguous(0, hd) };
            for tokens in [1usize, 16] {
                let q: Vec<f32> = (0..tokens * group * hd).map(|_| next()).collect();
                // The last `tokens` positions' queries, causal.
                let lens: Vec<usize> = (0..tokens).flat_map(|j| std::iter::repeat_n(n_pos - tokens + 1 + j, group)).collect();
                let mut out = vec![0.0f32; q.len()];
                let calls = (4_000_000 / (n_pos * group * tokens)).max(1);
                let mut times = Vec::new();
                for _ in 0..reps {
                    let t = Instant::now();
                    for _ in 0..calls {
                        attend_group_f16(&q, &lens, WindowSinks::default(), head, hd, &mut out);
                    }
                    times.push(t.elapsed().as_secs_f64() / calls as f64);
                }
                let secs = median(&mut times);
                // Scores (q·k) and values (w·v): 2 flops per element each.
                let flops = lens.iter().map(|&n| n * hd * 4).sum::<usize>() as f64;
                let gflops = flops / secs / 1e9;
                let share = if peak > 0.0 { format!("{:.0}%", 100.0 * gflops / peak) } else { "–".into() };
                println!("| {hd} | {tokens} × {group} | {n_pos} | {:.1} | {gflops:.1} | {share} |", secs * 1e6);
            }
        }
    }
}
