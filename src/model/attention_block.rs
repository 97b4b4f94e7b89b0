//! A layer's self-attention over a micro-batch, as llama.cpp's graph
//! builders (`src/models/*.cpp`) write it: Q/K/V projections (+ biases),
//! the QK RMSNorm where the architecture has one, RoPE in its pairing,
//! the rotation of a quantized cache ([`super::hadamard`]), the KV cache
//! store, attention per head, and the output projection
//! (+ bias) into `batch.proj`. The residual add is the caller's.

use super::attention::{attend_head, Mode};
use super::batch::{row, row_mut, Batch};
use super::flash_tiled::{attend_group, HeadCache, WindowSinks};
use super::flash_quantized::{attend_group_quantized, Side};
use super::hadamard::rotate_chunks;
use super::kv_cache::{KvCache, KvStore};
use super::ops::{add_bias, rms_norm_in_place, rope_apply, rope_apply_neox};
use super::weights::AttentionWeights;
use super::Model;
use crate::arch::{QkNorm, RopeKind};

/// Below this many multiply-adds (tokens × heads × positions × head_dim)
/// attention runs on the calling thread.
const PARALLEL_ATTENTION_MIN: usize = 1 << 15;

/// Where each token of a batch keeps its keys and values, and at which
/// position it is.
pub(super) enum Rows<'a, 'k> {
    /// One sequence: token j at `pos + j` of `kv` (a prompt, a decode step).
    One { kv: &'a mut KvCache, pos: usize },
    /// One token per sequence (`moe serve`'s slots decoding together):
    /// token j at `seqs[j].1` of `seqs[j].0`.
    Each(&'a mut [(&'k mut KvCache, usize)]),
}

impl Rows<'_, '_> {
    /// Token j's cache and position.
    pub(super) fn at(&self, j: usize) -> (&KvCache, usize) {
        match self {
            Rows::One { kv, pos } => (kv, pos + j),
            Rows::Each(seqs) => (&*seqs[j].0, seqs[j].1),
        }
    }

    fn at_mut(&mut self, j: usize) -> (&mut KvCache, usize) {
        match self {
            Rows::One { kv, pos } => (kv, *pos + j),
            Rows::Each(seqs) => (&mut *seqs[j].0, seqs[j].1),
        }
    }
}

/// Self-attention of layer `l` for the batch's tokens, each at its
/// position in its cache ([`Rows`]), reading the normalised input
/// `batch.xb` and writing `batch.proj`. A token at position p sees
/// positions `0..=p` of its cache.
pub(super) fn self_attention(model: &Model, l: usize, b: &mut Batch, rows: &mut Rows<'_, '_>, n_ctx: usize, mode: Mode) {
    let c = model.config();
    let a = &model.weights().layers[l].attn;
    let n = b.n;
    let (hd, q_dim, kv_dim) = (c.head_dim, c.q_dim(), c.kv_dim());
    project_qkv(model, a, b);
    for j in 0..n {
        let (kv, pos) = rows.at_mut(j);
        let (q, k) = (row_mut(&mut b.q, q_dim, j), row_mut(&mut b.k, kv_dim, j));
        qk_norm(c.traits.qk_norm, a, q, k, hd, c.rms_eps);
        let rope = row(&b.rope, hd, j);
        match c.rope.kind {
            RopeKind::Normal => {
                rope_apply(q, rope, hd);
                rope_apply(k, rope, hd);
            }
            RopeKind::Neox => {
                rope_apply_neox(q, rope, hd);
                rope_apply_neox(k, rope, hd);
            }
        }
        if let Some(chunk) = kv.rotate_k {
            rotate_chunks(q, chunk);
            rotate_chunks(k, chunk);
        }
        if let Some(chunk) = kv.rotate_v {
            rotate_chunks(row_mut(&mut b.v, kv_dim, j), chunk);
        }
        kv.store(l, pos, row(&b.k, kv_dim, j), row(&b.v, kv_dim, j));
    }
    attend(c.n_head, c.n_head_kv, hd, l, c.window(l), a.sinks.as_deref(), b, rows, n_ctx, mode);
    // Every cache of a batch has the same element types, and rotations.
    if let Some(chunk) = rows.at(0).0.rotate_v {
        // The output back from the values' rotation (H is its own inverse).
        rotate_chunks(&mut b.attn[..n * q_dim], chunk);
    }
    b.act_ff.invalidate();
    let x = b.act_ff.get(a.wo.qtype.vec_dot_type(), &b.attn[..n * q_dim], q_dim);
    model.matrix(&a.wo).matmul(x, n, &mut b.proj[..n * c.n_embd]);
    if let Some(bo) = &a.bo {
        add_bias(&mut b.proj[..n * c.n_embd], bo);
    }
}

