//! Deterministic random weights. Our own generator (SplitMix64), so a seed
//! means the same bytes forever, whatever happens to the `rand` crate.
//!
//! Every row has its own stream, seeded from (seed, stream name, row), so
//! rows can be generated in parallel and an expert's slab is the same
//! whether it is written as its own tensor or inside a merged one.

use std::io::{self, Write};

use moe_quant::{quantize_row, QType};
use rayon::prelude::*;

/// SplitMix64's output function: a strong 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of a named stream (FNV-1a of the name, mixed with `seed`).
pub(crate) fn stream_seed(seed: u64, name: &str) -> u64 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    mix(seed ^ mix(h))
}

/// Values uniform in `center ± half_width`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Uniform {
    pub center: f32,
    pub half_width: f32,
}

impl Uniform {
    /// Weights that keep activations at about unit variance for rows of `ne0`.
    pub fn weights(ne0: u64) -> Uniform {
        Uniform { center: 0.0, half_width: (3.0 / ne0 as f32).sqrt() }
    }

    /// Row `row` of stream `stream`.
    pub fn fill(self, stream: u64, row: u64, dst: &mut [f32]) {
        let mut state = mix(stream ^ mix(row));
        for x in dst {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            // The top 24 bits give a uniform float in [0, 1).
            let u = (mix(state) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
            *x = self.center + self.half_width * (2.0 * u - 1.0);
        }
    }
}

/// Writes `n_rows` random rows of `ne0` elements quantized as `qtype`,
/// a batch of rows at a time (generated in parallel, written in order).
pub(crate) fn write_rows(
    out: &mut dyn Write,
    qtype: QType,
    ne0: u64,
    n_rows: u64,
    stream: u64,
    dist: Uniform,
) -> io::Result<()> {
    // About 4 MiB of f32 input per batch.
    let batch = ((1u64 << 20) / ne0).max(1);
    let mut start = 0;
    while start < n_rows {
        let end = (start + batch).min(n_rows);
        let rows: Vec<Vec<u8>> = (start..end)
            .into_par_iter()
            .map(|r| {
                let mut src = vec![0f32; ne0 as usize];
                dist.fill(stream, r, &mut src);
                let mut q = Vec::new();
                quantize_row(qtype, &src, &mut q);
                q
            })
            .collect();
        for r in rows {
            out.write_all(&r)?;
        }
        start = end;
    }
    Ok(())
}
