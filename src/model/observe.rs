//! Watching the forward pass from outside: an optional observer a session
//! calls with each micro-batch's position, each layer's FFN input (after
//! `ffn_norm`) and each MoE layer's routing. Used to fit routers to real
//! hidden states (`moe upcycle --fit-text`) and to write routing traces
//! (`moe run --trace`). A session without an observer pays one `None`
//! check per layer.

/// Callbacks from [`super::Session`]; every method has a no-op default.
pub trait ForwardObserver {
    /// A micro-batch of `n_tokens` tokens at positions `pos..pos + n_tokens`
    /// starts.
    fn batch_start(&mut self, _pos: usize, _n_tokens: usize) {}
    /// Layer `layer`'s FFN input, `[token][n_embd]` (row-major, one row per
    /// token of the batch).
    fn ffn_input(&mut self, _layer: usize, _rows: &[f32], _n_embd: usize) {}
    /// MoE layer `layer` routed: `[token][n_expert_used]` (expert, weight),
    /// each token's weights renormalised to sum to 1, in the router's order.
    fn routed(&mut self, _layer: usize, _chosen: &[(usize, f32)], _n_expert_used: usize) {}
    /// The micro-batch finished (its logits are computed).
    fn batch_end(&mut self) {}
}
