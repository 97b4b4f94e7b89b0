//! Replaying a routing trace against other cache sizes and eviction
//! policies (`moe simulate`), without the model.
//!
//! The replay follows the shipped cache's demand path exactly (see
//! `state.rs` and `cache.rs`), as it runs with `--no-prefetch`:
//! - each MoE layer first *requests* its chosen experts (a prompt batch: the
//!   union of its tokens'): a resident one is touched and protected from
//!   eviction by the other requests of this layer; a missing one gets room
//!   by evicting unprotected experts in policy order, if it can, and is
//!   read (its first use is then a miss);
//! - each *access* (`with_expert`) is a hit if the expert is resident and
//!   not the first use of a demand read; a missing one is read now,
//!   evicting any unused expert, even over budget if nothing can go (the
//!   cache trims back afterwards);
//! - a spare buffer of an evicted expert of about the same size is reused
//!   and charged its own size, as the cache does.
//!
//! Prefetch hints in the trace are ignored: every policy is compared on
//! demand reads. Experts being read are never evicted; the replay treats a
//! demand read as in flight until its first use (the real cache may finish
//! earlier, which only matters when the budget holds fewer experts than a
//! layer asks for).
//!
//! Policies differ only in the victim they pick among evictable experts.
//! LRU, LFU and LRFU are replayed through the very policy objects the
//! cache uses (`policy.rs`), fed the same inserts, touches and removals;
//! static-hot and per-layer are LRU with pins or per-layer budgets;
//! [`Policy::Belady`] evicts
//! the expert used furthest in the future (the optimum for equal-sized
//! experts; an upper bound on any policy's hit rate under the same demand
//! rules).

use std::collections::HashMap;

use crate::expert::ExpertKey;
use crate::policy::{EvictionPolicy, PolicyKind};
use crate::state::reusable;
use crate::trace::{Event, Trace};

/// An eviction policy to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Least recently used (what `ExpertCache` ships).
    Lru,
    /// Least frequently used (`LfuPolicy`): counting every request and use
    /// since the start, also of experts evicted meanwhile; ties least recent.
    Lfu,
    /// LRFU (`LrfuPolicy`): each request or use adds 1 to a score that
    /// halves every `half_life` tokens' worth of events; the lowest score
    /// goes. Between LFU (long half-life) and LRU (short).
    Lrfu { half_life: f64 },
    /// The most used experts of the whole trace (by count, while they fit in
    /// the budget less room for the widest request) are loaded first and
    /// never evicted; the rest of the budget is LRU. The first use of each
    /// still counts as a miss (a cold start, like the other policies).
    StaticHot,
    /// The budget split evenly over layers, LRU within each layer.
    PerLayer,
    /// Belady's MIN: evict the expert whose next use is furthest away.
    Belady,
}

impl Policy {
    pub fn name(&self) -> String {
        match self {
            Policy::Lru => "lru".into(),
            Policy::Lfu => "lfu".into(),
            Policy::Lrfu { half_life } => format!("lrfu:{half_life}"),
            Policy::StaticHot => "static-hot".into(),
            Policy::PerLayer => "per-layer".into(),
            Policy::Belady => "belady".into(),
        }
    }

    /// `lru`, `lfu`, `lrfu` (the default half-life) or `lrfu:H`, `static-hot`,
    /// `per-layer`, `belady`.
    pub fn parse(s: &str) -> Result<Policy, String> {
        Ok(match s {
            "lru" => Policy::Lru,
            "lfu" => Policy::Lfu,
            "lrfu" => Policy::Lrfu { half_life: DEFAULT_HALF_LIFE },
            "static-hot" | "static" => Policy::StaticHot,
            "per-layer" => Policy::PerLayer,
            "belady" | "opt" | "min" => Policy::Belady,
            _ => match s.strip_prefix("lrfu:").map(str::parse::<f64>) {
                Some(Ok(h)) if h > 0.0 && h.is_finite() => Policy::Lrfu { half_life: h },
                _ => {
                    return Err(format!(
                        "'{s}': expected lru, lfu, lrfu, lrfu:HALF_LIFE_TOKENS, static-hot, per-layer or belady"
                    ))
                }
            },
        })
    }

