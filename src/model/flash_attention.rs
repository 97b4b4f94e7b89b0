//! Attention over an f16 KV cache in the float order of llama.cpp's CPU
//! flash attention (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`,
//! AVX-512 build without AVX512-FP16), which is what llama.cpp runs by
//! default (`-fa auto`, f16 K and V), one query row at a time:
//!
//! - the query is rounded to f16; `s = ggml_vec_dot_f16(k_t, q)·scale`
//!   (f32 FMA lanes as `ggml_vec_dot_f32`, a tail in f64);
//! - online softmax over positions in order: on a new maximum M, the f16
//!   accumulator is scaled by `expf(M_old − M)` (rounded back to f16),
//!   otherwise the weight is `expf(s − M)`; then `acc = f16(fma(v, w, acc))`
//!   and `S = fma(S, ms, w)`;
//! - finally `out = f32(acc) · (1/S)`.
//!
//! llama.cpp takes other paths for prompt batches of 64+ tokens (tiled)
//! and for a single token over 512+ positions (KV split across threads);
//! those sum in other orders, so there results agree closely but not to
//! the bit.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use super::attention::ValueLayout;
use super::lanes::{fold64, reduce16};
use super::flash_simd;
use super::fma::fma_dispatch;

/// Per-thread buffers of [`attend_head_f16`]. Conversions go through
/// `half`'s slice functions, which use F16C when the CPU has it.
#[derive(Default)]
struct Scratch {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// The accumulator, as f16 values held in f32 (each update rounds).
    acc: Vec<f32>,
    bits: Vec<u16>,
    /// Every position's score, for the vector kernels.
    scores: Vec<f32>,
    /// The vector kernels' new-maximum positions.
    new_max: Vec<u32>,
}

/// Converts f16 bits to f32 in bulk.
pub(super) fn to_f32(bits: &[u16], out: &mut [f32]) {
    bits.reinterpret_cast::<f16>().convert_to_f32_slice(out);
}

/// Rounds every value to the nearest f16 (ties to even), in bulk.
pub(super) fn round_slice(x: &mut [f32], bits: &mut [u16]) {
    bits.reinterpret_cast_mut::<f16>().convert_from_f32_slice(x);
    to_f32(bits, x);
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The query heads of one KV head (`q`: `out.len() / head_dim` queries of
/// `head_dim` values) against positions `0..n_pos` of an f16 cache (layout
/// as in [`super::attention::attend_head`]); writes `head_dim` outputs per
/// query. The scratch is sized for `n_ctx` positions at first use, so that
/// a growing context does not reallocate it. Runs a vector kernel
/// ([`flash_simd`]) where the CPU and head size have one; it gives each
/// query the bits of [`attend_reference`].
#[allow(clippy::too_many_arguments)]
pub fn attend_group_f16(
    q: &[f32],
    keys: &[u16],
    values: &[u16],
    layout: ValueLayout,
    head_dim: usize,
    n_pos: usize,
    n_ctx: usize,
    out: &mut [f32],
) {
    attend_with(flash_simd::kernel(head_dim), q, keys, values, layout, head_dim, n_pos, n_ctx, out);
}

#[allow(clippy::too_many_arguments)]
fn attend_with(
    kernel: Option<flash_simd::Kernel>,
    q: &[f32],
    keys: &[u16],
    values: &[u16],
    layout: ValueLayout,
    hd: usize,
    n_pos: usize,
    n_ctx: usize,
    out: &mut [f32],
) {
    assert!(hd > 0 && q.len().is_multiple_of(hd) && out.len() == q.len(), "attention: {} query values, head size {hd}", q.len());
    let n_q = q.len() / hd;
    let scale = 1.0 / (hd as f32).sqrt();
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        let Scratch { q: qf, k, v, acc, bits, scores, new_max } = s;
        qf.clear();
        qf.extend_from_slice(q);
        bits.resize(q.len(), 0);
        round_slice(qf, &mut bits[..q.len()]);
        match kernel {
            Some(kernel) => {
                if scores.len() < n_q * n_pos {
                    scores.resize(n_q * n_ctx.max(n_pos), 0.0);
                }
                kernel(qf, keys, values, layout, hd, scale, &mut scores[..n_q * n_pos], new_max, out);
            }
            None => {
                for (qg, og) in qf.chunks_exact(hd).zip(out.chunks_exact_mut(hd)) {
                    // Each query starts from a zero accumulator (not the
                    // last query's, which may hold f16 infinities).
                    for buf in [&mut *k, &mut *v, &mut *acc] {
                        buf.clear();
                        buf.resize(hd, 0.0);
                    }
                    attend_reference(qg, keys, values, layout, n_pos, scale, [&mut *k, &mut *v, &mut *acc], &mut bits[..hd], og);
                }
            }
        }
    })
}

