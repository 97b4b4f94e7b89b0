//! The forward pass of one micro-batch, for every architecture: embeddings,
//! then each layer top to bottom
//!
//! ```text
//! x += attention(rms_norm(x) · attn_norm)          attention_block.rs
//! x += ffn(rms_norm(x) · ffn_norm)                 ffn.rs (dense) or moe_ffn.rs (routed experts + shared expert)
//! ```
//!
//! then the final norm and the output matrix. Architecture differences are
//! data (`ModelConfig::traits` and optional tensors), read by the blocks;
//! the order of the steps is llama.cpp's graph builders' (`src/models/*.cpp`).

use super::attention::Mode;
use super::attention_block::{self_attention, Rows};
use super::batch::{row, row_mut, Batch};
use super::ffn::dense_ffn;
use super::moe_ffn::{moe_ffn, predict_from_residual};
use super::ops::{rms_norm, rope_cache, RopeFreqs};
use super::moe_ffn::MoeScratch;
use super::observe::ForwardObserver;
use super::session::{LayerRunStats, Prefetch, Session, Want};
use super::Model;
use super::weights::FfnWeights;
use crate::error::Result;

impl Session<'_> {
    /// Runs one micro-batch through every layer, with attention in the given
    /// arithmetic (the only step whose float order depends on the batch;
    /// every other one treats each token alone).
    pub(super) fn run_batch_as(&mut self, tokens: &[u32], want: &mut Want<'_>, mode: Mode) -> Result<()> {
        let n = tokens.len();
        if let Some(o) = &mut self.observer {
            o.batch_start(self.pos, n);
        }
        // Only the last token's row feeds the logits asked for: its FFN in
        // the last layer is the rest of the pass (as llama.cpp prunes with
        // inp_out_ids). An observer sees every token's routing, so it keeps
        // them.
        let prune_to_last = matches!(want, Want::Last) && self.observer.is_none();
        let mut rows = Rows::One { kv: &mut self.kv, pos: self.pos };
        let mut pass = Pass { model: self.model, batch: &mut self.batch, moe: &mut self.moe, stats: &mut self.layer_stats, observer: self.observer.as_deref_mut() };
        pass.run(tokens, &mut rows, self.n_ctx, mode, prune_to_last)?;
        self.output(want);
        self.pos += n;
        if let Some(o) = &mut self.observer {
            o.batch_end();
        }
        Ok(())
    }

    /// The logits of every row of the batch, [row][n_vocab], into `out`
    /// (the final norm and the output matrix, as [`Self::output`] computes
    /// them for one row).
    pub(super) fn all_rows_logits(&mut self, out: &mut Vec<f32>) {
        let model = self.model;
        let (c, w) = (model.config(), model.weights());
        let b = &mut self.batch;
        let rows = b.n;
        for j in 0..rows {
            rms_norm(row_mut(&mut b.xb, c.n_embd, j), row(&b.x, c.n_embd, j), &w.output_norm, c.rms_eps);
        }
        b.act.invalidate();
        let x = b.act.get(w.output.qtype.vec_dot_type(), &b.xb[..rows * c.n_embd], c.n_embd);
        out.resize(rows * c.n_vocab, 0.0);
        model.matrix(&w.output).matmul(x, rows, &mut out[..rows * c.n_vocab]);
    }

    /// The final norm and the output matrix, for the tokens `want` asks for.
    fn output(&mut self, want: &mut Want<'_>) {
        let model = self.model;
        let c = model.config();
        let w = model.weights();
        let n = self.batch.n;
        let first = match want {
            Want::Last => n - 1,
            Want::All { .. } => 0,
        };
        let b = &mut self.batch;
        for j in first..n {
            rms_norm(row_mut(&mut b.xb, c.n_embd, j), row(&b.x, c.n_embd, j), &w.output_norm, c.rms_eps);
        }
        b.act.invalidate();
        let rows = n - first;
        let x = b.act.get(w.output.qtype.vec_dot_type(), &b.xb[first * c.n_embd..n * c.n_embd], c.n_embd);
        let out = if rows == 1 {
            &mut self.logits[..]
        } else {
            self.all_logits.resize(rows * c.n_vocab, 0.0);
            &mut self.all_logits[..]
        };
        model.matrix(&w.output).matmul(x, rows, out);
        if rows > 1 {
            self.logits.copy_from_slice(row(&self.all_logits, c.n_vocab, rows - 1));
        }
        if let Want::All { first: at, on_logits } = want {
            for j in 0..rows {
                let l = if rows == 1 { &self.logits[..] } else { row(&self.all_logits, c.n_vocab, j) };
                on_logits(*at + j, l);
            }
        }
    }
}

