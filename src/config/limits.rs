//! Upper bounds on the hyper-parameters a GGUF file states, checked once
//! when the config is read. Each is far above every published model (noted
//! per bound) and far below overflow, so that every size the engine derives
//! from them fits in u64 (and a 64-bit usize) with room to spare, whether
//! the build wraps on overflow (release) or panics (debug):
//!
//! - Q width `head_count × key_length` ≤ [`MAX_Q_DIM`] = 2^20, checked
//!   multiplied; the KV width `head_count_kv × key_length` is at most that
//!   (head_count_kv divides head_count).
//! - KV cache bytes per position, `2 × 4 × block_count × kv width` ≤ 2^35;
//!   times a context, checked where the cache is allocated.
//! - Session buffers per token: sums of a few widths ≤ 2^20 times at most
//!   [`MAX_EXPERTS`] ≤ 2^30 elements.
//! - Tensor shapes expected from the config (`n_vocab × n_embd` ≤ 2^44) are
//!   compared with the file's, whose element and byte counts are checked
//!   when the file is opened (`gguf/tensor.rs`), so a weight is never
//!   larger than the file.

use crate::error::Result;
use crate::gguf::Metadata;

/// `embedding_length`: 16,384 at most today (Llama 3.1 405B).
pub const MAX_EMBD: u64 = 1 << 20;
/// `block_count`: 126 at most today (Llama 3.1 405B).
pub const MAX_LAYERS: u64 = 4096;
/// `attention.head_count` and `attention.head_count_kv`: 128 at most today.
pub const MAX_HEADS: u64 = 1 << 16;
/// `attention.key_length` (and `value_length`, `rope.dimension_count`,
/// which must equal it): 256 at most today (Gemma 2 and 3).
pub const MAX_HEAD_DIM: u64 = 4096;
/// `head_count × key_length`, the width of Q: 16,384 at most today.
pub const MAX_Q_DIM: u64 = 1 << 20;
/// `feed_forward_length`, `expert_feed_forward_length` and
/// `expert_shared_feed_forward_length`: 53,248 at most today (Llama 3.1 405B).
pub const MAX_FF: u64 = 1 << 20;
/// `expert_count`: 128 for Qwen3-MoE, 384 for Kimi K2; some 2025 MoEs have 512.
pub const MAX_EXPERTS: u64 = 512;
/// `vocab_size`, or the length of `tokenizer.ggml.tokens` without it:
/// 262,144 at most today (Gemma 3).
pub const MAX_VOCAB: u64 = 1 << 24;
/// `context_length`: 10,485,760 at most today (Llama 4 Scout).
pub const MAX_CONTEXT: u64 = 1 << 30;

/// A required integer key in `1..=max`.
pub fn positive(md: &Metadata, key: &str, max: u64) -> Result<usize> {
    in_range(md, key, md.u64(key)?, 1, max)
}

/// An optional integer key in `min..=max`.
pub fn opt_bounded(md: &Metadata, key: &str, min: u64, max: u64) -> Result<Option<usize>> {
    md.opt_u64(key)?.map(|v| in_range(md, key, v, min, max)).transpose()
}

/// `v`, the value of `key`, if it lies in `min..=max`; else an error
/// naming the file, the key and the range.
pub fn in_range(md: &Metadata, key: &str, v: u64, min: u64, max: u64) -> Result<usize> {
    match usize::try_from(v) {
        Ok(u) if (min..=max).contains(&v) => Ok(u),
        _ => Err(md.error(key, &format!("an integer in {min}..={max}"), &v.to_string())),
    }
}

/// A key that may be a scalar or a per-layer array, in `1..=max`; arrays
/// must be uniform (this engine does not run models with per-layer widths).
pub fn per_layer(md: &Metadata, key: &str, max: u64) -> Result<usize> {
    let Some(arr) = md.get(key).and_then(|v| v.as_array()) else {
        return positive(md, key, max);
    };
    let mut values = arr.iter().map(|v| v.as_u64());
    let first = values.next().flatten();
    match first {
        Some(f) if (1..=max).contains(&f) && values.all(|v| v == Some(f)) => in_range(md, key, f, 1, max),
        _ => Err(md.error(key, &format!("one value in 1..={max} for all layers"), &arr.describe())),
    }
}
