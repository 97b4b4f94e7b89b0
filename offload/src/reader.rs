//! Positioned reads of one expert into its buffer: O_DIRECT on page-aligned
//! extents where the filesystem supports it, otherwise buffered reads of
//! the exact slab bytes followed by `POSIX_FADV_DONTNEED`, so the page cache
//! does not hold expert bytes a second time. Never goes through the mapping.
//!
//! An expert's extents (gate, up, down: three for the merged layout) are
//! read in parallel on a small I/O pool, so one expert is one round trip
//! of three concurrent reads, not three in a row. The pool has as many
//! threads as the cache has loaders: the number of reads in flight stays
//! what `--loader-threads` says, and a lone miss still gets three.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::direct_io::{self, ALIGN};
use crate::plan::{Extent, ReadPlan};
use crate::weight_file::WeightFile;

/// How the cache reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// O_DIRECT where the filesystem supports it, buffered reads otherwise.
    #[default]
    Auto,
    /// Always buffered reads (+ `POSIX_FADV_DONTNEED`): the fallback path.
    Buffered,
}

/// A fault injected into the cache's reads, to test the error paths the
/// real world reaches by way of a failing disk or a truncated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFault {
    /// The read call fails with this OS error number (e.g. `libc::EIO`).
    Errno(i32),
    /// The read call returns at most this many bytes (a short read, which
    /// the reader must continue past).
    Short(usize),
    /// The read call returns 0 bytes: end of file.
    Eof,
}

/// Decides for each read call, given its file offset and length, whether
/// to inject a fault. For tests; `None` in normal use.
#[derive(Clone)]
pub struct FaultInjector(pub std::sync::Arc<dyn Fn(u64, usize) -> Option<ReadFault> + Send + Sync>);

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultInjector")
    }
}

/// What one expert read cost.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadOutcome {
    /// Bytes the read calls returned (aligned extents under O_DIRECT).
    pub io_bytes: u64,
    /// Extents read with O_DIRECT / with buffered reads.
    pub direct_reads: u64,
    pub buffered_reads: u64,
}

pub(crate) struct SlabReader {
    file: Arc<WeightFile>,
    /// Reads the extents of one expert concurrently.
    io_pool: rayon::ThreadPool,
    direct: Option<File>,
    faults: Option<FaultInjector>,
    /// Cleared (for good) the first time an O_DIRECT read answers EINVAL.
    direct_ok: AtomicBool,
    pub(crate) direct_fallbacks: AtomicU64,
}

impl SlabReader {
    pub(crate) fn new(
        file: Arc<WeightFile>,
        mode: IoMode,
        faults: Option<FaultInjector>,
        io_threads: usize,
    ) -> io::Result<SlabReader> {
        let io_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(io_threads.max(1))
            .thread_name(|i| format!("moe-io-{i}"))
            .build()
            .map_err(io::Error::other)?;
        let direct = match mode {
            IoMode::Buffered => None,
            // Reopen the very file we have open (not whatever is at the path
            // now); fall back to the path where /proc is not mounted.
            IoMode::Auto => {
                let fd = std::os::unix::io::AsRawFd::as_raw_fd(file.file());
                direct_io::open_direct(std::path::Path::new(&format!("/proc/self/fd/{fd}")))
                    .or_else(|_| direct_io::open_direct(file.path()))
                    .ok()
            }
        };
        let direct_ok = AtomicBool::new(direct.is_some());
        Ok(SlabReader {
            file,
            io_pool,
            direct,
            faults,
            direct_ok,
            direct_fallbacks: AtomicU64::new(0),
        })
    }

