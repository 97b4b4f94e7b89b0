//! The activations of one micro-batch of tokens, row-major `[token][width]`,
//! grown on demand and then reused: a decode step is a batch of one and
//! allocates nothing.

use super::act_cache::ActCache;
use crate::config::ModelConfig;

#[derive(Default)]
pub struct Batch {
    /// Tokens in the current micro-batch.
    pub n: usize,
    /// Rows every buffer has room for.
    cap: usize,
    /// Residual stream [n_embd].
    pub x: Vec<f32>,
    /// Normalised input of the current sub-layer [n_embd].
    pub xb: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Concatenated head outputs [q_dim].
    pub attn: Vec<f32>,
    /// Output of a projection back to [n_embd].
    pub proj: Vec<f32>,
    /// FFN hidden [n_ff_max] (dense, shared expert, or the tokens of one expert).
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    /// RoPE cos/sin per token [head_dim].
    pub rope: Vec<f32>,
    /// Quantized copies of `xb`.
    pub act: ActCache,
    /// Quantized copies of `attn` or of the FFN hidden rows.
    pub act_ff: ActCache,
}

impl Batch {
    /// Makes room for `n` tokens and sets the batch size to `n`.
    pub fn resize(&mut self, c: &ModelConfig, n: usize) {
        self.n = n;
        if n <= self.cap {
            return;
        }
        self.cap = n;
        for (buf, width) in [
            (&mut self.x, c.n_embd),
            (&mut self.xb, c.n_embd),
            (&mut self.q, c.q_dim()),
            (&mut self.k, c.kv_dim()),
            (&mut self.v, c.kv_dim()),
            (&mut self.attn, c.q_dim()),
            (&mut self.proj, c.n_embd),
            (&mut self.gate, c.n_ff_max()),
            (&mut self.up, c.n_ff_max()),
            (&mut self.rope, c.head_dim),
        ] {
            buf.resize(n * width, 0.0);
        }
    }

    /// Keeps only the last token: its residual row (`x`, rows of `width`)
    /// becomes row 0 of a batch of one.
    pub fn keep_last(&mut self, width: usize) {
        if self.n > 1 {
            let last = (self.n - 1) * width;
            self.x.copy_within(last..last + width, 0);
            self.n = 1;
        }
    }

    /// Bytes of f32 activations per token of batch capacity.
    pub fn bytes_per_token(c: &ModelConfig) -> usize {
        4 * (4 * c.n_embd + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.n_ff_max() + c.head_dim)
    }
}

/// Row `j` of a `[token][width]` buffer.
pub fn row(buf: &[f32], width: usize, j: usize) -> &[f32] {
    &buf[j * width..(j + 1) * width]
}

/// Row `j` of a `[token][width]` buffer, mutably.
pub fn row_mut(buf: &mut [f32], width: usize, j: usize) -> &mut [f32] {
    &mut buf[j * width..(j + 1) * width]
}
