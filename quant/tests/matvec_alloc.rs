//! `QMatrix::matvec_with` allocates nothing, for every tier and weight type
//! (serial sizes and the parallel split over the compute pool). Own test binary
//! because it installs a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use moe_quant::{available_tiers, quantize_activations, QMatrix, QType};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
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

/// Starts the global compute pool and waits until every worker thread has
/// run a job. A worker allocates while it starts up (std's thread start);
/// on a loaded machine that can happen many calls after the pool is made,
/// and the process-wide counter would charge it to whatever matvec is
/// being measured then. `for_each_chunk` returns only after every worker
/// has finished the job, so after this no worker is still starting.
fn start_compute_pool() {
    let pool = moe_quant::pool::global();
    for _ in 0..2 {
        pool.for_each_chunk(4 * pool.threads(), &|_| {});
    }
}

#[test]
fn matvec_does_not_allocate() {
    start_compute_pool();
    for t in QType::WEIGHT_TYPES {
        let (rows, cols) = (37, 3 * t.block_len().max(32));
        let bytes: Vec<u8> = (0..rows * t.row_bytes_usize(cols).unwrap())
            .map(|i| (i * 7 % 61) as u8)
            .collect();
        let m = QMatrix::new(t, rows, cols, &bytes).unwrap();
        let at = t.vec_dot_type();
        let mut act = vec![0u8; at.row_bytes_usize(cols).unwrap()];
        let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 - 6.0).collect();
        quantize_activations(at, &x, &mut act);
        let mut out = vec![0.0f32; rows];
        let tiers = available_tiers();
        for tier in tiers {
            m.matvec_with(tier, &act, &mut out); // warm-up (feature detection caches)
            let before = ALLOCS.load(Ordering::Relaxed);
            m.matvec_with(tier, &act, &mut out);
            assert_eq!(
                ALLOCS.load(Ordering::Relaxed),
                before,
                "{tier} {t} allocated"
            );
        }
    }
}