    /// The cache policy object this replays through (`None`: Belady).
    fn online(&self, n_layer: usize, k: usize) -> Option<Box<dyn EvictionPolicy>> {
        let kind = match *self {
            Policy::Lru | Policy::StaticHot | Policy::PerLayer => PolicyKind::Lru,
            Policy::Lfu => PolicyKind::Lfu,
            Policy::Lrfu { half_life } => PolicyKind::Lrfu {
                half_life_tokens: half_life,
            },
            Policy::Belady => return None,
        };
        Some(kind.build(n_layer, k))
    }

    pub const ALL: [Policy; 6] = [
        Policy::Lru,
        Policy::Lfu,
        Policy::Lrfu {
            half_life: DEFAULT_HALF_LIFE,
        },
        Policy::StaticHot,
        Policy::PerLayer,
        Policy::Belady,
    ];
}

/// LRFU's default half-life, in tokens (the cache's).
pub const DEFAULT_HALF_LIFE: f64 = crate::policy::DEFAULT_LRFU_HALF_LIFE;

/// What one replay counted.
#[derive(Debug, Clone, PartialEq)]
pub struct SimResult {
    pub policy: Policy,
    pub budget: u64,
    /// `[layer]` (hits, misses).
    pub layers: Vec<(u64, u64)>,
    /// Bytes read (expert footprints), all passes.
    pub bytes_read: u64,
    /// Bytes read before the first pass (static-hot's preload).
    pub preload_bytes: u64,
    /// Bytes read per pass.
    pub pass_bytes: Vec<u64>,
    pub tokens: u64,
}

impl SimResult {
    pub fn hits(&self) -> u64 {
        self.layers.iter().map(|l| l.0).sum()
    }

    pub fn misses(&self) -> u64 {
        self.layers.iter().map(|l| l.1).sum()
    }

    pub fn hit_rate(&self) -> f64 {
        let n = self.hits() + self.misses();
        if n == 0 {
            0.0
        } else {
            self.hits() as f64 / n as f64
        }
    }

    pub fn layer_hit_rate(&self, l: usize) -> Option<f64> {
        let (h, m) = self.layers[l];
        (h + m > 0).then(|| h as f64 / (h + m) as f64)
    }

    pub fn bytes_per_token(&self) -> f64 {
        self.bytes_read as f64 / self.tokens.max(1) as f64
    }
}

/// Per expert, the sequence numbers of its accesses (for Belady).
struct Future {
    uses: HashMap<ExpertKey, Vec<u64>>,
    cursor: HashMap<ExpertKey, usize>,
}

impl Future {
    fn of(trace: &Trace) -> Future {
        let mut uses: HashMap<ExpertKey, Vec<u64>> = HashMap::new();
        for (i, a) in trace.accesses().enumerate() {
            uses.entry(a.0).or_default().push(i as u64);
        }
        Future {
            uses,
            cursor: HashMap::new(),
        }
    }

    /// The next use of `key` at or after access `now`.
    fn next_use(&mut self, key: ExpertKey, now: u64) -> u64 {
        let Some(u) = self.uses.get(&key) else {
            return u64::MAX;
        };
        let c = self.cursor.entry(key).or_insert(0);
        while *c < u.len() && u[*c] < now {
            *c += 1;
        }
        u.get(*c).copied().unwrap_or(u64::MAX)
    }
}

struct Slot {
    charge: u64,
    /// A demand read not used yet ("in flight": never evicted).
    loading: bool,
    /// Used since it was read.
    used: bool,
    pinned: bool,
    wanted_gen: u64,
    /// Never evicted (static-hot).
    permanent: bool,
}

/// Recency, for Belady's ties.
#[derive(Default, Clone, Copy)]
struct Meta {
    last: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Room {
    Polite,
    Any,
}

struct Sim<'t> {
    trace: &'t Trace,
    policy: Policy,
    budget: u64,
    /// Per-layer budgets (per-layer policy only).
    layer_budget: u64,
    slots: HashMap<ExpertKey, Slot>,
    meta: HashMap<ExpertKey, Meta>,
    /// The cache's own policy object (all but Belady).
    online: Option<Box<dyn EvictionPolicy>>,
    resident: u64,
    layer_resident: Vec<u64>,
    gen: u64,
    tick: u64,
    /// Accesses done so far (Belady's clock).
    access_no: u64,
    future: Option<Future>,
    result: SimResult,
}

