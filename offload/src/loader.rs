//! Loader threads. A load is one [`Pending`], shared by the slot that
//! awaits it, the job queued for the loaders, and every `with_expert`
//! waiting for it. Demand jobs go before prefetch jobs; a prefetch that
//! becomes wanted is queued again on the demand side, and whichever copy
//! a loader picks first does the read (`claim`), so a key is read once.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam::channel::{unbounded, Receiver, Select, Sender, TryRecvError};

use crate::cache::Shared;
use crate::direct_io::AlignedBuf;
use crate::expert::ExpertKey;
use crate::state::{ExpertBuf, Origin, Room};
use crate::stats::{add, nanos};

/// How a load ended, as seen by waiters. The buffer is held by the slot;
/// waiters hold a pin, so the `Weak` always upgrades for them, and a job
/// copy still sitting in a queue never keeps an evicted buffer alive.
type Outcome = Result<Weak<ExpertBuf>, (io::ErrorKind, String)>;

pub(crate) struct Pending {
    pub key: ExpertKey,
    pub id: u64,
    claimed: AtomicBool,
    /// Already queued on the demand side.
    on_demand_queue: AtomicBool,
    /// A buffer to read into, handed on from an evicted expert.
    recycled: Mutex<Option<AlignedBuf>>,
    done: Mutex<Option<Outcome>>,
    cv: Condvar,
}

impl Pending {
    pub(crate) fn new(
        key: ExpertKey,
        id: u64,
        origin: Origin,
        recycled: Option<AlignedBuf>,
    ) -> Arc<Pending> {
        Arc::new(Pending {
            key,
            id,
            claimed: AtomicBool::new(false),
            on_demand_queue: AtomicBool::new(origin == Origin::Demand),
            recycled: Mutex::new(recycled),
            done: Mutex::new(None),
            cv: Condvar::new(),
        })
    }

    /// True for the one caller that gets to do the read.
    fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// True if the load should (also) be queued on the demand side: not
    /// started yet and not queued there already.
    pub(crate) fn needs_promotion(&self) -> bool {
        !self.claimed.load(Ordering::Acquire) && !self.on_demand_queue.swap(true, Ordering::AcqRel)
    }

    fn complete(&self, outcome: Outcome) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.cv.notify_all();
    }

    /// Ends a load that never reached a loader.
    pub(crate) fn fail_now(&self, why: &str) {
        self.complete(Err((io::ErrorKind::Other, why.to_string())));
    }

    /// Blocks until the load ends.
    pub(crate) fn wait(&self) -> Result<Weak<ExpertBuf>, io::Error> {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match &*done {
                Some(Ok(w)) => return Ok(w.clone()),
                Some(Err((kind, msg))) => return Err(io::Error::new(*kind, msg.clone())),
                None => done = self.cv.wait(done).unwrap_or_else(PoisonError::into_inner),
            }
        }
    }
}

pub(crate) struct Queues {
    pub demand: Sender<Arc<Pending>>,
    pub prefetch: Sender<Arc<Pending>>,
}

pub(crate) fn spawn(
    shared: &Arc<Shared>,
    threads: usize,
) -> io::Result<(Queues, Vec<JoinHandle<()>>)> {
    let (demand_tx, demand_rx) = unbounded();
    let (prefetch_tx, prefetch_rx) = unbounded();
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let (shared, demand, prefetch) =
            (Arc::clone(shared), demand_rx.clone(), prefetch_rx.clone());
        let h = std::thread::Builder::new()
            .name(format!("moe-loader-{i}"))
            .spawn(move || loader_main(&shared, &demand, &prefetch))?;
        handles.push(h);
    }
    Ok((
        Queues {
            demand: demand_tx,
            prefetch: prefetch_tx,
        },
        handles,
    ))
}

fn loader_main(
    shared: &Shared,
    demand: &Receiver<Arc<Pending>>,
    prefetch: &Receiver<Arc<Pending>>,
) {
    while let Some(job) = next_job(demand, prefetch) {
        if shared.shutdown.load(Ordering::Acquire) {
            break;
        }
        if !job.claim() {
            continue; // its other copy was (or is being) read
        }
        if catch_unwind(AssertUnwindSafe(|| load(shared, &job))).is_err() {
            // A bug, not an I/O error; still, never leave a waiter hanging.
            finish_failed(
                shared,
                &job,
                io::Error::other("expert loader thread panicked"),
            );
        }
    }
}

/// The next job, demand first. `None` once the cache is dropped.
fn next_job(
    demand: &Receiver<Arc<Pending>>,
    prefetch: &Receiver<Arc<Pending>>,
) -> Option<Arc<Pending>> {
    loop {
        match demand.try_recv() {
            Ok(j) => return Some(j),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        match prefetch.try_recv() {
            Ok(j) => return Some(j),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        let mut sel = Select::new();
        sel.recv(demand);
        sel.recv(prefetch);
        sel.ready();
    }
}

/// Reads one expert into a fresh buffer and publishes it.
fn load(shared: &Shared, job: &Pending) {
    let plan = shared.plan(job.key).expect("only valid keys are queued");
    let start = Instant::now();
    let recycled = job
        .recycled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if recycled.is_some() {
        add(&shared.counters.recycled_buffers, 1);
    }
    let result = recycled
        .map_or_else(|| AlignedBuf::zeroed(plan.buf_len), Ok)
        .and_then(|mut buf| {
            // A recycled buffer may be a little larger; stale bytes past (or
            // between) the slabs are never exposed.
            let outcome = shared
                .reader
                .read(plan, &mut buf.as_mut_slice()[..plan.buf_len])?;
            Ok((buf, outcome))
        });
    let elapsed = start.elapsed();
    let (buf, outcome) = match result {
        Ok(r) => r,
        Err(e) => return finish_failed(shared, job, e),
    };
    let c = &shared.counters;
    let lc = c.layer(job.key.layer);
    add(&lc.loads, 1);
    add(&lc.bytes_read, plan.payload);
    add(&lc.io_bytes, outcome.io_bytes);
    add(&lc.read_ns, nanos(elapsed));
    add(&c.direct_reads, outcome.direct_reads);
    add(&c.buffered_reads, outcome.buffered_reads);
    let buf = Arc::new(ExpertBuf {
        buf,
        slabs: plan.slabs.clone(),
    });
    let weak = Arc::downgrade(&buf);
    let mut st = shared.lock();
    st.set_ready(job.key, job.id, buf);
    // A stretch over budget may have waited on this load to end. Polite:
    // never evict what the current layer asked for and has not used yet.
    st.trim(Room::Polite, c);
    drop(st);
    job.complete(Ok(weak));
}

fn finish_failed(shared: &Shared, job: &Pending, e: io::Error) {
    add(&shared.counters.read_errors, 1);
    shared.lock().remove_failed(job.key, job.id);
    job.complete(Err((e.kind(), e.to_string())));
}
