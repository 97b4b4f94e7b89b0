//! A copy of the resident weights (everything but the expert slabs) in
//! anonymous memory that asks for transparent huge pages.
//!
//! Why: a decode step streams every resident byte once, and reading through
//! the file mapping means 4 KiB page-cache pages. Streaming a 92 MB model
//! by hand (2 threads, AVX2 loads) ran at 25–30 GB/s from the mapping and
//! 36–49 GB/s from a huge-page copy on the same machine in the same minute;
//! the hardware prefetchers stop at every 4 KiB page, and the TLB covers
//! 512× more bytes. The expert cache's buffers already live in huge pages
//! (`direct_io::AlignedBuf`); this puts the rest of the model there too.
//!
//! The copy is made with positioned reads (no page faults on the mapping),
//! and the bytes are identical, so results are too. Memory: the copy takes
//! the resident size once; the page cache of those ranges is clean and can
//! be dropped ([`ResidentCopy::drop_page_cache`]) where memory is tight.

use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::direct_io::{self, AlignedBuf};
use crate::WeightFile;

/// Bytes per read (and between progress calls).
const STEP: usize = 64 << 20;
/// Each range starts at a multiple of this in the copy (a cache line).
const ALIGN: usize = 64;

/// Making the copy failed.
#[derive(Debug, thiserror::Error)]
pub enum ResidentError {
    #[error("{path}: resident range {start}..{end} lies outside the file ({len} bytes)")]
    OutOfBounds { path: PathBuf, start: u64, end: u64, len: u64 },
    #[error("{path}: cannot allocate {bytes} bytes for the resident weights: {source}")]
    Alloc {
        path: PathBuf,
        bytes: u64,
        #[source]
        source: io::Error,
    },
    #[error("{path}: reading resident weights at bytes {start}..{end}: {source}")]
    Read {
        path: PathBuf,
        start: u64,
        end: u64,
        #[source]
        source: io::Error,
    },
}

/// Copies of disjoint file ranges, looked up by the file range they hold.
pub struct ResidentCopy {
    buf: AlignedBuf,
    /// `(file range, offset in buf)`, sorted by start and disjoint.
    spans: Vec<(Range<u64>, usize)>,
}

impl ResidentCopy {
    /// Reads `ranges` of `file` (overlapping or touching ranges are merged)
    /// into one huge-page buffer, calling `progress(done, total)` in bytes.
    pub fn read(file: &WeightFile, ranges: &[Range<u64>], progress: &mut dyn FnMut(u64, u64)) -> Result<ResidentCopy, ResidentError> {
        let path = || file.path().to_path_buf();
        let merged = merge(ranges);
        let mut spans = Vec::with_capacity(merged.len());
        let mut len = 0usize;
        for r in merged {
            if r.end > file.len() {
                return Err(ResidentError::OutOfBounds { path: path(), start: r.start, end: r.end, len: file.len() });
            }
            let off = len.next_multiple_of(ALIGN);
            len = off + (r.end - r.start) as usize;
            spans.push((r, off));
        }
        let mut buf = AlignedBuf::zeroed(len).map_err(|source| ResidentError::Alloc { path: path(), bytes: len as u64, source })?;
        let total: u64 = spans.iter().map(|(r, _)| r.end - r.start).sum();
        let mut done = 0u64;
        progress(0, total);
        let dst = buf.as_mut_slice();
        for (r, off) in &spans {
            let n = (r.end - r.start) as usize;
            for (k, chunk) in dst[*off..*off + n].chunks_mut(STEP).enumerate() {
                let at = r.start + (k * STEP) as u64;
                file.file().read_exact_at(chunk, at).map_err(|source| ResidentError::Read {
                    path: path(),
                    start: at,
                    end: at + chunk.len() as u64,
                    source,
                })?;
                done += chunk.len() as u64;
                progress(done, total);
            }
        }
        Ok(ResidentCopy { buf, spans })
    }

    /// The copy of `range`, if one copied range holds all of it.
    pub fn get(&self, range: Range<u64>) -> Option<&[u8]> {
        let i = self.spans.partition_point(|(r, _)| r.start <= range.start).checked_sub(1)?;
        let (r, off) = &self.spans[i];
        if range.end > r.end || range.start > range.end {
            return None;
        }
        let start = off + (range.start - r.start) as usize;
        Some(&self.buf.as_slice()[start..start + (range.end - range.start) as usize])
    }

    /// Bytes copied.
    pub fn bytes(&self) -> u64 {
        self.spans.iter().map(|(r, _)| r.end - r.start).sum()
    }

    /// The file ranges copied, merged and sorted.
    pub fn ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.spans.iter().map(|(r, _)| r.clone())
    }

    /// Locks the copy in RAM (`mlock`).
    pub fn lock(&self) -> io::Result<()> {
        self.buf.lock()
    }

    /// Asks the kernel to drop the page cache of the copied ranges of
    /// `file` (clean pages, so this only frees memory sooner).
    pub fn drop_page_cache(&self, file: &WeightFile) {
        for (r, _) in &self.spans {
            direct_io::drop_page_cache(file.file(), r.start, r.end);
        }
    }
}

impl std::fmt::Debug for ResidentCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentCopy").field("spans", &self.spans.len()).field("bytes", &self.bytes()).finish()
    }
}

/// Sorted, with overlapping or touching ranges merged; empty ones dropped.
fn merge(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut r: Vec<Range<u64>> = ranges.iter().filter(|x| x.start < x.end).cloned().collect();
    r.sort_by_key(|x| (x.start, x.end));
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(r.len());
    for x in r {
        match merged.last_mut() {
            Some(m) if x.start <= m.end => m.end = m.end.max(x.end),
            _ => merged.push(x),
        }
    }
    merged
}
