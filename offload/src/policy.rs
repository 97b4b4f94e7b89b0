//! Which cached expert to evict: a small trait, so the order can be swapped
//! (LRU first; LFU or a router-frequency policy could follow) without
//! touching the cache's pinning and budget logic.

use lru::LruCache;

use crate::expert::ExpertKey;

/// An eviction order over the keys the cache holds. The cache tells the
/// policy what happens; the policy only ranks. Whether a key may be evicted
/// right now (pinned, still loading, wanted by the current layer) is the
/// cache's business: it passes that test to [`EvictionPolicy::victim`].
pub trait EvictionPolicy: Send {
    /// `key` entered the cache (its load just started).
    fn inserted(&mut self, key: ExpertKey);
    /// `key` was used or asked for again.
    fn touched(&mut self, key: ExpertKey);
    /// `key` left the cache (evicted, or its load failed).
    fn removed(&mut self, key: ExpertKey);
    /// The key to evict first among those for which `evictable` is true,
    /// or `None` if there is none. Must not forget the key: the cache calls
    /// [`EvictionPolicy::removed`] when it actually evicts.
    fn victim(&mut self, evictable: &mut dyn FnMut(ExpertKey) -> bool) -> Option<ExpertKey>;
}

/// Least recently used first.
pub struct LruPolicy {
    /// Most recent at the front. Unbounded: the cache's byte budget, not an
    /// entry count, decides when to evict.
    order: LruCache<ExpertKey, ()>,
}

impl LruPolicy {
    pub fn new() -> LruPolicy {
        LruPolicy {
            order: LruCache::unbounded(),
        }
    }
}

impl Default for LruPolicy {
    fn default() -> Self {
        LruPolicy::new()
    }
}

impl EvictionPolicy for LruPolicy {
    fn inserted(&mut self, key: ExpertKey) {
        self.order.put(key, ());
    }

    fn touched(&mut self, key: ExpertKey) {
        if !self.order.promote(&key) {
            self.order.put(key, ());
        }
    }

    fn removed(&mut self, key: ExpertKey) {
        self.order.pop(&key);
    }

    fn victim(&mut self, evictable: &mut dyn FnMut(ExpertKey) -> bool) -> Option<ExpertKey> {
        // At most a few hundred keys (layers x experts): a scan from the
        // least recent end is cheap next to reading one expert.
        self.order
            .iter()
            .rev()
            .map(|(k, _)| *k)
            .find(|&k| evictable(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(e: u32) -> ExpertKey {
        ExpertKey {
            layer: 0,
            expert: e,
        }
    }

    #[test]
    fn lru_order_skips_unevictable() {
        let mut p = LruPolicy::new();
        for e in 0..4 {
            p.inserted(k(e));
        }
        p.touched(k(0)); // order, least recent first: 1 2 3 0
        assert_eq!(p.victim(&mut |_| true), Some(k(1)));
        assert_eq!(p.victim(&mut |x| x != k(1)), Some(k(2)));
        p.removed(k(1));
        assert_eq!(p.victim(&mut |_| true), Some(k(2)));
        assert_eq!(p.victim(&mut |_| false), None);
    }
}
