//! A decode step allocates nothing once the session is warm: every buffer
//! is sized when the session starts or on its first use. Own test binary
//! because it installs a counting global allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::repo_root;
use moe::model::{KvType, Model};
use moe::synth::{TinyModel, WeightTypes};
use moe_quant::QType;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_steps_do_not_allocate() {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, n_expert) in [("dense", 0usize), ("moe", 4)] {
        let path = dir.join(format!("decode-alloc-{name}.gguf"));
        TinyModel {
            n_expert,
            n_embd: 256,
            n_ff: 512,
            types: WeightTypes { ffn_gate_up: QType::Q4_K, ..WeightTypes::uniform(QType::Q4_1) },
            ..Default::default()
        }
        .write(&path)
        .unwrap();
        let model = Model::open(&path).unwrap();
        for kv in [KvType::F32, KvType::F16] {
            let mut s = model.session_with_kv(64, kv).unwrap();
            s.prefill_last(&[1, 2, 3, 4]).unwrap();
            for t in 0..4 {
                s.forward(10 + t).unwrap(); // warm-up: first uses on every thread
            }
            let before = ALLOCS.load(Ordering::Relaxed);
            for t in 0..16 {
                s.forward(20 + t).unwrap();
            }
            let n = ALLOCS.load(Ordering::Relaxed) - before;
            assert_eq!(n, 0, "{name} {kv:?}: {n} allocations in 16 decode steps");
        }
        std::fs::remove_file(&path).ok();
    }
}
