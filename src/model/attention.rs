//! Attention over the KV cache for one query position, with llama.cpp's
//! float summation orders, so that logits match it bit for bit on x86-64
//! (AVX-512 build):
//! - scores `q·k`: ggml's `ggml_vec_dot_f32` (4 × 16 FMA lanes per 64
//!   elements, tree-reduced, then FMA leftovers);
//! - softmax: [`softmax_padded`] (vector exp, 16-lane sums);
//! - values `Σ p·v`: in a prompt batch llama.cpp multiplies with llamafile's
//!   tinyBLAS (16 FMA lanes, one reduction); for a single token it uses
//!   `ggml_vec_dot_f32` over the KV length padded to 256 with zeros.

use super::fma::fma_dispatch;
use super::lanes::{fold64, reduce16};
use super::ops::softmax_padded;

/// How llama.cpp would evaluate this position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Part of a multi-token batch (prompt processing).
    Batch,
    /// A single-token decode step.
    Single,
}

fma_dispatch! {
    /// `ggml_vec_dot_f32` on AVX-512: whole 64-element steps go through four
    /// 16-lane FMA accumulators, which are tree-reduced; the rest is added with
    /// scalar FMAs.
    pub fn dot_f32(x: &[f32], y: &[f32]) -> f32 {
        let np = x.len() / 64 * 64;
        let mut acc = [0.0f32; 64];
        for (xs, ys) in x[..np].chunks_exact(64).zip(y[..np].chunks_exact(64)) {
            let (xs, ys): (&[f32; 64], &[f32; 64]) = (xs.try_into().expect("64"), ys.try_into().expect("64"));
            for i in 0..64 {
                acc[i] = xs[i].mul_add(ys[i], acc[i]);
            }
        }
        let mut sum = reduce16(&fold64(&acc));
        for (a, b) in x[np..].iter().zip(&y[np..]) {
            sum = a.mul_add(*b, sum);
        }
        sum
    }
}

/// Lane accumulators for [`weighted_values`]: 64 slots of `head_dim`
/// values, slot-major so that each position's update is one contiguous
/// vector FMA over the head dimension.
#[derive(Default)]
pub struct LaneScratch {
    lanes: Vec<f32>,
}

impl LaneScratch {
    pub fn new(head_dim: usize) -> LaneScratch {
        LaneScratch { lanes: vec![0.0; 64 * head_dim] }
    }
}

/// Per-thread buffers of [`attend_head`].
#[derive(Default)]
struct HeadScratch {
    scores: Vec<f32>,
    lanes: LaneScratch,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<HeadScratch> = std::cell::RefCell::new(HeadScratch::default());
}

/// One query head against positions `span` (`first..n_pos`; a sliding
/// window starts past 0) of its KV head: position t's key is
/// `keys[layout.at(t) ..][..head_dim]`, its value
/// likewise in `values`; a sink logit joins the softmax where given.
/// Writes the head's output to `out` (`head_dim` values). Positions before
/// the window score −∞, as llama.cpp's mask makes them. Scratch is per
/// thread, so heads can run in parallel; it is sized for `n_ctx` positions
/// at first use, so that a growing context does not reallocate it (decode
/// steps allocate nothing; the memory plan counts it).
#[allow(clippy::too_many_arguments)]
pub fn attend_head(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    layout: ValueLayout,
    span: std::ops::Range<usize>,
    sink: Option<f32>,
    n_ctx: usize,
    out: &mut [f32],
    mode: Mode,
) {
    let (first, n_pos) = (span.start, span.end);
    let hd = q.len();
    let scale = 1.0 / (hd as f32).sqrt();
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        if s.scores.len() < n_pos {
            s.scores.resize(n_ctx.max(n_pos), 0.0);
        }
        if s.lanes.lanes.len() < 64 * hd {
            s.lanes = LaneScratch::new(hd);
        }
        let scores = &mut s.scores[..n_pos];
        scores[..first].fill(f32::NEG_INFINITY);
        for (t, sc) in scores.iter_mut().enumerate().skip(first) {
            let k = &keys[layout.at(t)..][..hd];
            *sc = dot_f32(k, q) * scale;
        }
        weighted_values(scores, first, sink, values, layout, out, mode, &mut s.lanes);
    })
}

/// Where one head's value vectors are: position t's vector is
/// `cache[offset + (t mod wrap)·stride ..][..head_dim]` (`wrap`: the
/// positions a sliding-window layer's ring holds, else any bound above
/// the context).
#[derive(Debug, Clone, Copy)]
pub struct ValueLayout {
    pub offset: usize,
    pub stride: usize,
    pub wrap: usize,
}

impl ValueLayout {
    /// Positions at `offset + t·stride`, no ring.
    pub fn contiguous(offset: usize, stride: usize) -> ValueLayout {
        ValueLayout { offset, stride, wrap: usize::MAX }
    }

    /// Where position t's vector starts.
    #[inline(always)]
    pub fn at(&self, t: usize) -> usize {
        self.offset + (t % self.wrap) * self.stride
    }
}

