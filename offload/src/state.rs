//! The cache's bookkeeping, all under one mutex: which experts are loading
//! or ready, their pins, the byte budget, and eviction.
//!
//! Invariants (checked by the tests in `offload/tests/`):
//! - `resident` is the sum of `charge` over all slots (loading and ready);
//! - only a `Ready` slot with `pins == 0` is ever evicted, so an expert in
//!   use (pinned from the moment `with_expert` decides to use it until its
//!   closure returns) and an expert being read are never evicted;
//! - a key has at most one slot, so concurrent requests for one key share
//!   one read.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use crate::direct_io::AlignedBuf;
use crate::expert::{ExpertBytes, ExpertKey};
use crate::loader::Pending;
use crate::policy::EvictionPolicy;
use crate::stats::{add, Counters};

/// `wanted_gen` of a slot no current request asked for.
pub(crate) const NOT_WANTED: u64 = 0;

/// One expert's three slabs in one owned, page-aligned buffer.
pub(crate) struct ExpertBuf {
    pub buf: AlignedBuf,
    /// Buffer ranges of gate, up, down.
    pub slabs: [Range<usize>; 3],
}

impl ExpertBuf {
    pub(crate) fn bytes(&self) -> ExpertBytes<'_> {
        let b = self.buf.as_slice();
        let [g, u, d] = &self.slabs;
        ExpertBytes {
            gate: &b[g.clone()],
            up: &b[u.clone()],
            down: &b[d.clone()],
        }
    }
}

/// Who started a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `with_expert` or `request`: the router chose this expert.
    Demand,
    /// `prefetch`: a prediction.
    Prefetch,
}

pub(crate) enum Phase {
    Loading(Arc<Pending>),
    Ready(Arc<ExpertBuf>),
}

pub(crate) struct Slot {
    /// Tells this load apart from an earlier or later one of the same key.
    pub id: u64,
    /// Bytes this slot holds against the budget.
    pub charge: u64,
    pub phase: Phase,
    pub origin: Origin,
    /// Whether any `with_expert` has used this load yet.
    pub used: bool,
    /// `with_expert` calls using (or waiting for) this load right now.
    pub pins: u32,
    /// The `request` generation that asked for it and has not used it yet.
    pub wanted_gen: u64,
}

/// Bytes reserved for a new load, perhaps with a buffer to reuse.
pub(crate) struct Grant {
    pub charge: u64,
    pub buf: Option<AlignedBuf>,
}

impl Grant {
    /// A fresh buffer of `need` bytes, whether or not it fits the budget.
    pub(crate) fn fresh(need: u64) -> Grant {
        Grant {
            charge: need,
            buf: None,
        }
    }
}

/// How hard a reservation may push to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// Hints (`request`, `prefetch`): evict only experts nobody is using or
    /// waiting for and that the current request does not want.
    Polite,
    /// `with_expert`: evict any expert nobody is using.
    Any,
}

pub(crate) struct State {
    pub slots: HashMap<ExpertKey, Slot>,
    pub policy: Box<dyn EvictionPolicy>,
    pub budget: u64,
    /// Bytes charged by all slots.
    pub resident: u64,
    pub request_gen: u64,
    next_id: u64,
}

impl State {
    pub(crate) fn new(budget: u64, policy: Box<dyn EvictionPolicy>) -> State {
        State {
            slots: HashMap::new(),
            policy,
            budget,
            resident: 0,
            request_gen: NOT_WANTED + 1,
            next_id: 0,
        }
    }

    /// Makes room for a load of `need` bytes by evicting in policy order.
    /// When an evicted expert's buffer has (about) the size needed, the
    /// grant hands it on, so the new load reuses its already-faulted pages
    /// instead of mapping fresh ones (on some machines faulting ~100 MB in
    /// costs as much as reading it). `None` if the bytes cannot fit
    /// (everything left is pinned, loading or, for `Polite`, wanted);
    /// nothing is charged either way: `insert_loading` charges the grant.
    pub(crate) fn reserve(&mut self, need: u64, room: Room, c: &Counters) -> Option<Grant> {
        let mut spare: Option<AlignedBuf> = None;
        loop {
            if let Some(b) = spare.take() {
                let cap = b.len() as u64;
                if reusable(cap, need) && self.resident + cap <= self.budget {
                    return Some(Grant {
                        charge: cap,
                        buf: Some(b),
                    });
                }
                // Otherwise dropped here: its bytes are no longer charged.
            }
            if self.resident + need <= self.budget {
                return Some(Grant {
                    charge: need,
                    buf: None,
                });
            }
            let (slots, gen) = (&self.slots, self.request_gen);
            let victim = self
                .policy
                .victim(&mut |k| slots.get(&k).is_some_and(|s| evictable(s, room, gen)))?;
            spare = self.evict(victim, c);
        }
    }

