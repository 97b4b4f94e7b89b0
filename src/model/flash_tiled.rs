//! Attention over an f16 KV cache in the float order of llama.cpp's tiled
//! CPU flash attention (`ggml_compute_forward_flash_attn_ext_tiled`), the
//! path it takes for a micro-batch of 64+ tokens over an f16 cache, i.e.
//! for every prompt of 64 tokens or more at its default `-ub 512`. We take
//! it for every batch size, decode steps included, so that a token's
//! logits never depend on how its batch was split. Per query row:
//!
//! - positions in tiles of [`KV_TILE`] from 0; the query stays f32;
//! - `s = (Σ_d k_t[d]·q[d]) · scale`, the sum one FMA after another in
//!   dimension order (ggml's `simd_gemm`, positions in the vector lanes);
//! - per tile: its maximum m_t; if it raises the running maximum M, the
//!   f32 accumulator and the sum S are scaled by `expf(M − M_new)`;
//!   then `p = exp(s − M)` with ggml's vector exp (`ggml_v_expf`, our
//!   [`vexp`]), the tile's sum as `ggml_vec_soft_max_f32` takes it on
//!   AVX-512 (four 16-lane reductions added in f64, masked lanes 0),
//!   `S = f32(f64(S) + sum)`;
//! - `acc[d] = fma(v_t[d], p_t, acc[d])` one position after another;
//! - with a sink logit (gpt-oss), `ggml_compute_forward_flash_attn_ext`'s
//!   correction: if it exceeds M, acc is scaled by `expf(M − sink)` and
//!   `S = fma(S, that, 1)`, else `S = fma(S, 1, expf(sink − M))`;
//! - finally `out = acc · (1/S)`.
//!
//! A query of a sliding-window layer masks the positions before its
//! window (−∞ scores, weights 0: exactly what llama.cpp's mask gives);
//! tiles wholly before every query's window are skipped.
//!
//! No f16 rounding on the way (one_chunk, llama.cpp's path for smaller
//! batches and decode, keeps an f16 accumulator): both products are plain
//! FMA chains, which vector kernels run at full width, one position per
//! lane for the scores and one dimension per lane for the values.

use half::f16;

use super::attention::ValueLayout;
use super::kv_cache::{KeyTiles, KEY_TILE};
use super::fma::fma_dispatch;
use super::lanes::reduce16;
use super::ops::vexp;

/// Positions per tile (`GGML_FA_TILE_KV`): the cache's key tiles.
pub const KV_TILE: usize = KEY_TILE;

/// Per query, beside its positions `0..n_pos`: the first position it sees
/// (a sliding window; empty: 0) and the sink logit that joins its softmax
/// (empty: none).
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowSinks<'a> {
    pub first: &'a [usize],
    pub sinks: &'a [f32],
}

impl WindowSinks<'_> {
    /// The first tile any query sees, as a position.
    pub fn first_tile(&self) -> usize {
        self.first.iter().copied().min().unwrap_or(0) / KV_TILE * KV_TILE
    }

    /// Query g's scores of the tile at `t0` before its window become −∞.
    #[inline(always)]
    pub fn mask(&self, g: usize, t0: usize, p: &mut [f32]) {
        if let Some(&first) = self.first.get(g) {
            let before = first.saturating_sub(t0).min(KV_TILE);
            p[..before].fill(f32::NEG_INFINITY);
        }
    }

    /// Query g's accumulator `acc` (running maximum `m`, sum `s`) with its
    /// sink, divided by the sum, into `out`.
    #[inline(always)]
    pub fn finish(&self, g: usize, acc: &mut [f32], m: f32, mut s: f32, out: &mut [f32]) {
        if let Some(&sink) = self.sinks.get(g) {
            s = add_sink(acc, m, s, sink);
        }
        normalize(acc, s, out);
    }
}

/// ggml's sink correction of one query's accumulator and sum (the flash
/// paths' `if (s > M) … S = S*ms + vs`); returns the new sum.
#[inline(always)]
pub fn add_sink(acc: &mut [f32], m: f32, s: f32, sink: f32) -> f32 {
    let (mut ms, mut vs) = (1.0f32, 1.0f32);
    if sink > m {
        ms = (m - sink).exp();
        for a in acc.iter_mut() {
            *a *= ms;
        }
    } else {
        vs = (sink - m).exp();
    }
    s.mul_add(ms, vs)
}