fma_dispatch! {
    /// One head's attention output: `out[d] = Σ_t p[t]·v[t][d]` over positions
    /// `0..scores.len()`, where `scores` holds `q·k_t · scale` on entry (−∞
    /// before `first`, whose weights are 0 and skipped) and the
    /// probabilities on return; `sink` joins the softmax.
    #[allow(clippy::too_many_arguments)]
    pub fn weighted_values(
        scores: &mut [f32],
        first: usize,
        sink: Option<f32>,
        cache: &[f32],
        layout: ValueLayout,
        out: &mut [f32],
        mode: Mode,
        scratch: &mut LaneScratch,
    ) {
        softmax_padded(scores, sink);
        let hd = out.len();
        // tinyBLAS (batch): lane = t mod 16, one reduction. ggml_vec_dot_f32
        // (single) over the zero-padded length: slot t mod 64, folded, reduced.
        let slots = if mode == Mode::Batch { 16 } else { 64 };
        let acc = &mut scratch.lanes[..slots * hd];
        acc.fill(0.0);
        for (t, &p) in scores.iter().enumerate().skip(first) {
            let slot = &mut acc[(t % slots) * hd..][..hd];
            let v = &cache[layout.at(t)..][..hd];
            for (a, &vi) in slot.iter_mut().zip(v) {
                *a = vi.mul_add(p, *a);
            }
        }
        // The reduction of each output's slots, done for all outputs at once
        // with row operations (row s holds slot s of every output). Single:
        // fold64 first, in place into rows 0..16 (row i < 16 reads rows i,
        // 16 + i, 32 + i, 48 + i, and only rows below 16 are written).
        if mode == Mode::Single {
            let (low, high) = acc.split_at_mut(16 * hd);
            for i in 0..16 {
                let r = &mut low[i * hd..(i + 1) * hd];
                let b = &high[(16 + i) * hd..(17 + i) * hd];
                let c = &high[i * hd..(i + 1) * hd];
                let d = &high[(32 + i) * hd..(33 + i) * hd];
                for k in 0..hd {
                    r[k] = (r[k] + b[k]) + (c[k] + d[k]);
                }
            }
        }
        let rows: [&[f32]; 16] = core::array::from_fn(|s| &acc[s * hd..(s + 1) * hd]);
        reduce16_rows(&rows, out);
    }
}

/// `out[k] = reduce16(rows[0][k], …, rows[15][k])` for every k.
#[inline(always)]
fn reduce16_rows(rows: &[&[f32]; 16], out: &mut [f32]) {
    for (k, o) in out.iter_mut().enumerate() {
        let t: [f32; 8] = core::array::from_fn(|i| rows[i][k] + rows[i + 8][k]);
        let q = [t[0] + t[4], t[1] + t[5], t[2] + t[6], t[3] + t[7]];
        let p = [q[0] + q[2], q[1] + q[3]];
        *o = p[0] + p[1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], y: &[f32]) -> f64 {
        x.iter().zip(y).map(|(a, b)| *a as f64 * *b as f64).sum()
    }

    #[test]
    fn dot_f32_is_a_dot_product_at_odd_lengths() {
        for n in [1usize, 3, 63, 64, 65, 127, 128, 200] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 17) as f32 - 8.0) * 0.37).collect();
            let y: Vec<f32> = (0..n).map(|i| ((i * 11 % 13) as f32 - 6.0) * 0.11).collect();
            let got = dot_f32(&x, &y) as f64;
            let want = naive(&x, &y);
            let mag: f64 = x.iter().zip(&y).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
            assert!((got - want).abs() <= 1e-6 * mag.max(1.0), "n={n}: {got} vs {want}");
        }
    }

    #[test]
    fn weighted_values_both_modes_equal_the_definition() {
        let hd = 8;
        let n = 70;
        let vals: Vec<Vec<f32>> = (0..n).map(|t| (0..hd).map(|d| ((t * 7 + d * 3) % 11) as f32 * 0.1 - 0.5).collect()).collect();
        let flat: Vec<f32> = vals.concat();
        let raw: Vec<f32> = (0..n).map(|t| ((t * 5 % 9) as f32) * 0.3).collect();
        let max = raw.iter().copied().fold(f32::MIN, f32::max) as f64;
        let e: Vec<f64> = raw.iter().map(|&s| (s as f64 - max).exp()).collect();
        let z: f64 = e.iter().sum();
        let mut scratch = LaneScratch::new(hd);
        for mode in [Mode::Batch, Mode::Single] {
            let mut scores = raw.clone();
            let mut out = vec![0.0f32; hd];
            weighted_values(&mut scores, 0, None, &flat, ValueLayout::contiguous(0, hd), &mut out, mode, &mut scratch);
            for d in 0..hd {
                let want: f64 = (0..n).map(|t| e[t] / z * vals[t][d] as f64).sum();
                assert!((out[d] as f64 - want).abs() < 1e-5, "{mode:?} d={d}: {} vs {want}", out[d]);
            }
        }
    }
}