    /// True while O_DIRECT is in use.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct_ok.load(Ordering::Relaxed)
    }

    /// Reads every extent of `plan` into `buf` (`plan.buf_len` bytes), all
    /// extents at once on the I/O pool.
    pub(crate) fn read(&self, plan: &ReadPlan, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        debug_assert_eq!(buf.len(), plan.buf_len);
        // Each extent's own part of the buffer: disjoint, in buffer order.
        let mut parts: Vec<(&Extent, &mut [u8])> = Vec::with_capacity(plan.extents.len());
        let mut rest = buf;
        let mut at = 0usize;
        for ext in &plan.extents {
            let len = (ext.file.end - ext.file.start) as usize;
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(ext.buf_offset - at);
            let (dst, tail) = tail.split_at_mut(len);
            parts.push((ext, dst));
            rest = tail;
            at = ext.buf_offset + len;
        }
        let outcomes: Vec<io::Result<ReadOutcome>> = if parts.len() < 2 {
            parts.into_iter().map(|(ext, dst)| self.read_extent(ext, dst)).collect()
        } else {
            self.io_pool
                .install(|| parts.into_par_iter().map(|(ext, dst)| self.read_extent(ext, dst)).collect())
        };
        let mut out = ReadOutcome::default();
        for o in outcomes {
            let o = o?;
            out.io_bytes += o.io_bytes;
            out.direct_reads += o.direct_reads;
            out.buffered_reads += o.buffered_reads;
        }
        // A file rewritten in place reads back other bytes: refuse them.
        // (The read's error names the file: the reason alone, not the path twice.)
        self.file.check_unchanged().map_err(|e| io::Error::other(e.reason()))?;
        Ok(out)
    }

    /// Reads one extent into `dst` (its aligned length): O_DIRECT while
    /// that works, buffered otherwise.
    fn read_extent(&self, ext: &Extent, dst: &mut [u8]) -> io::Result<ReadOutcome> {
        if let (Some(direct), true) = (&self.direct, self.is_direct()) {
            match self.read_direct(direct, ext, dst) {
                Ok(n) => {
                    return Ok(ReadOutcome {
                        io_bytes: n,
                        direct_reads: 1,
                        buffered_reads: 0,
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // This filesystem or device wants other alignment:
                    // buffered reads from now on.
                    if self.direct_ok.swap(false, Ordering::Relaxed) {
                        self.direct_fallbacks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ReadOutcome {
            io_bytes: self.read_buffered(ext, dst)?,
            direct_reads: 0,
            buffered_reads: 1,
        })
    }

    /// One `read_at` call, or the fault injected in its place.
    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self.faults.as_ref().and_then(|f| (f.0)(offset, buf.len())) {
            None => file.read_at(buf, offset),
            Some(ReadFault::Errno(e)) => Err(io::Error::from_raw_os_error(e)),
            Some(ReadFault::Short(n)) => {
                let n = n.min(buf.len());
                file.read_at(&mut buf[..n], offset)
            }
            Some(ReadFault::Eof) => Ok(0),
        }
    }

    /// O_DIRECT read of the aligned extent into `dst` (page-aligned, the
    /// extent's length). Returns the bytes the kernel returned.
    fn read_direct(&self, direct: &File, ext: &Extent, dst: &mut [u8]) -> io::Result<u64> {
        let need_end = (ext.need.end - ext.file.start) as usize;
        let mut pos = 0usize;
        while pos < need_end {
            let off = ext.file.start + pos as u64;
            if !off.is_multiple_of(ALIGN) {
                // Only a short read at end of file leaves us unaligned; a
                // bug or an odd filesystem could too. Finish buffered.
                let rest = &mut dst[pos..need_end];
                self.read_exact_at(self.file.file(), rest, off)?;
                return Ok((pos + rest.len()) as u64);
            }
            match self.read_at(direct, &mut dst[pos..], off) {
                Ok(0) => return Err(eof(off, ext.need.end)),
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(pos as u64)
    }

    /// Buffered read of exactly the needed bytes, then drop them from the
    /// page cache.
    fn read_buffered(&self, ext: &Extent, dst: &mut [u8]) -> io::Result<u64> {
        let from = (ext.need.start - ext.file.start) as usize;
        let to = (ext.need.end - ext.file.start) as usize;
        let file = self.file.file();
        self.read_exact_at(file, &mut dst[from..to], ext.need.start)?;
        direct_io::drop_page_cache(file, ext.need.start, ext.need.end);
        Ok((to - from) as u64)
    }

    /// `read_at` until `buf` is full: retries EINTR, continues after short
    /// reads, and turns end of file into an error saying where.
    fn read_exact_at(&self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        let mut pos = 0usize;
        while pos < buf.len() {
            match self.read_at(file, &mut buf[pos..], offset + pos as u64) {
                Ok(0) => return Err(eof(offset + pos as u64, end)),
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn eof(at: u64, needed_end: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "file ends at byte {at}, but the slab needs bytes up to {needed_end} (truncated file?)"
        ),
    )
}
