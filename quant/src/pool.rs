//! A persistent compute pool for the many small parallel steps of a
//! forward pass (a decode step runs ~200 matrix-vector products of 0.1–30
//! MB each, microseconds apiece).
//!
//! Why not rayon: its idle workers sleep on a futex, and waking them costs
//! several microseconds per call, which is the whole runtime of a small
//! matvec (`cargo bench -p moe-quant --bench kernels -- rayon`). Here, the
//! workers spin on an epoch counter for a while after each job (as ggml's
//! thread pool does) and only then park, so back-to-back jobs start within
//! nanoseconds. rayon still serves the bulk, coarse-grained work elsewhere.
//!
//! Work is split into chunks claimed from an atomic counter, so a thread
//! that is descheduled (2 cores shared with the OS and the expert loaders)
//! is balanced by the others, and a job run by the caller alone (a nested
//! or concurrent call) still does every chunk.
//!
//! This module holds the pool's `unsafe`: handing a borrowed closure to
//! long-lived threads, which is sound because [`Pool::for_each_chunk`]
//! does not return before every worker is done with it.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks. Jobs of one forward pass
/// come every few microseconds; between tokens the gap is longer.
const SPIN: Duration = Duration::from_micros(200);

/// A job as the workers see it: the chunk body and the chunk counter.
struct Job<'a> {
    body: &'a (dyn Fn(usize) + Sync),
    next: &'a AtomicUsize,
    n_chunks: usize,
}

impl Job<'_> {
    /// Claims and runs chunks until none are left.
    fn drain(&self) {
        loop {
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c >= self.n_chunks {
                return;
            }
            (self.body)(c);
        }
    }
}

struct Shared {
    /// Bumped once per job; a worker runs the job when it sees a new value.
    epoch: AtomicUsize,
    /// The current job, valid from an epoch bump until `pending` reaches 0.
    job: UnsafeCell<Option<Job<'static>>>,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// A worker's job body panicked.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Parked workers wait here; `sleepers` counts them.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread holding `Pool::busy`, before
// it publishes the job with a Release bump of `epoch`, and only while no
// worker is reading it (`pending == 0`); workers read it after an Acquire
// load of `epoch` observes the bump. Every other field is a sync primitive.
unsafe impl Sync for Shared {}

/// A fixed set of worker threads plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    /// Held while a job runs, so that one job runs at a time.
    busy: Mutex<()>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool in which `threads` threads (the caller and `threads - 1`
    /// workers) run each job.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("moe-compute-{i}"))
                    .spawn(move || worker(&s))
                    .expect("spawning a compute thread")
            })
            .collect();
        Pool { shared, busy: Mutex::new(()), workers }
    }

    /// A pool with no workers: every job runs on the caller.
    pub fn serial() -> &'static Pool {
        static SERIAL: OnceLock<Pool> = OnceLock::new();
        SERIAL.get_or_init(|| Pool::new(1))
    }

    /// Threads that run a job, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `body(c)` once for every chunk `c` in `0..n_chunks`, spread over
    /// the pool's threads; returns when all are done. If the pool is already
    /// running a job (a nested call, or another thread's), the caller runs
    /// every chunk itself. A panic in `body` is re-raised here.
    pub fn for_each_chunk(&self, n_chunks: usize, body: &(dyn Fn(usize) + Sync)) {
        let next = AtomicUsize::new(0);
        let job = Job { body, next: &next, n_chunks };
        let guard = match self.busy.try_lock() {
            Ok(g) if n_chunks > 1 && !self.workers.is_empty() => g,
            _ => return job.drain(),
        };
        let s = &*self.shared;
        // SAFETY: only lifetimes change. The job borrows `body` and `next`,
        // which outlive this call, and this call does not return (or
        // unwind) before `pending` is 0, i.e. before every worker has
        // stopped using the job; the slot is cleared before returning.
        let erased: Job<'static> = unsafe { std::mem::transmute::<Job<'_>, Job<'static>>(job) };
        // SAFETY: we hold `busy` and `pending` is 0 (the previous job was
        // waited for), so no worker reads the slot now (see `Shared`).
        unsafe { *s.job.get() = Some(erased) };
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        // The caller works too; a panic is held until the workers are done.
        // SAFETY: the slot holds our job until we clear it below.
        let mine = catch_unwind(AssertUnwindSafe(|| unsafe { (*s.job.get()).as_ref() }.map(Job::drain)));
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) > 0 {
            spins = relax(spins);
        }
        // SAFETY: `pending` is 0: no worker reads the slot any more.
        unsafe { *s.job.get() = None };
        let worker_panicked = s.panicked.swap(false, Ordering::Relaxed);
        drop(guard);
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if worker_panicked {
            panic!("a compute-pool job panicked on a worker thread");
        }
    }
}