impl Sim<'_> {
    fn bytes(&self, key: ExpertKey) -> u64 {
        self.trace.header.bytes_of(key)
    }

    /// A resident key was asked for or used (the policy's `touched`).
    fn touch(&mut self, key: ExpertKey) {
        self.tick += 1;
        self.meta.entry(key).or_default().last = self.tick;
        if let Some(p) = &mut self.online {
            p.touched(key);
        }
    }

    fn evictable(s: &Slot, room: Room, gen: u64) -> bool {
        !s.loading && !s.pinned && !s.permanent && (room == Room::Any || s.wanted_gen != gen)
    }

    /// The policy's victim among evictable slots (of `layer` only, for
    /// per-layer budgets).
    fn victim(&mut self, room: Room, layer: Option<u32>) -> Option<ExpertKey> {
        let gen = self.gen;
        let slots = &self.slots;
        let mut ok = |k: ExpertKey| {
            layer.is_none_or(|l| k.layer == l)
                && slots.get(&k).is_some_and(|s| Self::evictable(s, room, gen))
        };
        if let Some(p) = &mut self.online {
            return p.victim(&mut ok);
        }
        // Belady: the furthest next use; ties least recent.
        let now = self.access_no;
        let future = self.future.as_mut().expect("belady has its future");
        let mut best: Option<(ExpertKey, u64, u64)> = None;
        let mut cands: Vec<ExpertKey> = slots.keys().copied().filter(|&k| ok(k)).collect();
        cands.sort_unstable();
        for k in cands {
            let next = future.next_use(k, now);
            let last = self.meta.get(&k).map_or(0, |m| m.last);
            if best.is_none_or(|(_, n, l)| next > n || (next == n && last < l)) {
                best = Some((k, next, last));
            }
        }
        best.map(|b| b.0)
    }

    fn evict(&mut self, key: ExpertKey) -> u64 {
        let s = self.slots.remove(&key).expect("victims are resident");
        if let Some(p) = &mut self.online {
            p.removed(key);
        }
        self.resident -= s.charge;
        self.layer_resident[key.layer as usize] -= s.charge;
        s.charge
    }

    fn fits(&self, key: ExpertKey, charge: u64) -> bool {
        self.resident + charge <= self.budget
            && (self.policy != Policy::PerLayer
                || self.layer_resident[key.layer as usize] + charge <= self.layer_budget)
    }

    /// Room for `key`'s read: the charge, or `None` if it cannot fit.
    fn reserve(&mut self, key: ExpertKey, room: Room) -> Option<u64> {
        let need = self.bytes(key);
        let mut spare: Option<u64> = None;
        loop {
            if let Some(cap) = spare.take() {
                if reusable(cap, need) && self.fits(key, cap) {
                    return Some(cap);
                }
            }
            if self.fits(key, need) {
                return Some(need);
            }
            let scope = (self.policy == Policy::PerLayer).then_some(key.layer);
            let v = self.victim(room, scope)?;
            spare = Some(self.evict(v));
        }
    }

    /// A read starts (the policy's `inserted`).
    fn insert(&mut self, key: ExpertKey, charge: u64, loading: bool, pass_bytes: &mut u64) {
        self.tick += 1;
        self.meta.entry(key).or_default().last = self.tick;
        if let Some(p) = &mut self.online {
            p.inserted(key);
        }
        self.resident += charge;
        self.layer_resident[key.layer as usize] += charge;
        self.result.bytes_read += charge;
        *pass_bytes += charge;
        self.slots.insert(
            key,
            Slot {
                charge,
                loading,
                used: !loading,
                pinned: false,
                wanted_gen: if loading { self.gen } else { 0 },
                permanent: false,
            },
        );
    }

    fn request(&mut self, layer: u32, experts: &[u32], pass_bytes: &mut u64) {
        self.gen += 1;
        for &e in experts {
            let key = ExpertKey { layer, expert: e };
            if let Some(s) = self.slots.get_mut(&key) {
                s.wanted_gen = self.gen;
                self.touch(key);
            } else if let Some(charge) = self.reserve(key, Room::Polite) {
                self.insert(key, charge, true, pass_bytes);
            }
        }
    }

    fn access(&mut self, key: ExpertKey, pass_bytes: &mut u64) {
        let l = key.layer as usize;
        let hit = match self.slots.get_mut(&key) {
            Some(s) => {
                let first_demand_use = s.loading;
                s.loading = false;
                s.used = true;
                s.wanted_gen = 0;
                self.touch(key);
                !first_demand_use
            }
            None => {
                let charge = self
                    .reserve(key, Room::Any)
                    .unwrap_or_else(|| self.bytes(key));
                self.insert(key, charge, false, pass_bytes);
                self.slots.get_mut(&key).expect("just inserted").pinned = true;
                false
            }
        };
        self.access_no += 1;
        if hit {
            self.result.layers[l].0 += 1;
        } else {
            self.result.layers[l].1 += 1;
        }
        // Unpin, then trim back under budget (the cache's `unpin`).
        if let Some(s) = self.slots.get_mut(&key) {
            s.pinned = false;
        }
        while self.resident > self.budget {
            match self.victim(Room::Any, None) {
                Some(v) => {
                    self.evict(v);
                }
                None => break,
            }
        }
    }

    /// Static-hot: load the most used experts first, keeping room for the
    /// largest request of the trace.
    fn preload_hot(&mut self) {
        let mut counts: HashMap<ExpertKey, u64> = HashMap::new();
        for a in self.trace.accesses() {
            *counts.entry(a.0).or_default() += 1;
        }
        let mut hot: Vec<(ExpertKey, u64)> = counts.into_iter().collect();
        hot.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let h = &self.trace.header;
        let largest = h.expert_bytes.iter().flatten().copied().max().unwrap_or(0);
        let widest = self
            .trace
            .passes
            .iter()
            .flat_map(|p| p.events.iter())
            .filter_map(|e| match e {
                Event::Request { experts, .. } => Some(experts.len() as u64),
                _ => None,
            })
            .max()
            .unwrap_or(h.n_expert_used as u64);
        let room = self.budget.saturating_sub(widest * largest);
        for (key, _) in hot {
            let b = self.bytes(key);
            if self.resident + b > room {
                continue;
            }
            self.resident += b;
            self.layer_resident[key.layer as usize] += b;
            self.result.preload_bytes += b;
            self.tick += 1;
            self.meta.entry(key).or_default().last = self.tick;
            if let Some(p) = &mut self.online {
                p.inserted(key);
            }
            // `loading`: the first use still counts as a miss, so that
            // static-hot starts as cold as the others (Belady bounds it).
            self.slots.insert(
                key,
                Slot {
                    charge: b,
                    loading: true,
                    used: false,
                    pinned: false,
                    wanted_gen: 0,
                    permanent: true,
                },
            );
        }
    }
}