/// `q = Wq·xb (+ bq)`, likewise k and v, for every token.
fn project_qkv(model: &Model, a: &AttentionWeights, b: &mut Batch) {
    let c = model.config();
    let n = b.n;
    for (wt, bias, out, rows) in [
        (&a.wq, &a.bq, &mut b.q, c.q_dim()),
        (&a.wk, &a.bk, &mut b.k, c.kv_dim()),
        (&a.wv, &a.bv, &mut b.v, c.kv_dim()),
    ] {
        let x = b.act.get(wt.qtype.vec_dot_type(), &b.xb[..n * c.n_embd], c.n_embd);
        model.matrix(wt).matmul(x, n, &mut out[..n * rows]);
        if let Some(bias) = bias {
            add_bias(&mut out[..n * rows], bias);
        }
    }
}

/// The architecture's RMSNorm of one token's Q and K rows, before RoPE.
fn qk_norm(kind: QkNorm, a: &AttentionWeights, q: &mut [f32], k: &mut [f32], hd: usize, eps: f32) {
    let (Some(qn), Some(kn)) = (&a.q_norm, &a.k_norm) else {
        return;
    };
    match kind {
        QkNorm::None => {}
        QkNorm::PerHead => {
            for h in q.chunks_exact_mut(hd) {
                rms_norm_in_place(h, qn, eps);
            }
            for h in k.chunks_exact_mut(hd) {
                rms_norm_in_place(h, kn, eps);
            }
        }
        QkNorm::Full => {
            rms_norm_in_place(q, qn, eps);
            rms_norm_in_place(k, kn, eps);
        }
    }
}

/// Every query head against its KV head's positions, into `batch.attn`.
/// An f16 cache goes to [`attend_tiled`]; the others one chunk per (token,
/// KV head) in a batch, so that the query heads sharing a KV head share
/// its conversions (Q8_0 sides). A single token takes the largest share of
/// a KV head's queries that still gives every thread a chunk. Results are
/// the same either way: each query runs in its own position order.
#[allow(clippy::too_many_arguments)]
fn attend(n_head: usize, n_head_kv: usize, hd: usize, l: usize, window: Option<usize>, sinks: Option<&[f32]>, b: &mut Batch, rows: &Rows<'_, '_>, n_ctx: usize, mode: Mode) {
    if let (KvStore::F16(_), KvStore::F16(_)) = (&rows.at(0).0.k, &rows.at(0).0.v) {
        return attend_tiled(n_head, n_head_kv, hd, l, window, sinks, b, rows);
    }
    let n = b.n;
    let q_dim = n_head * hd;
    let group = n_head / n_head_kv;
    let work = n * n_head * (rows.at(n - 1).1 + 1) * hd;
    let pool = moe_quant::pool::for_work(work >= PARALLEL_ATTENTION_MIN);
    let per_chunk = if n >= 2 { group } else { (1..=group).rev().find(|&d| group.is_multiple_of(d) && n_head / d >= pool.threads()).unwrap_or(1) };
    let chunks_per_token = n_head / per_chunk;
    let q = &b.q;
    let heads = |ch: usize, out: &mut [f32]| {
        let (j, h0) = (ch / chunks_per_token, ch % chunks_per_token * per_chunk);
        let qs = &row(q, q_dim, j)[h0 * hd..(h0 + per_chunk) * hd];
        let (kv, pos) = rows.at(j);
        let layout = kv.layout(l, h0 / group, hd);
        let span = window.map_or(0, |w| first_visible(pos, w))..pos + 1;
        let sinks = sinks.map(|s| &s[h0..h0 + per_chunk]);
        match (&kv.k, &kv.v) {
            (KvStore::F32(k), KvStore::F32(v)) => {
                for (i, (qh, oh)) in qs.chunks_exact(hd).zip(out.chunks_exact_mut(hd)).enumerate() {
                    attend_head(qh, k, v, layout, span.clone(), sinks.map(|s| s[i]), n_ctx, oh, mode);
                }
            }
            (k, v) => attend_group_quantized(qs, side(k), side(v), layout, hd, span, sinks, out),
        }
    };
    pool.for_each_slice_mut(&mut b.attn[..n * q_dim], per_chunk * hd, &heads);
}

/// Consecutive tokens per chunk of [`attend_tiled`] (at most).
const TILED_TOKENS: usize = 16;

/// [`attend_tiled`]'s per-thread buffers: one KV head's queries of a
/// chunk, their outputs, their position counts, first positions and sinks.
#[derive(Default)]
struct TiledChunk {
    q: Vec<f32>,
    out: Vec<f32>,
    lens: Vec<usize>,
    first: Vec<usize>,
    sinks: Vec<f32>,
}

impl TiledChunk {
    /// Starts a chunk of queries.
    fn clear(&mut self) {
        self.q.clear();
        self.lens.clear();
        self.first.clear();
        self.sinks.clear();
    }

    /// Adds the `sinks.len()` (or `group`) queries `qs` of one token at
    /// `pos`, in a layer with `window`.
    fn push_token(&mut self, qs: &[f32], group: usize, pos: usize, window: Option<usize>, sinks: Option<&[f32]>) {
        self.q.extend_from_slice(qs);
        self.lens.extend(std::iter::repeat_n(pos + 1, group));
        if let Some(w) = window {
            self.first.extend(std::iter::repeat_n(first_visible(pos, w), group));
        }
        if let Some(s) = sinks {
            self.sinks.extend_from_slice(s);
        }
    }

