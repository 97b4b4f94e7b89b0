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
//! - finally `out = acc · (1/S)`.
//!
//! No f16 rounding on the way (one_chunk, llama.cpp's path for smaller
//! batches and decode, keeps an f16 accumulator): both products are plain
//! FMA chains, which vector kernels run at full width, one position per
//! lane for the scores and one dimension per lane for the values.

use half::f16;

use super::attention::ValueLayout;
use super::fma::fma_dispatch;
use super::kv_cache::KeyTiles;
use super::lanes::reduce16;
use super::ops::vexp;

/// Positions per tile (`GGML_FA_TILE_KV`).
pub const KV_TILE: usize = 64;

/// One tile's softmax bookkeeping for one query: the running maximum and
/// sum, updated from the tile's scores (`p`, [`KV_TILE`] values, masked
/// lanes −∞), which become the tile's weights. Returns the factor by which
/// the accumulator must first be scaled (1 when the maximum stays), or
/// `None` when every score is −∞ (the tile adds nothing).
#[inline(always)]
pub fn tile_softmax(p: &mut [f32; KV_TILE], m: &mut f32, s: &mut f32) -> Option<f32> {
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
    /// `0..n_pos` of an f16 cache (keys by tile, values by position);
    /// `acc` is scratch of `q.len()` values.
    pub fn attend_row_reference(q: &[f32], keys: &[u16], tiles: KeyTiles, values: &[u16], layout: ValueLayout, n_pos: usize, scale: f32, acc: &mut [f32], out: &mut [f32]) {
        let hd = q.len();
        acc.fill(0.0);
        let (mut m, mut s) = (f32::NEG_INFINITY, 0.0f32);
        let mut p = [0.0f32; KV_TILE];
        for t0 in (0..n_pos).step_by(KV_TILE) {
            let len = KV_TILE.min(n_pos - t0);
            let tile = tiles.tile(keys, t0 / KV_TILE);
            for (i, pi) in p.iter_mut().enumerate() {
                *pi = if i < len {
                    let mut dot = 0.0f32;
                    for (d, &qd) in q.iter().enumerate() {
                        dot = f16::from_bits(tile[d * KV_TILE + i]).to_f32().mul_add(qd, dot);
                    }
                    dot * scale
                } else {
                    f32::NEG_INFINITY
                };
            }
            let Some(ms) = tile_softmax(&mut p, &mut m, &mut s) else { continue };
            if ms != 1.0 {
                for a in acc.iter_mut() {
                    *a *= ms;
                }
            }
            for (i, &pi) in p[..len].iter().enumerate() {
                let v = &values[layout.offset + (t0 + i) * layout.stride..][..hd];
                for (a, &vd) in acc.iter_mut().zip(v) {
                    *a = f16::from_bits(vd).to_f32().mul_add(pi, *a);
                }
            }
        }
        normalize(acc, s, out);
    }
}

thread_local! {
    static ACC: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The query heads of one KV head (`q`: `out.len() / head_dim` queries of
/// `head_dim` values) against positions `0..n_pos` of an f16 cache (keys
/// by tile, values as in [`super::attention::attend_head`]); writes
/// `head_dim` outputs per query, each in the order above.
#[allow(clippy::too_many_arguments)]
pub fn attend_group(q: &[f32], keys: &[u16], tiles: KeyTiles, values: &[u16], layout: ValueLayout, head_dim: usize, n_pos: usize, out: &mut [f32]) {
    assert!(head_dim > 0 && q.len().is_multiple_of(head_dim) && out.len() == q.len(), "attention: {} query values, head size {head_dim}", q.len());
    let scale = 1.0 / (head_dim as f32).sqrt();
    ACC.with(|acc| {
        let acc = &mut *acc.borrow_mut();
        acc.resize(head_dim, 0.0);
        for (qg, og) in q.chunks_exact(head_dim).zip(out.chunks_exact_mut(head_dim)) {
            attend_row_reference(qg, keys, tiles, values, layout, n_pos, scale, acc, og);
        }
    })
}