/// One pass's working state: a session's scratch, borrowed, so that the
/// caches the tokens read and write ([`Rows`]) can be other sessions'.
pub(super) struct Pass<'s, 'm> {
    pub(super) model: &'m Model,
    pub(super) batch: &'s mut Batch,
    pub(super) moe: &'s mut MoeScratch,
    pub(super) stats: &'s mut [LayerRunStats],
    pub(super) observer: Option<&'s mut (dyn ForwardObserver + 'm)>,
}

impl Pass<'_, '_> {
    /// Embeddings, then every layer; the residual stream is left in
    /// `batch.x` (one row per token, or only the last with `prune_to_last`).
    pub(super) fn run(&mut self, tokens: &[u32], rows: &mut Rows<'_, '_>, n_ctx: usize, mode: Mode, prune_to_last: bool) -> Result<()> {
        let model = self.model;
        let c = model.config();
        let w = model.weights();
        self.batch.resize(c, tokens.len());
        self.moe.reset_prediction();
        self.embed(tokens, rows);
        for l in 0..c.n_layer {
            let lw = &w.layers[l];
            // Attention block.
            self.norm_rows(&lw.attn_norm);
            self_attention(model, l, self.batch, rows, n_ctx, mode);
            self.add_proj_to_residual();
            if l + 1 == c.n_layer && prune_to_last {
                // Every token's K and V are stored already.
                self.batch.keep_last(c.n_embd);
            }
            // FFN block.
            self.norm_rows(&lw.ffn_norm);
            if let Some(o) = &mut self.observer {
                o.ffn_input(l, &self.batch.xb[..self.batch.n * c.n_embd], c.n_embd);
            }
            match &lw.ffn {
                FfnWeights::Dense(f) => dense_ffn(model, f, c.n_ff, self.batch),
                FfnWeights::Moe { .. } => {
                    let observer = self.observer.as_deref_mut();
                    moe_ffn(model, l, self.batch, self.moe, &mut self.stats[l], observer)?;
                }
            }
            self.add_proj_to_residual();
            if self.batch.n == 1 && model.prefetch() == Prefetch::RouterOnResidual && c.is_moe_layer(l) {
                predict_from_residual(model, l, self.batch, self.moe);
            }
        }
        Ok(())
    }

    /// Each token's embedding row into `x`, and its RoPE angles at its
    /// position.
    fn embed(&mut self, tokens: &[u32], rows: &Rows<'_, '_>) {
        let model = self.model;
        let (c, w) = (model.config(), model.weights());
        let e = &w.token_embd;
        let freqs = RopeFreqs { base: c.rope.base, freq_scale: c.rope.freq_scale, mscale: c.rope.mscale, yarn: c.rope.yarn, factors: w.rope_freqs.as_deref() };
        for (j, &t) in tokens.iter().enumerate() {
            moe_quant::dequantize_row(e.qtype, model.matrix(e).row(t as usize), row_mut(&mut self.batch.x, c.n_embd, j));
            rope_cache(row_mut(&mut self.batch.rope, c.head_dim, j), rows.at(j).1, c.head_dim, freqs);
        }
    }

    /// `xb = rms_norm(x) · weight` for every token of the batch.
    fn norm_rows(&mut self, weight: &[f32]) {
        let c = self.model.config();
        let b = &mut *self.batch;
        for j in 0..b.n {
            rms_norm(row_mut(&mut b.xb, c.n_embd, j), row(&b.x, c.n_embd, j), weight, c.rms_eps);
        }
        b.act.invalidate();
    }

    /// The residual add: `x += proj` for every token.
    fn add_proj_to_residual(&mut self) {
        let width = self.model.config().n_embd;
        let b = &mut *self.batch;
        for (a, &p) in b.x[..b.n * width].iter_mut().zip(&b.proj[..b.n * width]) {
            *a += p;
        }
    }
}