    fn window_sinks(&self) -> WindowSinks<'_> {
        WindowSinks { first: &self.first, sinks: &self.sinks }
    }
}

thread_local! {
    static TILED: std::cell::RefCell<TiledChunk> = std::cell::RefCell::new(TiledChunk::default());
}

/// The first position a query at `pos` sees through a window of `w`
/// (llama.cpp masks key position p0 when `pos − p0 ≥ w`).
pub(super) fn first_visible(pos: usize, w: usize) -> usize {
    (pos + 1).saturating_sub(w)
}

/// Attention over an f16 cache, in llama.cpp's tiled order
/// ([`attend_group`]) for every batch. A prompt goes in chunks of up to
/// [`TILED_TOKENS`] consecutive tokens (all heads): a KV head's queries of
/// all of them share the conversion of each tile of keys and values. A
/// few tokens (decode steps, several sessions' steps together) go one
/// (token, KV head) per chunk, each with its own cache, so that the
/// threads share the work. Each query's result is the same either way.
#[allow(clippy::too_many_arguments)]
fn attend_tiled(n_head: usize, n_head_kv: usize, hd: usize, l: usize, window: Option<usize>, sinks: Option<&[f32]>, b: &mut Batch, rows: &Rows<'_, '_>) {
    let n = b.n;
    let q_dim = n_head * hd;
    let group = n_head / n_head_kv;
    let work = n * n_head * (rows.at(n - 1).1 + 1) * hd;
    let pool = moe_quant::pool::for_work(work >= PARALLEL_ATTENTION_MIN);
    let q = &b.q;
    // KV head kvh of token j's cache.
    let head = |j: usize, kvh: usize| {
        let kv = rows.at(j).0;
        match (&kv.k, &kv.v) {
            (KvStore::F16(k), KvStore::F16(v)) => HeadCache { keys: k, values: v, tiles: kv.key_tiles(l, kvh), layout: kv.layout(l, kvh, hd) },
            _ => unreachable!("every cache of a batch has the same element types"),
        }
    };
    let group_sinks = |kvh: usize| sinks.map(|s| &s[kvh * group..(kvh + 1) * group]);
    let one_sequence = matches!(rows, Rows::One { .. });
    if one_sequence && n >= 2 * pool.threads() {
        let per_chunk = n.div_ceil(2 * pool.threads()).clamp(1, TILED_TOKENS);
        let chunk = |ch: usize, out: &mut [f32]| {
            let (j0, nt) = (ch * per_chunk, out.len() / q_dim);
            TILED.with(|t| {
                let c = &mut *t.borrow_mut();
                for kvh in 0..n_head_kv {
                    c.clear();
                    for j in 0..nt {
                        let qs = &row(q, q_dim, j0 + j)[kvh * group * hd..(kvh + 1) * group * hd];
                        c.push_token(qs, group, rows.at(j0 + j).1, window, group_sinks(kvh));
                    }
                    let mut os = std::mem::take(&mut c.out);
                    os.resize(c.q.len(), 0.0);
                    attend_group(&c.q, &c.lens, c.window_sinks(), head(0, kvh), hd, &mut os);
                    for j in 0..nt {
                        out[j * q_dim + kvh * group * hd..][..group * hd].copy_from_slice(&os[j * group * hd..(j + 1) * group * hd]);
                    }
                    c.out = os;
                }
            })
        };
        pool.for_each_slice_mut(&mut b.attn[..n * q_dim], per_chunk * q_dim, &chunk);
    } else {
        // One (token, KV head) per chunk: token j's KV head kvh writes
        // out[j·q_dim + kvh·group·hd ..][..group·hd], chunk j·n_head_kv + kvh.
        let chunk = |ch: usize, out: &mut [f32]| {
            let (j, kvh) = (ch / n_head_kv, ch % n_head_kv);
            let pos = rows.at(j).1;
            let qs = &row(q, q_dim, j)[kvh * group * hd..(kvh + 1) * group * hd];
            TILED.with(|t| {
                let c = &mut *t.borrow_mut();
                c.clear();
                c.push_token(&[], group, pos, window, group_sinks(kvh));
                attend_group(qs, &c.lens, c.window_sinks(), head(j, kvh), hd, out);
            });
        };
        pool.for_each_slice_mut(&mut b.attn[..n * q_dim], group * hd, &chunk);
    }
}

/// A flash-attention side of the cache; [`KvCache::with_ring_slack`] makes f32 sides
/// only in pairs, which take the path above.
fn side(s: &KvStore) -> Side<'_> {
    match s {
        KvStore::F16(b) => Side::F16(b),
        KvStore::Q8_0(b) => Side::Q8_0(b),
        KvStore::F32(_) => unreachable!("an f32 side is always paired with an f32 side"),
    }
}