/// The loop as llama.cpp writes it (module docs), on the rounded query
/// `qf`, with `k`, `v` and `acc` buffers of `head_dim` values.
#[allow(clippy::too_many_arguments)]
fn attend_reference(
    qf: &[f32],
    keys: &[u16],
    values: &[u16],
    layout: ValueLayout,
    n_pos: usize,
    scale: f32,
    [k, v, acc]: [&mut Vec<f32>; 3],
    bits: &mut [u16],
    out: &mut [f32],
) {
    let hd = qf.len();
    let (mut m, mut sum) = (f32::NEG_INFINITY, 0.0f32);
    for t in 0..n_pos {
        let at = layout.offset + t * layout.stride;
        to_f32(&keys[at..at + hd], k);
        let score = dot_f16(k, qf) * scale;
        let (ms, vs) = if score > m {
            let ms = (m - score).exp();
            m = score;
            // ggml_vec_scale_f16: acc = f16(acc · ms).
            for a in acc.iter_mut() {
                *a *= ms;
            }
            round_slice(acc, bits);
            (ms, 1.0)
        } else {
            (1.0, (score - m).exp())
        };
        // ggml_vec_mad_f16: acc = f16(fma(v, vs, acc)).
        to_f32(&values[at..at + hd], v);
        mad(acc, v, vs);
        round_slice(acc, bits);
        sum = sum.mul_add(ms, vs);
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = a * inv;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h2f(bits: u16) -> f32 {
        f16::from_bits(bits).to_f32()
    }

    fn round_f16(x: f32) -> f32 {
        f16::from_f32(x).to_f32()
    }

    /// The vector kernels give the reference's bits: head sizes 64..256,
    /// odd position counts, groups of 1 to 4 queries, a strided layout
    /// (several heads per position),
    /// scores that set new maxima late (ramps) and ties.
    #[test]
    fn vector_kernels_equal_the_reference_bit_for_bit() {
        let mut r = 0x2545_f491u32;
        let mut next = move || {
            r ^= r << 13;
            r ^= r >> 17;
            r ^= r << 5;
            (r >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut checked = 0;
        for tier in [moe_quant::Tier::Avx2, moe_quant::Tier::Avx512Vnni] {
            let Some(kernel) = flash_simd::kernel_of(tier) else {
                eprintln!("vector_kernels_equal_the_reference: {tier} not on this CPU, skipped");
                continue;
            };
            for (hd, n_pos, heads, group) in [(64, 1, 1, 1), (64, 37, 3, 3), (64, 100, 2, 4), (64, 45, 1, 5), (64, 300, 1, 8), (128, 200, 2, 4), (128, 513, 1, 1), (128, 33, 2, 3), (192, 19, 1, 2), (256, 70, 2, 1)] {
                let stride = hd * heads;
                let gain = 1.0 + 4.0 * (n_pos % 3) as f32;
                let q: Vec<f32> = (0..group * hd).map(|_| next() * gain).collect();
                let keys: Vec<u16> = (0..n_pos * stride)
                    .map(|i| f16::from_f32(next() + (i / stride) as f32 * 0.01 * gain).to_bits())
                    .collect();
                let values: Vec<u16> = (0..n_pos * stride).map(|_| f16::from_f32(next() * 3.0).to_bits()).collect();
                let layout = ValueLayout { offset: hd * (heads - 1), stride };
                let (mut want, mut got) = (vec![0.0f32; group * hd], vec![0.0f32; group * hd]);
                // The reference one query at a time; the kernel on the group.
                for (qg, wg) in q.chunks(hd).zip(want.chunks_mut(hd)) {
                    attend_with(None, qg, &keys, &values, layout, hd, n_pos, n_pos, wg);
                }
                attend_with(Some(kernel), &q, &keys, &values, layout, hd, n_pos, n_pos, &mut got);
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{tier} hd={hd} n_pos={n_pos} group={group}");
                checked += 1;
            }
        }
        eprintln!("vector_kernels_equal_the_reference: {checked} shapes checked");
    }

    /// A group runs each query from a fresh accumulator: values whose
    /// weighted sum overflows f16 leave the first query's at infinity,
    /// which times the first step's factor 0 would be NaN for the next.
    #[test]
    fn grouped_queries_equal_single_ones_when_the_accumulator_overflows() {
        let (hd, n_pos, group) = (64, 4, 2);
        let q: Vec<f32> = (0..group * hd).map(|i| (i % 7) as f32 * 0.01).collect();
        let keys = vec![f16::from_f32(0.5).to_bits(); n_pos * hd];
        let values = vec![f16::from_f32(60000.0).to_bits(); n_pos * hd];
        let layout = ValueLayout { offset: 0, stride: hd };
        let mut kernels = vec![None];
        kernels.extend([moe_quant::Tier::Avx2, moe_quant::Tier::Avx512Vnni].map(flash_simd::kernel_of).into_iter().flatten().map(Some));
        for kernel in kernels {
            let mut grouped = vec![0.0f32; group * hd];
            attend_with(kernel, &q, &keys, &values, layout, hd, n_pos, n_pos, &mut grouped);
            for (g, got) in grouped.chunks(hd).enumerate() {
                let mut one = vec![0.0f32; hd];
                attend_with(kernel, &q[g * hd..(g + 1) * hd], &keys, &values, layout, hd, n_pos, n_pos, &mut one);
                assert!(one.iter().all(|x| x.is_infinite()), "the case must overflow: {:?}", &one[..4]);
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(got), bits(&one), "query {g}, kernel {}", kernel.is_some());
            }
        }
    }

    /// Against attention computed in f64 on the same f16-rounded inputs.
    #[test]
    fn f16_attention_is_softmax_weighted_values() {
        let (hd, n) = (64, 37);
        let q: Vec<f32> = (0..hd).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.11).collect();
        let kf: Vec<f32> = (0..n * hd).map(|i| ((i * 11 % 17) as f32 - 8.0) * 0.07).collect();
        let vf: Vec<f32> = (0..n * hd).map(|i| ((i * 5 % 19) as f32 - 9.0) * 0.05).collect();
        let bits = |x: &[f32]| x.iter().map(|&v| f16::from_f32(v).to_bits()).collect::<Vec<u16>>();
        let (kb, vb) = (bits(&kf), bits(&vf));
        let mut out = vec![0.0f32; hd];
        attend_with(None, &q, &kb, &vb, ValueLayout { offset: 0, stride: hd }, hd, n, n, &mut out);
        let scale = 1.0 / (hd as f64).sqrt();
        let s: Vec<f64> = (0..n)
            .map(|t| (0..hd).map(|d| round_f16(q[d]) as f64 * h2f(kb[t * hd + d]) as f64).sum::<f64>() * scale)
            .collect();
        let max = s.iter().copied().fold(f64::MIN, f64::max);
        let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
        for d in 0..hd {
            let want: f64 = (0..n).map(|t| (s[t] - max).exp() / z * h2f(vb[t * hd + d]) as f64).sum();
            // The f16 accumulator holds ~3 significant digits.
            assert!((out[d] as f64 - want).abs() < 2e-3, "d={d}: {} vs {want}", out[d]);
        }
    }
}
