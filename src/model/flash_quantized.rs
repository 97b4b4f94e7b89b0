//! Attention over a KV cache with a Q8_0 side (llama.cpp's `-ctk q8_0`
//! and/or `-ctv q8_0`) in the float order of llama.cpp's CPU flash
//! attention (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`). For a
//! quantized cache llama.cpp runs that per-row loop at every batch size and
//! context length (its tiled and split-KV paths take f16/f32 caches only),
//! so these results are its bits everywhere. Per query row:
//!
//! - the query is converted to the key type's dot type: rounded to f16 for
//!   f16 keys, `quantize_row_q8_0` for Q8_0 keys; then
//!   `s = vec_dot(k_t, q)·scale` (`ggml_vec_dot_f16` or
//!   `ggml_vec_dot_q8_0_q8_0`);
//! - online softmax over positions in order: on a new maximum M the
//!   accumulator is scaled by `expf(M_old − M)`, otherwise the weight is
//!   `w = expf(s − M)`; then `acc = fma(v_t, w, acc)`, with `v_t`
//!   dequantized (Q8_0 values, f32 accumulator) or converted (f16 values:
//!   an f16 accumulator, every update rounded back to f16 as
//!   `ggml_vec_mad_f16` and `ggml_vec_scale_f16` do);
//! - `S = fma(S, ms, w)`; with a sink logit (gpt-oss), the correction of
//!   [`super::flash_tiled::add_sink`]; finally `out = acc · (1/S)`.
//!
//! Positions before a sliding window are skipped, as ggml skips a −∞
//! mask.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use moe_quant::{dequantize_row, quantize_activations, QType};

use super::attention::ValueLayout;
use super::fma::fma_dispatch;
use super::lanes::{fold64, reduce16};
use super::flash_tiled::add_sink;
use super::kv_cache::q8_0_layout;

/// One side of the cache as attention reads it.
#[derive(Clone, Copy)]
pub enum Side<'a> {
    /// f16 bits, laid out in values.
    F16(&'a [u16]),
    /// Q8_0 blocks, laid out in values (turned into bytes here).
    Q8_0(&'a [u8]),
}

/// Per-thread buffers.
#[derive(Default)]
struct Scratch {
    /// Each query as the keys' dot type: f16 values held in f32 ...
    qf: Vec<f32>,
    /// ... or Q8_0 blocks.
    qq: Vec<u8>,
    bits: Vec<u16>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Each query's accumulator and sum.
    acc: Vec<f32>,
    sum: Vec<f32>,
    /// Each query's scores (`n_pos` apiece), then its softmax factors
    /// ([`online_weights`]): its new-maximum positions are
    /// `new_max[bounds[i]..bounds[i + 1]]`, `next[i]` the index in those
    /// of the first not yet passed.
    scores: Vec<f32>,
    new_max: Vec<u32>,
    /// Each query's final maximum (for its sink).
    maxes: Vec<f32>,
    bounds: Vec<usize>,
    next: Vec<usize>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The query heads of one KV head (`q`: `out.len() / head_dim` queries)
/// against positions `span` (`first..n_pos`), each with its sink where
/// `sinks` is given (layout as in
/// [`super::attention::attend_head`], in values); `head_dim` outputs per
/// query. `head_dim` is a multiple of 32 (checked when the cache is made).
/// Positions are the outer loop, so each key and value row is converted
/// once for all the queries; each query's arithmetic is the per-row loop
/// above, its scores all taken first so that its `expf`s run vectorized
/// ([`online_weights`], with libm's bits).
#[allow(clippy::too_many_arguments)]
pub fn attend_group_quantized(
    q: &[f32],
    keys: Side<'_>,
    values: Side<'_>,
    layout: ValueLayout,
    hd: usize,
    span: std::ops::Range<usize>,
    sinks: Option<&[f32]>,
    out: &mut [f32],
) {
    let (first, n_pos) = (span.start, span.end);
    assert!(hd > 0 && hd.is_multiple_of(32) && q.len().is_multiple_of(hd) && out.len() == q.len(), "attention: {} query values, head size {hd}", q.len());
    let n_q = q.len() / hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let q8_dot = moe_quant::vec_dot_fn_for(moe_quant::tier(), QType::Q8_0).expect("every tier has a Q8_0 dot");
    let row_q8 = hd / 32 * 34;
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        let Scratch { qf, qq, bits, k, v, acc, sum, scores, new_max, maxes, bounds, next } = s;
        for (buf, n) in [(&mut *k, hd), (&mut *v, hd), (&mut *qf, n_q * hd), (&mut *acc, n_q * hd)] {
            buf.clear();
            buf.resize(n, 0.0);
        }
        sum.clear();
        sum.resize(n_q, 0.0);
        bits.resize(n_q * hd, 0);
        qq.resize(n_q * row_q8, 0);
        if scores.len() < n_q * n_pos {
            scores.resize(n_q * n_pos, 0.0);
        }
        match keys {
            Side::F16(_) => {
                qf.copy_from_slice(q);
                round_slice(qf, bits);
            }
            Side::Q8_0(_) => {
                for (x, o) in q.chunks_exact(hd).zip(qq.chunks_exact_mut(row_q8)) {
                    quantize_activations(QType::Q8_0, x, o);
                }
            }
        }
        let (kl, vl) = (layout_of(keys, layout), layout_of(values, layout));
        for t in first..n_pos {
            let ka = kl.at(t);
            if let Side::F16(kb) = keys {
                to_f32(&kb[ka..ka + hd], k);
            }
            for i in 0..n_q {
                scores[i * n_pos + t] = match keys {
                    Side::F16(_) => dot_f16(k, &qf[i * hd..(i + 1) * hd]),
                    Side::Q8_0(kb) => q8_dot(&kb[ka..ka + row_q8], &qq[i * row_q8..(i + 1) * row_q8], hd),
                } * scale;
            }
        }
        new_max.clear();
        bounds.clear();
        bounds.push(0);
        maxes.clear();
        for w in scores[..n_q * n_pos].chunks_exact_mut(n_pos) {
            maxes.push(online_weights(w, first, new_max));
            bounds.push(new_max.len());
        }
        next.clear();
        next.resize(n_q, 0);
        for t in first..n_pos {
            let va = vl.at(t);
            match values {
                Side::F16(vb) => to_f32(&vb[va..va + hd], v),
                Side::Q8_0(vb) => dequantize_row(QType::Q8_0, &vb[va..va + row_q8], v),
            }
            for i in 0..n_q {
                let a = &mut acc[i * hd..(i + 1) * hd];
                let (ms, w, new) = factors(&scores[i * n_pos..(i + 1) * n_pos], t, &new_max[bounds[i]..bounds[i + 1]], &mut next[i]);
                if new {
                    // A new maximum: ggml_vec_scale_f16 (rounded back) or
                    // ggml_vec_scale_f32.
                    for x in a.iter_mut() {
                        *x *= ms;
                    }
                    if let Side::F16(_) = values {
                        round_slice(a, &mut bits[..hd]);
                    }
                }
                // ggml_vec_mad_f16 (rounded back to f16) or, after
                // dequantize_row_q8_0, ggml_vec_mad_f32.
                mad(a, v, w);
                if let Side::F16(_) = values {
                    round_slice(a, &mut bits[..hd]);
                }
                sum[i] = sum[i].mul_add(ms, w);
            }
        }
        for (i, ((o, a), &total)) in out.chunks_exact_mut(hd).zip(acc.chunks_exact_mut(hd)).zip(sum.iter()).enumerate() {
            let total = match sinks {
                Some(s) => add_sink(a, maxes[i], total, s[i]),
                None => total,
            };
            let inv = if total == 0.0 { 0.0 } else { 1.0 / total };
            for (o, &a) in o.iter_mut().zip(a.iter()) {
                *o = a * inv;
            }
        }
    })
}

