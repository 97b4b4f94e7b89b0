//! Turns a SIGBUS on a mapped model file into a clear fatal error.
//!
//! When a mapped file is truncated (or replaced in place) while mapped, a
//! later access past its new end raises SIGBUS, which would kill the
//! process with no word of why. Each [`WeightFile`](crate::WeightFile)
//! registers its mapping here; the handler checks the faulting address
//! against the registered mappings and, for one of ours, writes
//! `moe: fatal: PATH: ... (SIGBUS reading byte N)` to stderr and exits with
//! status 135 (128 + SIGBUS, what a shell reports for the signal). A
//! SIGBUS anywhere else goes to the handler that was installed before ours
//! (Rust's stack-overflow handler, or the default action).
//!
//! Everything the handler touches is async-signal-safe: fixed slots of
//! atomics (the message too, formatted into the slot at registration, so
//! nothing is allocated or leaked per file), `write(2)` and `_exit(2)`.
//! All of this module's unsafe code is here.

use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::Once;

/// Mappings watched at once; beyond that a mapping is simply not watched
/// (its SIGBUS then takes the default action, as without this module).
const SLOTS: usize = 64;
/// Longest message head kept (a longer path is cut).
const MSG: usize = 512;

struct Slot {
    /// Mapping start address; 0 while the slot is free or being filled.
    start: AtomicUsize,
    len: AtomicUsize,
    /// The message head, `moe: fatal: PATH: ...` (cut at `MSG` bytes).
    msg: [AtomicU8; MSG],
    msg_len: AtomicUsize,
    /// 0 = free, 1 = taken.
    taken: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    msg: [const { AtomicU8::new(0) }; MSG],
    msg_len: AtomicUsize::new(0),
    taken: AtomicUsize::new(0),
};

static WATCHED: [Slot; SLOTS] = [FREE; SLOTS];
/// The handler ours replaced (a leaked `libc::sigaction`).
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());
static INSTALL: Once = Once::new();

const TAIL: &[u8] = b"). Do not modify or truncate a model file while moe runs.\n";

/// Watches `len` bytes mapped at `start` from `path` until dropped.
pub(crate) struct SigbusGuard {
    slot: Option<usize>,
}

impl SigbusGuard {
    pub(crate) fn watch(start: *const u8, len: usize, path: &Path) -> SigbusGuard {
        INSTALL.call_once(install);
        if len == 0 {
            return SigbusGuard { slot: None };
        }
        let head = format!(
            "moe: fatal: {}: the model file was truncated or changed while mapped (SIGBUS reading byte ",
            path.display()
        );
        let head = &head.as_bytes()[..head.len().min(MSG)];
        for (i, slot) in WATCHED.iter().enumerate() {
            if slot.taken.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                for (dst, &b) in slot.msg.iter().zip(head) {
                    dst.store(b, Ordering::Relaxed);
                }
                slot.msg_len.store(head.len(), Ordering::Relaxed);
                slot.len.store(len, Ordering::Relaxed);
                // Published last: the handler ignores a slot whose start is 0.
                slot.start.store(start as usize, Ordering::Release);
                return SigbusGuard { slot: Some(i) };
            }
        }
        SigbusGuard { slot: None }
    }
}

impl Drop for SigbusGuard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let slot = &WATCHED[i];
            slot.start.store(0, Ordering::Release);
            slot.taken.store(0, Ordering::Release);
        }
    }
}

fn install() {
    // SAFETY: plain sigaction(2) calls on zero-initialised, fully written
    // structs; `on_sigbus` has the SA_SIGINFO signature. The previous
    // action is leaked so the handler can always read it.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        let previous = Box::into_raw(Box::new(std::mem::zeroed::<libc::sigaction>()));
        if libc::sigaction(libc::SIGBUS, &action, previous) == 0 {
            PREVIOUS.store(previous, Ordering::Release);
        } else {
            drop(Box::from_raw(previous));
        }
    }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &WATCHED {
        let start = slot.start.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr - start < slot.len.load(Ordering::Relaxed) {
            let mut msg = [0u8; MSG];
            let msg_len = slot.msg_len.load(Ordering::Relaxed).min(MSG);
            for (dst, src) in msg.iter_mut().zip(&slot.msg) {
                *dst = src.load(Ordering::Relaxed);
            }
            let mut digits = [0u8; 20];
            let n = decimal(addr - start, &mut digits);
            // SAFETY: the buffers are live locals of the lengths given;
            // write(2) and _exit(2) are async-signal-safe.
            unsafe {
                libc::write(2, msg.as_ptr().cast(), msg_len);
                libc::write(2, digits.as_ptr().cast(), n);
                libc::write(2, TAIL.as_ptr().cast(), TAIL.len());
                libc::_exit(128 + libc::SIGBUS);
            }
        }
    }
    chain(sig, info, ctx);
}

/// Hands a SIGBUS that is not ours to the previous handler; with none (or
/// the default or ignore action) restores the default action and returns,
/// so the faulting access runs again and takes it.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let previous = PREVIOUS.load(Ordering::Acquire);
    // SAFETY: `previous` is null or the leaked action saved at install; its
    // handler, if a function, has the signature its flags declare.
    unsafe {
        if !previous.is_null() {
            let p = &*previous;
            if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN {
                if p.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(p.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(p.sa_sigaction);
                    f(sig);
                }
                return;
            }
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
    }
}

/// `x` in decimal into `out`; returns the digit count.
fn decimal(mut x: usize, out: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (x % 10) as u8;
        n += 1;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = tmp[n - 1 - i];
    }
    n
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_digits() {
        let mut d = [0u8; 20];
        for x in [0usize, 7, 10, 4096, 123_456_789, usize::MAX] {
            let n = super::decimal(x, &mut d);
            assert_eq!(std::str::from_utf8(&d[..n]).unwrap(), x.to_string());
        }
    }
}