/// The first half of [`tile_softmax`], shared by the kernels: the tile's
/// maximum; `None` when every score is −∞; else the new running maximum
/// (stored in `m`) and the factor `ms` by which the old sum (here) and
/// accumulator (by the caller) are scaled, 1 when the maximum stays.
#[inline(always)]
pub fn tile_rescale(p: &[f32; KV_TILE], m: &mut f32, s: &mut f32) -> Option<(f32, f32)> {
    let tile_max = p.iter().fold(f32::NEG_INFINITY, |a, &x| if a > x { a } else { x });
    if tile_max == f32::NEG_INFINITY {
        return None;
    }
    let m_new = m.max(tile_max);
    let mut ms = 1.0;
    if m_new > *m {
        ms = (*m - m_new).exp();
        *s *= ms;
    }
    *m = m_new;
    Some((m_new, ms))
}

/// One tile's softmax bookkeeping for one query: the running maximum and
/// sum, updated from the tile's scores (`p`, [`KV_TILE`] values, masked
/// lanes −∞), which become the tile's weights. Returns the factor by which
/// the accumulator must first be scaled (1 when the maximum stays), or
/// `None` when every score is −∞ (the tile adds nothing).
#[inline(always)]
pub fn tile_softmax(p: &mut [f32; KV_TILE], m: &mut f32, s: &mut f32) -> Option<f32> {
    let (m_new, ms) = tile_rescale(p, m, s)?;
    let mut sum = 0.0f64;
    for lanes in p.chunks_exact_mut(16) {
        for x in lanes.iter_mut() {
            *x = vexp(*x - m_new);
        }
        let lanes: &[f32; 16] = (&*lanes).try_into().expect("16 lanes");
        sum += reduce16(lanes) as f64;
    }
    *s = (*s as f64 + sum) as f32;
    Some(ms)
}

/// The scores' factor, 1/√head_dim.
fn score_scale(head_dim: usize) -> f32 {
    1.0 / (head_dim as f32).sqrt()
}

/// `out · (1/S)`, or 0 where S is 0 (`ggml_vec_scale_f32` by `S_inv`).
#[inline(always)]
pub fn normalize(acc: &[f32], s: f32, out: &mut [f32]) {
    let inv = if s == 0.0 { 0.0 } else { 1.0 / s };
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = a * inv;
    }
}