/// Replays `trace` with `policy` and a budget of `budget` bytes.
pub fn simulate(trace: &Trace, policy: Policy, budget: u64) -> SimResult {
    let n_layer = trace.header.n_layer;
    let mut sim = Sim {
        trace,
        policy,
        budget,
        layer_budget: budget / n_layer.max(1) as u64,
        slots: HashMap::new(),
        meta: HashMap::new(),
        resident: 0,
        layer_resident: vec![0; n_layer],
        gen: 0,
        tick: 0,
        access_no: 0,
        online: policy.online(trace.header.n_layer, trace.header.n_expert_used),
        future: (policy == Policy::Belady).then(|| Future::of(trace)),
        result: SimResult {
            policy,
            budget,
            layers: vec![(0, 0); n_layer],
            bytes_read: 0,
            preload_bytes: 0,
            pass_bytes: Vec::with_capacity(trace.passes.len()),
            tokens: trace.tokens(),
        },
    };
    if policy == Policy::StaticHot {
        sim.preload_hot();
    }
    for p in &trace.passes {
        let mut pass_bytes = 0;
        for e in &p.events {
            match e {
                Event::Request { layer, experts } => sim.request(*layer, experts, &mut pass_bytes),
                Event::Access { key, .. } => sim.access(*key, &mut pass_bytes),
                Event::Prefetch(_) => {}
            }
        }
        sim.result.pass_bytes.push(pass_bytes);
    }
    sim.result
}

