//! Which cached expert to evict: a small trait, so the order can be swapped
//! without touching the cache's pinning and budget logic. Shipped: LRU,
//! LFU and LRFU (`--cache-policy`); `moe simulate` replays traces through
//! these same objects.

use std::collections::{BTreeSet, HashMap};

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
        // From the least recent end: the first key is nearly always
        // evictable (pins and wants hold only the current layer's few).
        self.order
            .iter()
            .rev()
            .map(|(k, _)| *k)
            .find(|&k| evictable(k))
    }
}

/// Per-key history kept by the frequency policies, also for keys not
/// resident now (an expert evicted and read again keeps its count).
#[derive(Debug, Clone, Copy, Default)]
struct History {
    /// Event clock of the last insert or touch.
    last: u64,
    /// LFU: events so far. LRFU: score at `last`.
    score: f64,
    /// Where the key sorts in `Scored::order` (see [`Scored::rank`]).
    rank: u64,
    resident: bool,
}

/// Shared by LFU and LRFU: an event clock, histories, and the resident
/// keys in eviction order (lowest score first, ties least recent), so a
/// victim costs O(log n) at 6,144 experts instead of a scan and sort.
#[derive(Debug, Default)]
struct Scored {
    clock: u64,
    keys: HashMap<ExpertKey, History>,
    /// Resident keys as (rank, last event, key): the first evictable one
    /// is the victim.
    order: BTreeSet<(u64, u64, ExpertKey)>,
    /// LRFU's decay per event (1 = LFU: no decay).
    decay: f64,
}

impl Scored {
    fn event(&mut self, key: ExpertKey, inserted: bool) {
        self.clock += 1;
        let (clock, decay) = (self.clock, self.decay);
        let h = self.keys.entry(key).or_default();
        if h.resident {
            self.order.remove(&(h.rank, h.last, key));
        }
        h.score = h.score * decay.powf((clock - h.last) as f64) + 1.0;
        h.last = clock;
        h.rank = Scored::rank(h.score, clock, decay);
        h.resident |= inserted;
        if h.resident {
            self.order.insert((h.rank, h.last, key));
        }
    }

    /// A key's score now is `score * decay^(now - last)`. Between two keys
    /// `now` is common, so they compare as `ln(score) - last * ln(decay)`,
    /// a number fixed between the key's own events. It is >= 0 (every
    /// score is >= 1 after an event, and ln(decay) <= 0), and the bits of
    /// a non-negative f64 order as the number does.
    fn rank(score: f64, last: u64, decay: f64) -> u64 {
        (score.ln() - last as f64 * decay.ln()).max(0.0).to_bits()
    }

    fn removed(&mut self, key: ExpertKey) {
        if let Some(h) = self.keys.get_mut(&key).filter(|h| h.resident) {
            h.resident = false;
            self.order.remove(&(h.rank, h.last, key));
        }
    }

    fn victim(&self, evictable: &mut dyn FnMut(ExpertKey) -> bool) -> Option<ExpertKey> {
        self.order.iter().map(|&(_, _, k)| k).find(|&k| evictable(k))
    }
}

/// Least frequently used first: counts every insert and touch since the
/// cache started, also across evictions; ties least recent first.
#[derive(Debug)]
pub struct LfuPolicy(Scored);

impl LfuPolicy {
    pub fn new() -> LfuPolicy {
        LfuPolicy(Scored {
            decay: 1.0,
            ..Scored::default()
        })
    }
}

impl Default for LfuPolicy {
    fn default() -> Self {
        LfuPolicy::new()
    }
}

/// LRFU (Lee et al., 1999): every insert or touch adds 1 to the key's
/// score, and scores halve every `half_life` events; the lowest score goes
/// first (ties least recent). A short half-life behaves like LRU, a long
/// one like LFU. Unlike LRU, it does not flush the whole cache on the
/// layer-by-layer cyclic scans a cache smaller than one token's experts
/// sees.
#[derive(Debug)]
pub struct LrfuPolicy(Scored);