fma_dispatch! {
    /// The order above for one query `q` (f32) against positions
    /// `first..n_pos` of an f16 cache (keys in tiles, values as in
    /// [`super::attention::attend_head`]), with an optional sink; `acc`
    /// is scratch of `q.len()` values.
    pub fn attend_row_reference(q: &[f32], head: HeadCache<'_>, first: usize, n_pos: usize, sink: Option<f32>, acc: &mut [f32], out: &mut [f32]) {
        let HeadCache { keys, values, tiles, layout } = head;
        let hd = q.len();
        let scale = score_scale(hd);
        acc.fill(0.0);
        let (mut m, mut s) = (f32::NEG_INFINITY, 0.0f32);
        let mut p = [0.0f32; KV_TILE];
        for t0 in (first / KV_TILE * KV_TILE..n_pos).step_by(KV_TILE) {
            let len = KV_TILE.min(n_pos - t0);
            for (i, pi) in p.iter_mut().enumerate() {
                *pi = if i < len && t0 + i >= first {
                    let mut dot = 0.0f32;
                    for (d, &qd) in q.iter().enumerate() {
                        dot = f16::from_bits(keys[tiles.at(t0 + i, d)]).to_f32().mul_add(qd, dot);
                    }
                    dot * scale
                } else {
                    f32::NEG_INFINITY
                };
            }
            // A tile of −∞ scores adds weights of 0 (ggml zeroes its row).
            let ms = tile_softmax(&mut p, &mut m, &mut s).unwrap_or_else(|| {
                p.fill(0.0);
                1.0
            });
            if ms != 1.0 {
                for a in acc.iter_mut() {
                    *a *= ms;
                }
            }
            for (i, &pi) in p[..len].iter().enumerate() {
                let v = &values[layout.at(t0 + i)..][..hd];
                for (a, &vd) in acc.iter_mut().zip(v) {
                    *a = f16::from_bits(vd).to_f32().mul_add(pi, *a);
                }
            }
        }
        if let Some(sink) = sink {
            s = add_sink(acc, m, s, sink);
        }
        normalize(acc, s, out);
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// One KV head of an all-f16 cache, as attention reads it: keys in tiles,
/// values position-major.
#[derive(Clone, Copy)]
pub struct HeadCache<'a> {
    pub keys: &'a [u16],
    pub values: &'a [u16],
    pub tiles: KeyTiles,
    pub layout: ValueLayout,
}

/// Queries of one KV head (`q`: `out.len() / head_dim` queries of
/// `head_dim` values), query i against positions `first[i]..n_pos[i]` of
/// an f16 cache (`ws`: windows and sinks); writes
/// `head_dim` outputs per query, each in the order above. Queries that
/// share the head share each tile's conversion: the more, the cheaper.
/// Runs a vector kernel where the CPU and head size have one; it gives
/// the reference's bits.
pub fn attend_group(q: &[f32], n_pos: &[usize], ws: WindowSinks<'_>, head: HeadCache<'_>, head_dim: usize, out: &mut [f32]) {
    attend_with(kernel(head_dim), q, n_pos, ws, head, head_dim, out)
}

fn attend_with(kernel: Option<Kernel>, q: &[f32], n_pos: &[usize], ws: WindowSinks<'_>, head: HeadCache<'_>, head_dim: usize, out: &mut [f32]) {
    let n = q.len() / head_dim.max(1);
    assert!(head_dim > 0 && q.len().is_multiple_of(head_dim) && out.len() == q.len() && n_pos.len() == n, "attention: {} query values, head size {head_dim}, {} lengths", q.len(), n_pos.len());
    assert!(ws.first.is_empty() || ws.first.len() == n, "attention: {} windows for {n} queries", ws.first.len());
    assert!(ws.sinks.is_empty() || ws.sinks.len() == n, "attention: {} sinks for {n} queries", ws.sinks.len());
    let scale = score_scale(head_dim);
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        match kernel {
            Some(kernel) => kernel(q, n_pos, ws, head, head_dim, scale, s, out),
            None => {
                s.acc.resize(head_dim, 0.0);
                for (g, ((qg, og), &n)) in q.chunks_exact(head_dim).zip(out.chunks_exact_mut(head_dim)).zip(n_pos).enumerate() {
                    let first = ws.first.get(g).copied().unwrap_or(0);
                    attend_row_reference(qg, head, first, n, ws.sinks.get(g).copied(), &mut s.acc, og);
                }
            }
        }
    })
}

/// The kernel for this CPU's tier and head size: an x86 one for head
/// sizes that are whole multiples of 64 up to 256, the portable one
/// otherwise (the scalar tier, `MOE_QUANT_TIER=scalar`, runs the
/// reference itself).
fn kernel(head_dim: usize) -> Option<Kernel> {
    let tier = moe_quant::dispatch::tier();
    #[cfg(target_arch = "x86_64")]
    if head_dim.is_multiple_of(64) && head_dim <= 256 {
        match tier {
            moe_quant::Tier::Avx512Vnni => return Some(super::flash_tiled_simd::avx512),
            moe_quant::Tier::Avx2 => return Some(super::flash_tiled_simd::avx2),
            _ => {}
        }
    }
    (tier != moe_quant::Tier::Scalar).then_some(super::flash_tiled_portable::portable as Kernel)
}

/// A vector kernel: [`attend_group`]'s arguments, with the scale and the
/// per-thread scratch.
pub type Kernel = fn(q: &[f32], n_pos: &[usize], ws: WindowSinks<'_>, head: HeadCache<'_>, head_dim: usize, scale: f32, scratch: &mut Scratch, out: &mut [f32]);

