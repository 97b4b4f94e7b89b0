//! Dense feed-forward blocks over a micro-batch: a layer's SwiGLU FFN, and
//! Qwen2-MoE's shared expert (the same FFN, scaled by a sigmoid gate).

use super::batch::Batch;
use super::ops::{silu, swiglu, swiglu_oai};
use crate::arch::FfnAct;
use super::weights::{DenseFfn, SharedExpert};
use super::Model;

/// `batch.proj = down(SiLU(gate·xb) ⊙ up·xb)` for every token; `width` is
/// the hidden size (`n_ff`, or the shared expert's).
pub(super) fn dense_ffn(model: &Model, f: &DenseFfn, width: usize, b: &mut Batch) {
    let n_embd = model.config().n_embd;
    let n = b.n;
    let x = b.act.get(f.gate.qtype.vec_dot_type(), &b.xb[..n * n_embd], n_embd);
    model.matrix(&f.gate).matmul(x, n, &mut b.gate[..n * width]);
    let x = b.act.get(f.up.qtype.vec_dot_type(), &b.xb[..n * n_embd], n_embd);
    model.matrix(&f.up).matmul(x, n, &mut b.up[..n * width]);
    swiglu_rows(&mut b.gate[..n * width], &b.up[..n * width], width);
    b.act_ff.invalidate();
    let h = b.act_ff.get(f.down.qtype.vec_dot_type(), &b.gate[..n * width], width);
    model.matrix(&f.down).matmul(h, n, &mut b.proj[..n * n_embd]);
}

/// The shared expert's output for every token, `out[j] = ffn(xb_j) ·
/// sigmoid(gate_inp · xb_j)`, `[token][n_embd]`. As llama.cpp builds it
/// (`qwen2moe.cpp`), the sigmoid is `silu(g) / g` with the scalar SiLU
/// (one element per row) and the scaling a separate f32 multiply. Uses
/// `batch.proj` as scratch.
pub(super) fn shared_expert(model: &Model, s: &SharedExpert, b: &mut Batch, gates: &mut Vec<f32>, out: &mut Vec<f32>) {
    let c = model.config();
    let n = b.n;
    gates.resize(n, 0.0);
    let x = b.act.get(s.gate_inp.qtype.vec_dot_type(), &b.xb[..n * c.n_embd], c.n_embd);
    model.matrix(&s.gate_inp).matmul(x, n, gates);
    for g in gates.iter_mut() {
        *g = silu(*g) / *g;
    }
    dense_ffn(model, &s.ffn, c.n_ff_shexp, b);
    out.clear();
    for (row, &g) in b.proj[..n * c.n_embd].chunks_exact(c.n_embd).zip(gates.iter()) {
        out.extend(row.iter().map(|&v| v * g));
    }
}

/// [`swiglu`] on every row (`width` wide) of a batch, rows spread over
/// the pool when there are several.
pub(super) fn swiglu_rows(gate: &mut [f32], up: &[f32], width: usize) {
    act_rows(FfnAct::SwiGlu, gate, up, width)
}

/// The gated activation `act` on every row (`width` wide) of a batch:
/// `gate[j] = act(gate[j], up[j])`, rows spread over the pool when there
/// are several.
pub(super) fn act_rows(act: FfnAct, gate: &mut [f32], up: &[f32], width: usize) {
    let f = match act {
        FfnAct::SwiGlu => swiglu,
        FfnAct::SwiGluOai => swiglu_oai,
    };
    moe_quant::pool::for_work(gate.len() >= 8 * width).for_each_slice_mut(gate, width, &|j, g| f(g, &up[j * width..(j + 1) * width]));
}
