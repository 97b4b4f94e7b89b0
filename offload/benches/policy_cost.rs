//! What the eviction policies cost per decision at Qwen3-30B-A3B's scale:
//! 48 layers x 128 experts = 6,144 keys, 8 chosen per layer per token with
//! a skewed (real-text-like) choice, the cache holding half of them, so
//! most choices evict. Prints nanoseconds per access (an insert or touch,
//! plus the victim search and removal when it evicts); asserts nothing.
//!
//! `cargo bench -p moe-offload --bench policy_cost`

use std::collections::HashSet;
use std::time::Instant;

use moe_offload::{ExpertKey, PolicyKind};
use rand::{Rng, SeedableRng};

fn main() {
    let (layers, experts, k, tokens, capacity) = (48u32, 128u32, 8usize, 400usize, 3_072usize);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let accesses: Vec<ExpertKey> = (0..tokens * layers as usize * k)
        .map(|i| ExpertKey { layer: (i / k) as u32 % layers, expert: (rng.random::<f64>().powi(3) * experts as f64) as u32 })
        .collect();
    println!("policy   ns/access  evictions  ({} accesses, {layers}x{experts} keys, {capacity} resident)", accesses.len());
    for kind in [PolicyKind::Lru, PolicyKind::Lfu, PolicyKind::default()] {
        let mut policy = kind.build(layers as usize, k);
        let mut resident = HashSet::new();
        let mut evictions = 0u64;
        let t0 = Instant::now();
        for &key in &accesses {
            if resident.insert(key) {
                policy.inserted(key);
            } else {
                policy.touched(key);
            }
            while resident.len() > capacity {
                let v = policy.victim(&mut |v| v != key).expect("a key to evict");
                policy.removed(v);
                resident.remove(&v);
                evictions += 1;
            }
        }
        let ns = t0.elapsed().as_nanos() as f64 / accesses.len() as f64;
        println!("{:<8} {ns:>9.0}  {evictions:>9}", kind.name());
    }
}