/// A kernel's per-thread buffers: one tile's keys (f32, dimension-major as
/// stored), its values (f32, position-major), and each query's
/// accumulator.
#[derive(Default)]
pub struct Scratch {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
    pub acc: Vec<f32>,
    pub m: Vec<f32>,
    pub s: Vec<f32>,
    /// Each query's scores, then weights, for one tile.
    pub p: Vec<f32>,
}

impl Scratch {
    /// Sized for `n` queries of head size `hd` with `p_len` score lanes,
    /// accumulators zero, running maxima −∞ and sums 0.
    pub fn prepare(&mut self, n: usize, hd: usize, p_len: usize) {
        self.keys.resize(hd * KV_TILE, 0.0);
        self.values.resize(KV_TILE * hd, 0.0);
        self.acc.clear();
        self.acc.resize(n * hd, 0.0);
        self.m.clear();
        self.m.resize(n, f32::NEG_INFINITY);
        self.s.clear();
        self.s.resize(n, 0.0);
        self.p.resize(p_len, 0.0);
    }
}

/// The kernel of a given tier, for tests; None where the CPU lacks it.
#[cfg(test)]
fn kernel_of(tier: moe_quant::Tier) -> Option<Kernel> {
    #[cfg(target_arch = "x86_64")]
    if tier.is_available() {
        match tier {
            moe_quant::Tier::Avx512Vnni => return Some(super::flash_tiled_simd::avx512),
            moe_quant::Tier::Avx2 => return Some(super::flash_tiled_simd::avx2),
            _ => {}
        }
    }
    (tier == moe_quant::Tier::Portable).then_some(super::flash_tiled_portable::portable as Kernel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// The vector kernels give the reference's bits: head sizes 64..256,
    /// position counts around the tile size, groups of 1 to 9 queries, a
    /// strided layout, scores that set new maxima late (ramps) and spread
    /// widely (weights that underflow to subnormals and 0).
    #[test]
    fn vector_kernels_equal_the_reference_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut checked = 0;
        for tier in [moe_quant::Tier::Portable, moe_quant::Tier::Avx2, moe_quant::Tier::Avx512Vnni] {
            let Some(kernel) = kernel_of(tier) else {
                eprintln!("tiled kernels: {tier} not on this CPU, skipped");
                continue;
            };
            let odd: &[(usize, usize, usize, usize)] = if tier == moe_quant::Tier::Portable { &[(32, 70, 2, 3), (80, 129, 1, 2), (96, 64, 3, 1), (8, 5, 1, 4)] } else { &[] };
            for &(hd, n_pos, heads, group) in [(64, 1, 1, 1), (64, 37, 3, 3), (64, 64, 1, 4), (64, 65, 2, 5), (64, 300, 1, 9), (128, 200, 2, 4), (128, 513, 1, 1), (128, 127, 2, 3), (192, 19, 1, 2), (256, 70, 2, 1)].iter().chain(odd) {
                for gain in [0.5f32, 4.0, 40.0] {
                    let stride = hd * heads;
                    let q: Vec<f32> = (0..group * hd).map(|_| rng.random_range(-1.0..1.0) * gain).collect();
                    // Keys rise with the position (late new maxima); the
                    // lanes past n_pos in the last tile hold junk.
                    let tiles = KeyTiles { offset: hd * KV_TILE * (heads - 1), tile_stride: KV_TILE * stride, wrap: usize::MAX };
                    let mut keys: Vec<u16> = (0..n_pos.div_ceil(KV_TILE) * KV_TILE * stride).map(|_| f16::from_f32(rng.random_range(-9.0f32..9.0)).to_bits()).collect();
                    for t in 0..n_pos {
                        for d in 0..hd {
                            keys[tiles.at(t, d)] = f16::from_f32(rng.random_range(-1.0f32..1.0) + t as f32 * 0.01 * gain).to_bits();
                        }
                    }
                    let values: Vec<u16> = (0..n_pos * stride).map(|_| f16::from_f32(rng.random_range(-3.0..3.0)).to_bits()).collect();
                    let layout = ValueLayout::contiguous(hd * (heads - 1), stride);
                    let (mut want, mut got) = (vec![0.0f32; group * hd], vec![0.0f32; group * hd]);
                    // Consecutive tokens' queries: a group each, one more position each.
                    let lens: Vec<usize> = (0..group).map(|g| n_pos.saturating_sub(group - 1 - g).max(1)).collect();
                    let head = HeadCache { keys: &keys, values: &values, tiles, layout };
                    attend_with(None, &q, &lens, WindowSinks::default(), head, hd, &mut want);
                    attend_with(Some(kernel), &q, &lens, WindowSinks::default(), head, hd, &mut got);
                    assert_eq!(bits(&got), bits(&want), "{tier} hd={hd} n_pos={n_pos} group={group} gain={gain}");
                    // A sliding window (tiles wholly and partly before it)
                    // and sinks both above and below the scores' maximum.
                    let first: Vec<usize> = lens.iter().map(|&n| n.saturating_sub(70)).collect();
                    let sinks: Vec<f32> = (0..group).map(|_| rng.random_range(-3.0..3.0) * gain).collect();
                    let ws = WindowSinks { first: &first, sinks: &sinks };
                    attend_with(None, &q, &lens, ws, head, hd, &mut want);
                    attend_with(Some(kernel), &q, &lens, ws, head, hd, &mut got);
                    assert_eq!(bits(&got), bits(&want), "{tier} hd={hd} n_pos={n_pos} group={group} gain={gain}, window and sinks");
                    checked += 1;
                }
            }
        }
        eprintln!("tiled kernels: {checked} shapes checked");
    }

    /// The reference against attention computed in f64 from the same f16
    /// keys and values (the order only moves the last bits).
    #[test]
    fn tiled_attention_is_softmax_weighted_values() {
        let (hd, n) = (64, 150);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let q: Vec<f32> = (0..hd).map(|_| rng.random_range(-2.0..2.0)).collect();
        let kb: Vec<u16> = (0..n * hd).map(|_| f16::from_f32(rng.random_range(-1.0..1.0)).to_bits()).collect();
        let vb: Vec<u16> = (0..n * hd).map(|_| f16::from_f32(rng.random_range(-1.0..1.0)).to_bits()).collect();
        let tiles = KeyTiles { offset: 0, tile_stride: KV_TILE * hd, wrap: usize::MAX };
        let mut tiled = vec![0u16; n.div_ceil(KV_TILE) * KV_TILE * hd];
        for t in 0..n {
            for d in 0..hd {
                tiled[tiles.at(t, d)] = kb[t * hd + d];
            }
        }
        let h2f = |b: u16| f16::from_bits(b).to_f32() as f64;
        let head = HeadCache { keys: &tiled, values: &vb, tiles, layout: ValueLayout::contiguous(0, hd) };
        let scale = 1.0 / (hd as f64).sqrt();
        let s: Vec<f64> = (0..n).map(|t| (0..hd).map(|d| q[d] as f64 * h2f(kb[t * hd + d])).sum::<f64>() * scale).collect();
        // Whole context; a window of the last 80 positions with a sink
        // (a logit of its own in the softmax's denominator only).
        for (first, sink) in [(0usize, None), (n - 80, Some(1.5f32))] {
            let mut out = vec![0.0f32; hd];
            let (fs, ss) = ([first], sink.map(|x| [x]));
            let ws = WindowSinks { first: &fs, sinks: ss.as_ref().map_or(&[], |x| &x[..]) };
            attend_with(None, &q, &[n], ws, head, hd, &mut out);
            let max = s[first..].iter().copied().chain(sink.map(|x| x as f64)).fold(f64::MIN, f64::max);
            let z: f64 = s[first..].iter().map(|x| (x - max).exp()).sum::<f64>() + sink.map_or(0.0, |x| (x as f64 - max).exp());
            for d in 0..hd {
                let want: f64 = (first..n).map(|t| (s[t] - max).exp() / z * h2f(vb[t * hd + d])).sum();
                assert!((out[d] as f64 - want).abs() < 1e-5, "first {first}, sink {sink:?}, d={d}: {} vs {want}", out[d]);
            }
        }
    }
}