impl LrfuPolicy {
    /// `half_life` in cache events (inserts and touches; a decode step
    /// makes about 2 per chosen expert per layer).
    pub fn new(half_life: f64) -> LrfuPolicy {
        LrfuPolicy(Scored {
            decay: 0.5f64.powf(1.0 / half_life.max(1e-9)),
            ..Scored::default()
        })
    }
}

macro_rules! scored_policy {
    ($t:ty) => {
        impl EvictionPolicy for $t {
            fn inserted(&mut self, key: ExpertKey) {
                self.0.event(key, true);
            }

            fn touched(&mut self, key: ExpertKey) {
                self.0.event(key, false);
            }

            fn removed(&mut self, key: ExpertKey) {
                self.0.removed(key);
            }

            fn victim(
                &mut self,
                evictable: &mut dyn FnMut(ExpertKey) -> bool,
            ) -> Option<ExpertKey> {
                self.0.victim(evictable)
            }
        }
    };
}

scored_policy!(LfuPolicy);
scored_policy!(LrfuPolicy);

/// The eviction policies the cache ships, by name (`--cache-policy`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyKind {
    Lru,
    Lfu,
    /// Half-life in tokens (see [`PolicyKind::build`]).
    Lrfu {
        half_life_tokens: f64,
    },
}

/// LRFU's default half-life, in tokens: best on the real-text traces of
/// the fitted SmolLM2 MoE (README, "Tuning the expert cache").
pub const DEFAULT_LRFU_HALF_LIFE: f64 = 16.0;

impl Default for PolicyKind {
    fn default() -> Self {
        PolicyKind::Lrfu {
            half_life_tokens: DEFAULT_LRFU_HALF_LIFE,
        }
    }
}

