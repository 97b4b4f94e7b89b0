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
//! - f16 values: the f16 accumulator of [`super::flash_attention`];
//!   Q8_0 values: an f32 accumulator; on a new maximum M it is scaled by
//!   `expf(M_old − M)`, otherwise the weight is `w = expf(s − M)`; then
//!   `acc = fma(dequantize(v_t), w, acc)`;
//! - `S = fma(S, ms, w)`; finally `out = acc · (1/S)`.

use moe_quant::{dequantize_row, quantize_activations, QType, VecDotFn};

use super::attention::ValueLayout;
use super::flash_attention::{dot_f16, mad, round_slice, to_f32};
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
    /// The query as the keys' dot type: f16 values held in f32 ...
    qf: Vec<f32>,
    /// ... or Q8_0 blocks.
    qq: Vec<u8>,
    bits: Vec<u16>,
    k: Vec<f32>,
    v: Vec<f32>,
    acc: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The query heads of one KV head (`q`: `out.len() / head_dim` queries)
/// against positions `0..n_pos` (layout as in
/// [`super::attention::attend_head`], in values); `head_dim` outputs per
/// query. `head_dim` is a multiple of 32 (checked when the cache is made).
pub fn attend_group_quantized(
    q: &[f32],
    keys: Side<'_>,
    values: Side<'_>,
    layout: ValueLayout,
    hd: usize,
    n_pos: usize,
    out: &mut [f32],
) {
    assert!(hd > 0 && hd.is_multiple_of(32) && q.len().is_multiple_of(hd) && out.len() == q.len(), "attention: {} query values, head size {hd}", q.len());
    let scale = 1.0 / (hd as f32).sqrt();
    let q8_dot = moe_quant::vec_dot_fn_for(moe_quant::tier(), QType::Q8_0).expect("every tier has a Q8_0 dot");
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        for buf in [&mut s.k, &mut s.v, &mut s.acc, &mut s.qf] {
            buf.resize(hd, 0.0);
        }
        s.bits.resize(hd, 0);
        s.qq.resize(hd / 32 * 34, 0);
        for (qg, og) in q.chunks_exact(hd).zip(out.chunks_exact_mut(hd)) {
            attend_one(qg, keys, values, layout, n_pos, scale, q8_dot, s, og);
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn attend_one(
    qg: &[f32],
    keys: Side<'_>,
    values: Side<'_>,
    layout: ValueLayout,
    n_pos: usize,
    scale: f32,
    q8_dot: VecDotFn,
    s: &mut Scratch,
    out: &mut [f32],
) {
    let hd = qg.len();
    let Scratch { qf, qq, bits, k, v, acc } = s;
    match keys {
        Side::F16(_) => {
            qf.copy_from_slice(qg);
            round_slice(qf, bits);
        }
        Side::Q8_0(_) => quantize_activations(QType::Q8_0, qg, qq),
    }
    acc.fill(0.0);
    let (kl, vl) = (layout_of(keys, layout), layout_of(values, layout));
    let (mut m, mut sum) = (f32::NEG_INFINITY, 0.0f32);
    for t in 0..n_pos {
        let score = match keys {
            Side::F16(bits) => {
                let at = kl.offset + t * kl.stride;
                to_f32(&bits[at..at + hd], k);
                dot_f16(k, qf)
            }
            Side::Q8_0(bytes) => {
                let at = kl.offset + t * kl.stride;
                q8_dot(&bytes[at..at + hd / 32 * 34], qq, hd)
            }
        } * scale;
        let (ms, w) = if score > m {
            let ms = (m - score).exp();
            m = score;
            // ggml_vec_scale_f16 (rounded back) or ggml_vec_scale_f32.
            for a in acc.iter_mut() {
                *a *= ms;
            }
            if let Side::F16(_) = values {
                round_slice(acc, bits);
            }
            (ms, 1.0)
        } else {
            (1.0, (score - m).exp())
        };
        let at = vl.offset + t * vl.stride;
        match values {
            Side::F16(vb) => {
                // ggml_vec_mad_f16: acc = f16(fma(v, w, acc)).
                to_f32(&vb[at..at + hd], v);
                mad(acc, v, w);
                round_slice(acc, bits);
            }
            Side::Q8_0(vb) => {
                // dequantize_row_q8_0, then ggml_vec_mad_f32.
                dequantize_row(QType::Q8_0, &vb[at..at + hd / 32 * 34], v);
                mad(acc, v, w);
            }
        }
        sum = sum.mul_add(ms, w);
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = a * inv;
    }
}

/// The layout in the side's own units.
fn layout_of(side: Side<'_>, l: ValueLayout) -> ValueLayout {
    match side {
        Side::F16(_) => l,
        Side::Q8_0(_) => q8_0_layout(l),
    }
}