/// The layout in the side's own units.
fn layout_of(side: Side<'_>, l: ValueLayout) -> ValueLayout {
    match side {
        Side::F16(_) => l,
        Side::Q8_0(_) => q8_0_layout(l),
    }
}

/// Converts f16 bits to f32 in bulk.
fn to_f32(bits: &[u16], out: &mut [f32]) {
    bits.reinterpret_cast::<f16>().convert_to_f32_slice(out);
}

/// Rounds every value to the nearest f16 (ties to even), in bulk.
fn round_slice(x: &mut [f32], bits: &mut [u16]) {
    bits.reinterpret_cast_mut::<f16>().convert_from_f32_slice(x);
    to_f32(bits, x);
}

fma_dispatch! {
    /// `ggml_vec_dot_f16` on AVX-512 without FP16 arithmetic: the values
    /// (already converted) in four 16-lane FMA accumulators per 64
    /// elements, reduced as `ggml_vec_dot_f32`; the tail summed in f64.
    pub fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
        let np = x.len() / 64 * 64;
        let mut acc = [0.0f32; 64];
        for (xs, ys) in x[..np].chunks_exact(64).zip(y[..np].chunks_exact(64)) {
            for i in 0..64 {
                acc[i] = xs[i].mul_add(ys[i], acc[i]);
            }
        }
        let mut sum = reduce16(&fold64(&acc)) as f64;
        for (a, b) in x[np..].iter().zip(&y[np..]) {
            sum += (a * b) as f64;
        }
        sum as f32
    }
}

fma_dispatch! {
    /// `acc = fma(x, v, acc)`, element-wise.
    pub fn mad(acc: &mut [f32], x: &[f32], v: f32) {
        for (a, &b) in acc.iter_mut().zip(x) {
            *a = b.mul_add(v, *a);
        }
    }
}

/// The reference's softmax factors for one query's `scores` from position
/// `first` on (those before are left alone), in place: at a
/// position whose score does not exceed the running maximum m, the weight
/// `exp(score − m)` (its own factor being 1); at one that sets a new
/// maximum, the factor `exp(m − score)` by which the accumulator is scaled
/// (its weight being 1), its position appended to `new_max`. The exps run
/// vectorized, with `f32::exp`'s bits.
fn online_weights(scores: &mut [f32], first: usize, new_max: &mut Vec<u32>) -> f32 {
    let mut m = f32::NEG_INFINITY;
    for (t, s) in scores.iter_mut().enumerate().skip(first) {
        let score = *s;
        if score > m {
            *s = m - score;
            m = score;
            new_max.push(t as u32);
        } else {
            *s = score - m;
        }
    }
    super::libm_exp::exp_in_place(&mut scores[first..]);
    m
}

/// Position t's factors from [`online_weights`]' output for one query: (ms,
/// vs, whether t sets a new maximum), `new_max` being that query's
/// new-maximum positions and `next` the index of the first not yet passed.
#[inline(always)]
fn factors(w: &[f32], t: usize, new_max: &[u32], next: &mut usize) -> (f32, f32, bool) {
    if new_max.get(*next) == Some(&(t as u32)) {
        *next += 1;
        (w[t], 1.0, true)
    } else {
        (1.0, w[t], false)
    }
}
