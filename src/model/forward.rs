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
use super::attention_block::self_attention;
use super::batch::{row, row_mut};
use super::ffn::dense_ffn;
use super::moe_ffn::{moe_ffn, predict_from_residual};
use super::ops::{rms_norm, rope_cache, RopeFreqs};
use super::session::{Prefetch, Session, Want};
use super::weights::FfnWeights;
use crate::error::Result;

impl Session<'_> {
    /// Runs one micro-batch through every layer, with attention in the given
    /// arithmetic (the only step whose float order depends on the batch;
    /// every other one treats each token alone).
    pub(super) fn run_batch_as(&mut self, tokens: &[u32], want: &mut Want<'_>, mode: Mode) -> Result<()> {
        let model = self.model;
        let c = model.config();
        let w = model.weights();
        let n = tokens.len();
        self.batch.resize(c, n);
        self.moe.reset_prediction();
        if let Some(o) = &mut self.observer {
            o.batch_start(self.pos, n);
        }
        self.embed(tokens);
        for l in 0..c.n_layer {
            let lw = &w.layers[l];
            // Attention block.
            self.norm_rows(&lw.attn_norm);
            self_attention(model, l, &mut self.batch, &mut self.kv, self.pos, self.n_ctx, mode);
            self.add_proj_to_residual();
            if l + 1 == c.n_layer && matches!(want, Want::Last) && self.observer.is_none() {
                // Only the last token's row feeds the logits asked for: its
                // FFN is the rest of the pass (as llama.cpp prunes with
                // inp_out_ids). Every token's K and V are stored already.
                // An observer sees every token's routing, so it keeps them.
                self.batch.keep_last(c.n_embd);
            }
            // FFN block.
            self.norm_rows(&lw.ffn_norm);
            if let Some(o) = &mut self.observer {
                o.ffn_input(l, &self.batch.xb[..self.batch.n * c.n_embd], c.n_embd);
            }
            match &lw.ffn {
                FfnWeights::Dense(f) => dense_ffn(model, f, c.n_ff, &mut self.batch),
                FfnWeights::Moe { .. } => {
                    let observer = self.observer.as_deref_mut();
                    moe_ffn(model, l, &mut self.batch, &mut self.moe, &mut self.layer_stats[l], observer)?;
                }
            }
            self.add_proj_to_residual();
            if self.batch.n == 1 && model.prefetch() == Prefetch::RouterOnResidual && c.is_moe_layer(l) {
                predict_from_residual(model, l, &mut self.batch, &mut self.moe);
            }
        }
        self.output(want);
        self.pos += n;
        if let Some(o) = &mut self.observer {
            o.batch_end();
        }
        Ok(())
    }

    /// Each token's embedding row into `x`, and its RoPE angles.
    fn embed(&mut self, tokens: &[u32]) {
        let model = self.model;
        let (c, w) = (model.config(), model.weights());
        let e = &w.token_embd;
        let freqs = RopeFreqs { base: c.rope.base, freq_scale: c.rope.freq_scale, factors: w.rope_freqs.as_deref() };
        for (j, &t) in tokens.iter().enumerate() {
            moe_quant::dequantize_row(e.qtype, model.matrix(e).row(t as usize), row_mut(&mut self.batch.x, c.n_embd, j));
            rope_cache(row_mut(&mut self.batch.rope, c.head_dim, j), self.pos + j, c.head_dim, freqs);
        }
    }

    /// `xb = rms_norm(x) · weight` for every token of the batch.
    fn norm_rows(&mut self, weight: &[f32]) {
        let c = self.model.config();
        let b = &mut self.batch;
        for j in 0..b.n {
            rms_norm(row_mut(&mut b.xb, c.n_embd, j), row(&b.x, c.n_embd, j), weight, c.rms_eps);
        }
        b.act.invalidate();
    }

    /// The residual add: `x += proj` for every token.
    fn add_proj_to_residual(&mut self) {
        let width = self.model.config().n_embd;
        let b = &mut self.batch;
        for (a, &p) in b.x[..b.n * width].iter_mut().zip(&b.proj[..b.n * width]) {
            *a += p;
        }
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