/// Every policy at every size: `results[size][policy]`, sizes run in
/// parallel on scoped threads.
pub fn sweep(trace: &Trace, sizes: &[u64], policies: &[Policy]) -> Vec<Vec<SimResult>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = sizes
            .iter()
            .map(|&b| {
                s.spawn(move || {
                    policies
                        .iter()
                        .map(|&p| simulate(trace, p, b))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a replay panicked"))
            .collect()
    })
}

/// What a trace says about the machine it was recorded on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Compute seconds per decode token (wall time less waiting for reads).
    pub compute_s_per_token: f64,
    /// Bytes per second of demand reads as the run saw them (miss bytes
    /// over the time spent waiting for them), `None` without misses.
    pub read_bytes_per_s: Option<f64>,
}

impl Rates {
    /// From the trace's one-token passes (all passes if it has none).
    pub fn of(trace: &Trace) -> Rates {
        let decode: Vec<_> = trace.passes.iter().filter(|p| p.n_tokens == 1).collect();
        let passes: Vec<_> = if decode.is_empty() {
            trace.passes.iter().collect()
        } else {
            decode
        };
        let tokens: u64 = passes.iter().map(|p| p.n_tokens).sum();
        let compute_us: u64 = passes
            .iter()
            .map(|p| p.wall_us.saturating_sub(p.wait_us()))
            .sum();
        let (mut bytes, mut wait) = (0u64, 0u64);
        for p in &trace.passes {
            for a in p.accesses() {
                bytes += a.2;
                wait += a.3;
            }
        }
        Rates {
            compute_s_per_token: compute_us as f64 * 1e-6 / tokens.max(1) as f64,
            read_bytes_per_s: (wait > 0 && bytes > 0).then(|| bytes as f64 / (wait as f64 * 1e-6)),
        }
    }

