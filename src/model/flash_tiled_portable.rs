//! [`super::flash_tiled`]'s order in plain Rust, shaped so that the
//! compiler vectorizes it on any CPU: each tile's keys converted once to
//! f32 (dimension-major, as the cache stores them), so that a query's scores are FMA
//! chains with one position per lane, and its values converted once, so
//! that the accumulation is an FMA per dimension with one dimension per
//! lane. Every lane does the reference's operations in the reference's
//! order (`f32::mul_add` is fused everywhere), so the bits are the
//! reference's. It serves the head sizes and tiers the x86 kernels
//! ([`super::flash_tiled_simd`]) do not.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use super::flash_tiled::{tile_softmax, HeadCache, Scratch, WindowSinks, KV_TILE};
use super::fma::fma_dispatch;

/// A [`super::flash_tiled::Kernel`]: query g against positions
/// `0..n_pos[g]`, tile by tile.
#[allow(clippy::too_many_arguments)]
pub fn portable(q: &[f32], n_pos: &[usize], ws: WindowSinks<'_>, head: HeadCache<'_>, hd: usize, scale: f32, scratch: &mut Scratch, out: &mut [f32]) {
    let HeadCache { keys, values, tiles, layout } = head;
    let n = q.len() / hd;
    assert!(hd > 0 && q.len() == n * hd && out.len() == q.len() && n_pos.len() == n, "tiled attention: {} query values, head size {hd}, {} lengths", q.len(), n_pos.len());
    let max_pos = n_pos.iter().copied().max().unwrap_or(0);
    scratch.prepare(n, hd, KV_TILE);
    let Scratch { keys: kt, values: vt, acc, m, s, p } = scratch;
    let tile: &mut [f32; KV_TILE] = (&mut p[..KV_TILE]).try_into().expect("a tile");
    for t0 in (ws.first_tile()..max_pos).step_by(KV_TILE) {
        let len = KV_TILE.min(max_pos - t0);
        // The whole tile of keys as stored (lanes past len are masked).
        let k: &[f16] = keys[tiles.tile(t0)..][..hd * KV_TILE].reinterpret_cast();
        k.convert_to_f32_slice(kt);
        for i in 0..len {
            let at = layout.at(t0 + i);
            let v: &[f16] = values[at..at + hd].reinterpret_cast();
            v.convert_to_f32_slice(&mut vt[i * hd..(i + 1) * hd]);
        }
        for g in 0..n {
            // This query's positions in the tile (none: past its own).
            let len_g = n_pos[g].saturating_sub(t0).min(KV_TILE);
            if len_g == 0 {
                continue;
            }
            scores(&q[g * hd..(g + 1) * hd], kt, len_g, scale, tile);
            ws.mask(g, t0, tile);
            let a = &mut acc[g * hd..(g + 1) * hd];
            match tile_softmax(tile, &mut m[g], &mut s[g]) {
                // A tile that adds nothing (every score −∞): weights 0.
                None => tile.fill(0.0),
                Some(ms) if ms != 1.0 => a.iter_mut().for_each(|x| *x *= ms),
                Some(_) => {}
            }
            accumulate(&tile[..len_g], vt, a);
        }
    }
    for g in 0..n {
        ws.finish(g, &mut acc[g * hd..(g + 1) * hd], m[g], s[g], &mut out[g * hd..(g + 1) * hd]);
    }
}

fma_dispatch! {
    /// One query's scores for the tile's first `len` positions (keys `kt`
    /// dimension-major), times `scale`; −∞ past them.
    pub fn scores(q: &[f32], kt: &[f32], len: usize, scale: f32, p: &mut [f32; KV_TILE]) {
        let mut dots = [0.0f32; KV_TILE];
        for (&qd, kd) in q.iter().zip(kt.chunks_exact(KV_TILE)) {
            for (dot, &k) in dots.iter_mut().zip(kd) {
                *dot = k.mul_add(qd, *dot);
            }
        }
        for (i, (pi, dot)) in p.iter_mut().zip(dots).enumerate() {
            *pi = if i < len { dot * scale } else { f32::NEG_INFINITY };
        }
    }
}

fma_dispatch! {
    /// `acc[d] = fma(v_t[d], w_t, acc[d])`, one position after another
    /// (values `vt` position-major).
    pub fn accumulate(w: &[f32], vt: &[f32], acc: &mut [f32]) {
        for (&wt, v) in w.iter().zip(vt.chunks_exact(acc.len())) {
            for (a, &x) in acc.iter_mut().zip(v) {
                *a = x.mul_add(wt, *a);
            }
        }
    }
}