impl Pool {
    /// Runs `body(c, slice_c)` for the consecutive `chunk`-long pieces of
    /// `data` (the last may be shorter), spread over the pool's threads.
    pub fn for_each_slice_mut<T: Send>(&self, data: &mut [T], chunk: usize, body: &(dyn Fn(usize, &mut [T]) + Sync)) {
        let chunk = chunk.max(1);
        let len = data.len();
        let base = SendPtr(data.as_mut_ptr());
        let base = &base;
        self.for_each_chunk(len.div_ceil(chunk), &|c| {
            let start = c * chunk;
            let n = chunk.min(len - start);
            // SAFETY: `for_each_chunk` runs each chunk index exactly once, so
            // the pieces handed out are disjoint; each lies within `data`,
            // which is exclusively borrowed for the whole call.
            let piece = unsafe { std::slice::from_raw_parts_mut(base.0.add(start), n) };
            body(c, piece)
        });
    }
}

impl Pool {
    /// Views `data` as a row-major matrix with rows of `row_len` and runs
    /// `body` once for each block of `block` consecutive columns (the last
    /// may be narrower), spread over the pool's threads. E.g. a matmul's
    /// output, `[tokens][rows]`, split by weight rows.
    pub fn for_each_column_block<T: Send>(
        &self,
        data: &mut [T],
        row_len: usize,
        block: usize,
        body: &(dyn Fn(ColumnBlock<'_, T>) + Sync),
    ) {
        let block = block.max(1);
        assert!(
            row_len > 0 && data.len().is_multiple_of(row_len),
            "for_each_column_block: {} elements are not rows of {row_len}",
            data.len()
        );
        let n_rows = data.len() / row_len;
        let base = SendPtr(data.as_mut_ptr());
        let base = &base;
        self.for_each_chunk(row_len.div_ceil(block), &|c| {
            let start = c * block;
            body(ColumnBlock {
                base: base.0,
                row_len,
                n_rows,
                start,
                width: block.min(row_len - start),
                _data: std::marker::PhantomData,
            })
        });
    }
}

/// Columns `start..start + width` of every row of a matrix; see
/// [`Pool::for_each_column_block`].
pub struct ColumnBlock<'a, T> {
    base: *mut T,
    row_len: usize,
    n_rows: usize,
    start: usize,
    width: usize,
    _data: std::marker::PhantomData<&'a mut [T]>,
}

impl<T> ColumnBlock<'_, T> {
    /// The first column of the block.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Columns in the block.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows of the matrix.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// The block's part of row `j`.
    ///
    /// # Panics
    /// If `j >= n_rows()`.
    pub fn row(&mut self, j: usize) -> &mut [T] {
        assert!(j < self.n_rows, "row {j} of {}", self.n_rows);
        // SAFETY: blocks of one call cover disjoint column ranges (each
        // block index runs once) within the exclusively borrowed matrix, and
        // `&mut self` keeps this block's rows from aliasing each other.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(j * self.row_len + self.start), self.width) }
    }
}