    /// Predicted decode tok/s for a replay: per one-token pass, compute plus
    /// its reads at `read_bytes_per_s` (demand reads wait; no overlap).
    pub fn predict_tok_s(&self, trace: &Trace, r: &SimResult, read_bytes_per_s: f64) -> f64 {
        let mut secs = 0.0;
        let mut tokens = 0u64;
        let decode_only = trace.passes.iter().any(|p| p.n_tokens == 1);
        for (p, &b) in trace.passes.iter().zip(&r.pass_bytes) {
            if decode_only && p.n_tokens != 1 {
                continue;
            }
            tokens += p.n_tokens;
            secs += self.compute_s_per_token * p.n_tokens as f64 + b as f64 / read_bytes_per_s;
        }
        if secs > 0.0 {
            tokens as f64 / secs
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Outcome, Pass, TraceHeader};

    /// One layer, 4 experts of 100 bytes, top-1, the given access sequence,
    /// one token per pass.
    fn trace(seq: &[u32]) -> Trace {
        let header = TraceHeader {
            model_name: "t".into(),
            model_size: 1,
            model_id: 2,
            n_layer: 1,
            n_expert: 4,
            n_expert_used: 1,
            expert_bytes: vec![vec![100; 4]],
            settings: String::new(),
        };
        let passes = seq
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let key = ExpertKey {
                    layer: 0,
                    expert: e,
                };
                Pass {
                    pos: i as u64,
                    n_tokens: 1,
                    routes: Vec::new(),
                    events: vec![
                        Event::Request {
                            layer: 0,
                            experts: vec![e],
                        },
                        Event::Access {
                            key,
                            outcome: Outcome::Unknown,
                            bytes: 0,
                            wait_us: 0,
                        },
                    ],
                    wall_us: 10,
                }
            })
            .collect();
        Trace { header, passes, cut_short: false }
    }

    fn hits(seq: &[u32], policy: Policy, slots: u64) -> u64 {
        simulate(&trace(seq), policy, slots * 100).hits()
    }

    // Sequence a b c a b d a b c d with room for 2 / 3 experts (0=a ...).
    const SEQ: [u32; 10] = [0, 1, 2, 0, 1, 3, 0, 1, 2, 3];

    #[test]
    fn lru_counts() {
        // 2 slots: LRU never hits on this cycle of period 3.
        assert_eq!(hits(&SEQ, Policy::Lru, 2), 0);
        // 3 slots: a b c | a(h) b(h) d(evict c) a(h) b(h) c(evict d) d(evict a) → 4 hits.
        assert_eq!(hits(&SEQ, Policy::Lru, 3), 4);
        // Room for all 4: only the 4 cold misses.
        assert_eq!(hits(&SEQ, Policy::Lru, 4), 6);
    }

    #[test]
    fn belady_counts() {
        // 2 slots: a b | c evicts b (next use 4; a's is 3) | a hit | b evicts c (8; a 6) |
        // d evicts b (7; a 6) | a hit | b evicts a (never again; d 9) | c evicts b (never) | d hit → 3.
        assert_eq!(hits(&SEQ, Policy::Belady, 2), 3);
        // 3 slots: a b c | a, b hit | d evicts c (8; a 6, b 7) | a, b hit | c evicts a (a and b never
        // again: the least recent goes) | d hit → 5.
        assert_eq!(hits(&SEQ, Policy::Belady, 3), 5);
        assert_eq!(hits(&SEQ, Policy::Belady, 4), 6);
    }

    #[test]
    fn lfu_counts() {
        // 2 slots: a b | c evicts a (all 1: least recent) | a evicts b (1) | b evicts c (1) |
        // d evicts a (a, b 2: least recent) | a evicts d (1) | b hit | c evicts a (3 each: least
        // recent) | d evicts c (2 < 3) → 1.
        let h2 = hits(&SEQ, Policy::Lfu, 2);
        assert_eq!(h2, 1);
        // 3 slots: a b c | a, b hit | d evicts c (1) | a, b hit | c evicts d (1) | d evicts c (2 < 3) → 4.
        assert_eq!(hits(&SEQ, Policy::Lfu, 3), 4);
    }

    #[test]
    fn static_hot_and_per_layer_counts() {
        // Hot: a(3) b(3) c(2) d(2). 3 slots, room kept for one request of 1:
        // a, b pinned (their first uses are misses) → 4 hits on a, b; c and d share one slot.
        assert_eq!(hits(&SEQ, Policy::StaticHot, 3), 4);
        assert_eq!(
            simulate(&trace(&SEQ), Policy::StaticHot, 300).preload_bytes,
            200
        );
        // 2 slots: only a pinned: 2 hits; b, c, d thrash in the other slot.
        assert_eq!(hits(&SEQ, Policy::StaticHot, 2), 2);
        // One layer: per-layer is plain LRU.
        assert_eq!(hits(&SEQ, Policy::PerLayer, 3), hits(&SEQ, Policy::Lru, 3));
    }

    #[test]
    fn lrfu_between_lru_and_lfu() {
        // A very short half-life ranks by recency (LRU); a very long one by count (LFU).
        let seq: Vec<u32> = [0, 0, 0, 1, 2, 1, 2, 0, 1, 2, 0].to_vec();
        assert_eq!(
            hits(&seq, Policy::Lrfu { half_life: 0.01 }, 2),
            hits(&seq, Policy::Lru, 2)
        );
        assert_eq!(
            hits(&seq, Policy::Lrfu { half_life: 1e9 }, 2),
            hits(&seq, Policy::Lfu, 2)
        );
        assert!(
            hits(&seq, Policy::Belady, 2)
                >= hits(&seq, Policy::Lfu, 2).max(hits(&seq, Policy::Lru, 2))
        );
    }

    #[test]
    fn belady_bounds_every_policy() {
        // A pseudo-random sequence over 4 experts, every size.
        let mut x = 7u64;
        let seq: Vec<u32> = (0..300)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % 4) as u32
            })
            .collect();
        for slots in 1..=4 {
            let b = hits(&seq, Policy::Belady, slots);
            for p in Policy::ALL {
                assert!(
                    hits(&seq, p, slots) <= b,
                    "{} beats belady at {slots} slots",
                    p.name()
                );
            }
        }
    }

    #[test]
    fn bytes_and_prediction() {
        let t = trace(&SEQ);
        let r = simulate(&t, Policy::Lru, 300);
        assert_eq!(r.bytes_read, 600); // 6 misses of 100 bytes
        assert_eq!(r.pass_bytes.iter().sum::<u64>(), 600);
        let rates = Rates {
            compute_s_per_token: 0.01,
            read_bytes_per_s: Some(1e4),
        };
        // 10 tokens: 0.1 s compute + 600 B / 10 kB/s = 0.06 s → 62.5 tok/s.
        assert!((rates.predict_tok_s(&t, &r, 1e4) - 62.5).abs() < 1e-9);
        assert_eq!(
            Policy::parse("lrfu:4").unwrap(),
            Policy::Lrfu { half_life: 4.0 }
        );
        assert!(Policy::parse("fifo").unwrap_err().contains("expected lru"));
    }
}
