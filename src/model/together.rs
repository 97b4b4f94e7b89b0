//! Decode steps of several sessions in one pass (`moe serve`'s slots): one
//! token per session, each at its own position in its own KV cache, run
//! through the layers as one batch, so an expert routed by several of
//! them is fetched and streamed once. Attention runs per token against
//! its own cache with a decode step's arithmetic, and every other step
//! treats each token alone: each session's logits are bit for bit those of
//! its own `forward`.

use super::attention::Mode;
use super::attention_block::Rows;
use super::batch::row;
use super::forward::Pass;
use super::kv_cache::KvCache;
use super::Session;
use crate::error::{Error, Result};

/// Runs `tokens[i]` at `sessions[i]`'s next position, for every i, and
/// leaves each session's logits for its next token
/// ([`Session::last_logits`]). Sessions of different models, with
/// different cache types, or with an observer run one after the other.
pub fn decode_together(sessions: &mut [&mut Session<'_>], tokens: &[u32]) -> Result<()> {
    if sessions.len() != tokens.len() {
        return Err(Error::InvalidArgument(format!("{} sessions but {} tokens", sessions.len(), tokens.len())));
    }
    for (s, &t) in sessions.iter().zip(tokens) {
        s.check_prompt(&[t])?;
    }
    let Some((first, rest)) = sessions.split_first_mut() else { return Ok(()) };
    let model = first.model;
    let shared = rest.iter().all(|s| std::ptr::eq(s.model, model) && s.observer.is_none() && same_layout(&s.kv, &first.kv));
    if rest.is_empty() || !shared || first.observer.is_some() {
        for (s, &t) in sessions.iter_mut().zip(tokens) {
            s.forward(t)?;
        }
        return Ok(());
    }
    let n_ctx = rest.iter().map(|s| s.n_ctx).fold(first.n_ctx, usize::max);
    let mut seqs: Vec<(&mut KvCache, usize)> = Vec::with_capacity(tokens.len());
    seqs.push((&mut first.kv, first.pos));
    seqs.extend(rest.iter_mut().map(|s| (&mut s.kv, s.pos)));
    let mut rows = Rows::Each(&mut seqs);
    let mut pass = Pass { model, batch: &mut first.batch, moe: &mut first.moe, stats: &mut first.layer_stats, observer: None };
    pass.run(tokens, &mut rows, n_ctx, Mode::Single, false)?;
    let mut logits = std::mem::take(&mut first.all_logits);
    first.all_rows_logits(&mut logits);
    let n_vocab = model.config().n_vocab;
    for (i, s) in sessions.iter_mut().enumerate() {
        s.logits.copy_from_slice(row(&logits, n_vocab, i));
        s.pos += 1;
    }
    sessions[0].all_logits = logits;
    Ok(())
}

/// Whether two caches hold the same element types with the same rotations
/// (attention reads every token's cache the same way).
fn same_layout(a: &KvCache, b: &KvCache) -> bool {
    use std::mem::discriminant;
    discriminant(&a.k) == discriminant(&b.k) && discriminant(&a.v) == discriminant(&b.v) && a.rotate_k == b.rotate_k && a.rotate_v == b.rotate_v
}