    /// Back under budget after a stretch over it, as far as pins (and for
    /// `Polite`, wants) allow.
    pub(crate) fn trim(&mut self, room: Room, c: &Counters) {
        while self.resident > self.budget {
            let (slots, gen) = (&self.slots, self.request_gen);
            match self
                .policy
                .victim(&mut |k| slots.get(&k).is_some_and(|s| evictable(s, room, gen)))
            {
                Some(k) => drop(self.evict(k, c)),
                None => return,
            }
        }
    }

    /// Removes `key`'s slot; returns its buffer if nothing else holds it.
    fn evict(&mut self, key: ExpertKey, c: &Counters) -> Option<AlignedBuf> {
        let slot = self.slots.remove(&key)?;
        debug_assert!(slot.pins == 0 && matches!(slot.phase, Phase::Ready(_)));
        self.policy.removed(key);
        self.resident -= slot.charge;
        let lc = c.layer(key.layer);
        add(&lc.evictions, 1);
        if slot.origin == Origin::Prefetch && !slot.used {
            add(&lc.prefetch_wasted, 1);
        }
        match slot.phase {
            Phase::Ready(buf) => Arc::try_unwrap(buf).ok().map(|b| b.buf),
            Phase::Loading(_) => None,
        }
    }

    /// Adds a loading slot for `key` (which must have none) and charges it.
    pub(crate) fn insert_loading(
        &mut self,
        key: ExpertKey,
        grant: Grant,
        origin: Origin,
        for_use: bool,
        c: &Counters,
    ) -> Arc<Pending> {
        self.next_id += 1;
        let id = self.next_id;
        let charge = grant.charge;
        let pending = Pending::new(key, id, origin, grant.buf);
        let wanted_gen = if origin == Origin::Demand && !for_use {
            self.request_gen
        } else {
            NOT_WANTED
        };
        let slot = Slot {
            id,
            charge,
            phase: Phase::Loading(Arc::clone(&pending)),
            origin,
            used: for_use,
            pins: u32::from(for_use),
            wanted_gen,
        };
        let old = self.slots.insert(key, slot);
        debug_assert!(old.is_none());
        self.policy.inserted(key);
        self.resident += charge;
        c.peak_resident
            .fetch_max(self.resident, std::sync::atomic::Ordering::Relaxed);
        pending
    }

    /// A load finished: its bytes become usable.
    pub(crate) fn set_ready(&mut self, key: ExpertKey, id: u64, buf: Arc<ExpertBuf>) {
        if let Some(s) = self.slots.get_mut(&key).filter(|s| s.id == id) {
            s.phase = Phase::Ready(buf);
        }
    }

    /// A load failed: forget it (a later use reads again).
    pub(crate) fn remove_failed(&mut self, key: ExpertKey, id: u64) {
        if self.slots.get(&key).is_some_and(|s| s.id == id) {
            let slot = self.slots.remove(&key).expect("checked above");
            self.policy.removed(key);
            self.resident -= slot.charge;
        }
    }

    /// Releases one pin taken by `with_expert` on load `id`.
    pub(crate) fn unpin(&mut self, key: ExpertKey, id: u64, c: &Counters) {
        if let Some(s) = self.slots.get_mut(&key).filter(|s| s.id == id) {
            s.pins -= 1;
        }
        self.trim(Room::Any, c);
    }
}

/// Whether an evicted expert's buffer of `cap` bytes may hold an expert of
/// `need` bytes (and be charged `cap`): up to a quarter larger. A model's
/// experts come in a few sizes (Qwen3-30B-A3B: Q4_K or Q6_K `down`, 2.65
/// or 3.06 MB), and a buffer that cannot be reused is unmapped and a fresh
/// one faulted in, pages the kernel zeroes: with a 1/64 slack that was 25%
/// of the CPU time of a 12 GiB Qwen3 run. The live cache and the simulator
/// both decide by this.
pub(crate) fn reusable(cap: u64, need: u64) -> bool {
    cap >= need && cap - need <= need / 4
}

fn evictable(s: &Slot, room: Room, gen: u64) -> bool {
    matches!(s.phase, Phase::Ready(_)) && s.pins == 0 && (room == Room::Any || s.wanted_gen != gen)
}