/// A pointer into a slice that [`Pool::for_each_slice_mut`] hands out in
/// disjoint pieces.
struct SendPtr<T>(*mut T);
// SAFETY: only used to build disjoint `&mut [T]` pieces for other threads,
// which is what `T: Send` permits.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(s: &Shared) {
    // The epoch a pool starts at: a job published before this thread got
    // here is still seen as new.
    let mut seen = 0;
    loop {
        seen = wait_for_job(s, seen);
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: the epoch bump we saw (Acquire) published the job, and the
        // caller keeps it alive until we decrement `pending`.
        let job = unsafe { (*s.job.get()).as_ref() };
        if let Some(job) = job {
            if catch_unwind(AssertUnwindSafe(|| job.drain())).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

/// Spins, then parks, until `epoch` differs from `seen`; returns the new epoch.
fn wait_for_job(s: &Shared, seen: usize) -> usize {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let e = s.epoch.load(Ordering::Acquire);
        if e != seen {
            return e;
        }
        if spins % 1024 != 1023 || start.elapsed() < SPIN {
            spins = relax(spins);
            continue;
        }
        let mut l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
        s.sleepers.fetch_add(1, Ordering::SeqCst);
        while s.epoch.load(Ordering::SeqCst) == seen {
            l = s.wake.wait(l).unwrap_or_else(|e| e.into_inner());
        }
        s.sleepers.fetch_sub(1, Ordering::SeqCst);
        return s.epoch.load(Ordering::Acquire);
    }
}

/// One step of a wait loop: a pause instruction for the first spins, then
/// a yield, so that a waiter on an oversubscribed machine lets the thread it
/// waits for run. Returns the new spin count.
fn relax(spins: u32) -> u32 {
    if spins < YIELD_AFTER {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
    spins.saturating_add(1)
}

/// Pause-instruction spins (~10 ns each) before a waiter starts yielding.
const YIELD_AFTER: u32 = 2000;

static GLOBAL: OnceLock<Pool> = OnceLock::new();
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of compute threads of the global pool. Takes effect only
/// before the pool's first use; returns whether it did.
pub fn set_threads(threads: usize) -> bool {
    REQUESTED.store(threads.max(1), Ordering::SeqCst);
    GLOBAL.get().is_none_or(|p| p.threads() == threads.max(1))
}

/// The global pool for work big enough to split (`parallel`), else the
/// serial pool: callers decide by the size of their job whether a
/// hand-off to the workers pays.
pub fn for_work(parallel: bool) -> &'static Pool {
    if parallel {
        global()
    } else {
        Pool::serial()
    }
}

/// The global pool: [`set_threads`]'s count, else one thread per CPU.
pub fn global() -> &'static Pool {
    GLOBAL.get_or_init(|| {
        let n = match REQUESTED.load(Ordering::SeqCst) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Pool::new(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_once() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads);
            for n in [0usize, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..50 {
                    pool.for_each_chunk(n, &|c| {
                        hits[c].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50), "threads {threads} n {n}");
            }
        }
    }

    #[test]
    fn slices_are_disjoint_and_cover_the_data() {
        let pool = Pool::new(2);
        for (len, chunk) in [(0usize, 4usize), (1, 4), (17, 4), (64, 16), (65, 16)] {
            let mut data = vec![0usize; len];
            pool.for_each_slice_mut(&mut data, chunk, &|c, s| {
                for (i, x) in s.iter_mut().enumerate() {
                    *x += c * chunk + i + 1;
                }
            });
            assert_eq!(data, (1..=len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn column_blocks_are_disjoint_and_cover_the_matrix() {
        let pool = Pool::new(2);
        for (rows, row_len, block) in [(1usize, 5usize, 2usize), (3, 17, 4), (4, 64, 16)] {
            let mut data = vec![0usize; rows * row_len];
            pool.for_each_column_block(&mut data, row_len, block, &|mut b| {
                for j in 0..b.n_rows() {
                    let start = b.start();
                    for (i, x) in b.row(j).iter_mut().enumerate() {
                        *x += j * row_len + start + i + 1;
                    }
                }
            });
            assert_eq!(data, (1..=rows * row_len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn nested_and_concurrent_calls_complete() {
        let pool = Pool::new(2);
        let total = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..3 {
                sc.spawn(|| {
                    for _ in 0..200 {
                        pool.for_each_chunk(4, &|_| {
                            pool.for_each_chunk(3, &|_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 200 * 4 * 3);
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| pool.for_each_chunk(8, &|c| assert!(c != 5, "chunk 5"))));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.for_each_chunk(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn parked_workers_wake_up() {
        let pool = Pool::new(2);
        std::thread::sleep(SPIN * 5);
        let n = AtomicUsize::new(0);
        pool.for_each_chunk(16, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 16);
    }
}