impl PolicyKind {
    /// `lru`, `lfu`, `lrfu` or `lrfu:HALF_LIFE_TOKENS`.
    pub fn parse(s: &str) -> Result<PolicyKind, String> {
        match s {
            "lru" => Ok(PolicyKind::Lru),
            "lfu" => Ok(PolicyKind::Lfu),
            "lrfu" => Ok(PolicyKind::default()),
            _ => match s.strip_prefix("lrfu:").map(str::parse::<f64>) {
                Some(Ok(h)) if h > 0.0 && h.is_finite() => Ok(PolicyKind::Lrfu {
                    half_life_tokens: h,
                }),
                _ => Err(format!(
                    "'{s}': expected lru, lfu, lrfu or lrfu:HALF_LIFE_TOKENS"
                )),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            PolicyKind::Lru => "lru".into(),
            PolicyKind::Lfu => "lfu".into(),
            PolicyKind::Lrfu { half_life_tokens } => format!("lrfu:{half_life_tokens}"),
        }
    }

    /// The policy for a model whose decode step requests `k` experts in
    /// each of `n_layers` MoE layers (LRFU converts its half-life from
    /// tokens to events: 2 per expert per layer, a request and a use).
    pub fn build(&self, n_layers: usize, k: usize) -> Box<dyn EvictionPolicy> {
        match *self {
            PolicyKind::Lru => Box::new(LruPolicy::new()),
            PolicyKind::Lfu => Box::new(LfuPolicy::new()),
            PolicyKind::Lrfu { half_life_tokens } => Box::new(LrfuPolicy::new(
                half_life_tokens * (2 * n_layers.max(1) * k.max(1)) as f64,
            )),
        }
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

    #[test]
    fn lfu_counts_survive_eviction_and_ties_go_least_recent() {
        let mut p = LfuPolicy::new();
        for e in 0..3 {
            p.inserted(k(e));
        }
        p.touched(k(0));
        p.touched(k(0));
        p.touched(k(2)); // counts 3, 1, 2
        assert_eq!(p.victim(&mut |_| true), Some(k(1)));
        p.removed(k(1));
        assert_eq!(p.victim(&mut |_| true), Some(k(2)));
        p.inserted(k(1)); // back with count 2: ties with 2, which is older
        assert_eq!(p.victim(&mut |_| true), Some(k(2)));
        assert_eq!(p.victim(&mut |x| x != k(2)), Some(k(1)));
    }

    /// The old definition, a scan over every resident key: lowest score
    /// now (`score * decay^(now - last)`), ties least recent.
    #[derive(Default)]
    struct ScanOracle {
        clock: u64,
        keys: HashMap<ExpertKey, (u64, f64, bool)>,
        decay: f64,
    }

    impl ScanOracle {
        fn event(&mut self, key: ExpertKey, inserted: bool) {
            self.clock += 1;
            let (clock, decay) = (self.clock, self.decay);
            let h = self.keys.entry(key).or_insert((0, 0.0, false));
            h.1 = h.1 * decay.powf((clock - h.0) as f64) + 1.0;
            h.0 = clock;
            h.2 |= inserted;
        }

        fn victim(&self, evictable: &dyn Fn(ExpertKey) -> bool) -> Option<ExpertKey> {
            let now = |&(last, score, _): &(u64, f64, bool)| score * self.decay.powf((self.clock - last) as f64);
            self.keys
                .iter()
                .filter(|(k, h)| h.2 && evictable(**k))
                .min_by(|a, b| now(a.1).total_cmp(&now(b.1)).then(a.1 .0.cmp(&b.1 .0)))
                .map(|(k, _)| *k)
        }
    }

    #[test]
    fn ranked_order_matches_a_full_scan_at_qwen3_scale() {
        use rand::{Rng, SeedableRng};
        // 48 layers x 128 experts, a skewed choice of 8 per layer, evicting
        // down to 3,000 resident keys; some keys not evictable at random.
        for (half_life, decay) in [(f64::INFINITY, 1.0), (12_288.0, 0.5f64.powf(1.0 / 12_288.0)), (40.0, 0.5f64.powf(1.0 / 40.0))] {
            let mut fast: Box<dyn EvictionPolicy> =
                if half_life.is_infinite() { Box::new(LfuPolicy::new()) } else { Box::new(LrfuPolicy::new(half_life)) };
            let mut oracle = ScanOracle { decay, ..ScanOracle::default() };
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let mut resident = std::collections::HashSet::new();
            for _token in 0..60 {
                for layer in 0..48u32 {
                    for _ in 0..8 {
                        let e = (rng.random::<f64>().powi(3) * 128.0) as u32;
                        let key = ExpertKey { layer, expert: e };
                        let inserted = resident.insert(key);
                        if inserted { fast.inserted(key) } else { fast.touched(key) }
                        oracle.event(key, inserted);
                        while resident.len() > 3_000 {
                            let salt: u32 = rng.random();
                            let ok = |k: ExpertKey| !(k.expert ^ k.layer ^ salt).is_multiple_of(5);
                            let want = oracle.victim(&ok).unwrap();
                            assert_eq!(fast.victim(&mut |k| ok(k)), Some(want), "half-life {half_life}");
                            fast.removed(want);
                            oracle.keys.get_mut(&want).unwrap().2 = false;
                            resident.remove(&want);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn lrfu_between_recency_and_frequency() {
        // 0 used 5 times long ago, 1 once just now.
        let run = |mut p: Box<dyn EvictionPolicy>| {
            for _ in 0..5 {
                p.touched(k(0));
            }
            p.inserted(k(0));
            for _ in 0..20 {
                p.touched(k(9));
            }
            p.inserted(k(1));
            p.victim(&mut |x| x != k(9))
        };
        // Half-life of 1 event: recency wins, 0 goes. 1000 events: frequency wins, 1 goes.
        assert_eq!(run(Box::new(LrfuPolicy::new(1.0))), Some(k(0)));
        assert_eq!(run(Box::new(LrfuPolicy::new(1000.0))), Some(k(1)));
        assert_eq!(
            PolicyKind::parse("lrfu:4"),
            Ok(PolicyKind::Lrfu {
                half_life_tokens: 4.0
            })
        );
        assert!(PolicyKind::parse("fifo").is_err());
    }
}
