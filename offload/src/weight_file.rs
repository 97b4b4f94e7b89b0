//! The memory-mapped model file. All mmap `unsafe` lives in this one module.
//!
//! The file must not change while mapped. It can anyway (a user rewrites
//! or truncates it), so: a SIGBUS on the mapping becomes a clear fatal
//! error (`sigbus`), and [`WeightFile::check_unchanged`] compares the open
//! file's size and modification time with what they were at open, for the
//! loaders (after each read) and the generation loop (each token).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};

use crate::sigbus::SigbusGuard;

/// A byte range that does not lie inside the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: byte range {start}..{end} lies outside the file ({len} bytes)")]
pub struct OutOfBounds {
    pub path: PathBuf,
    pub start: u64,
    pub end: u64,
    pub len: u64,
}

/// The file changed since it was opened (size or modification time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", path.display(), self.reason())]
pub struct FileChanged {
    pub path: PathBuf,
    pub what: String,
}

impl FileChanged {
    /// The message without the path, for errors that name the file
    /// themselves (an expert read's error does).
    pub fn reason(&self) -> String {
        format!(
            "the model file changed while in use ({}); do not modify a model file while moe runs",
            self.what
        )
    }
}

/// Size and modification time of the open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    len: u64,
    mtime: (i64, i64),
}

impl Identity {
    fn of(file: &File) -> io::Result<Identity> {
        let m = file.metadata()?;
        Ok(Identity { len: m.len(), mtime: (m.mtime(), m.mtime_nsec()) })
    }
}

/// A read-only mapping of a whole model file.
pub struct WeightFile {
    path: PathBuf,
    file: File,
    opened_as: Identity,
    /// Declared before `map`: stops watching before the unmap.
    _sigbus: SigbusGuard,
    map: Mmap,
}

impl WeightFile {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> io::Result<WeightFile> {
        let file = open_regular(path)?;
        // SAFETY: the mapping is read-only and private to this process. The
        // contract of memmap2 is that the file must not be truncated or
        // modified while mapped; model files are treated as immutable
        // inputs, and every access goes through bounds-checked slices.
        let map = unsafe { Mmap::map(&file)? };
        let opened_as = Identity::of(&file)?;
        Ok(WeightFile {
            path: path.to_path_buf(),
            _sigbus: SigbusGuard::watch(map.as_ptr(), map.len(), path),
            file,
            opened_as,
            map,
        })
    }

    /// An error if the open file's size or modification time differ from
    /// what they were at open (the file was rewritten or truncated in
    /// place). A file replaced by rename is not a change: the open file
    /// and its mapping still hold the old contents.
    pub fn check_unchanged(&self) -> Result<(), FileChanged> {
        let changed = |what: String| FileChanged { path: self.path.clone(), what };
        let now = Identity::of(&self.file).map_err(|e| changed(format!("cannot stat it: {e}")))?;
        if now.len != self.opened_as.len {
            return Err(changed(format!("{} bytes at open, {} now", self.opened_as.len, now.len)));
        }
        if now.mtime != self.opened_as.mtime {
            return Err(changed("modified after it was opened".to_string()));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for positioned reads that bypass the mapping.
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The whole mapping.
    pub fn all(&self) -> &[u8] {
        &self.map
    }

    /// The bytes of `range`, or an error naming the file if any part lies
    /// outside it.
    pub fn bytes(&self, range: Range<u64>) -> Result<&[u8], OutOfBounds> {
        let oob = || OutOfBounds {
            path: self.path.clone(),
            start: range.start,
            end: range.end,
            len: self.len(),
        };
        if range.start > range.end || range.end > self.len() {
            return Err(oob());
        }
        let start = usize::try_from(range.start).map_err(|_| oob())?;
        let end = usize::try_from(range.end).map_err(|_| oob())?;
        Ok(&self.map[start..end])
    }

    /// Hints that `range` will be needed soon (`MADV_WILLNEED`). Failure is
    /// harmless and ignored: advice never changes results.
    pub fn advise_willneed(&self, range: Range<u64>) {
        let page = 4096u64;
        let start = range.start / page * page;
        let end = range.end.min(self.len());
        if start >= end {
            return;
        }
        let _ = self
            .map
            .advise_range(Advice::WillNeed, start as usize, (end - start) as usize);
    }

    /// Hints that `range` is read at random (`MADV_RANDOM`): a page fault
    /// there reads just that page, with no read-around. The range is
    /// shrunk to whole pages. For expert slabs read by the cache (never
    /// through the mapping), so that faults on neighbouring resident
    /// tensors do not pull megabytes of expert bytes into the page cache.
    /// Failure is harmless and ignored.
    pub fn advise_random(&self, range: Range<u64>) {
        let page = 4096u64;
        let start = range.start.div_ceil(page) * page;
        let end = range.end.min(self.len()) / page * page;
        if start >= end {
            return;
        }
        let _ = self
            .map
            .advise_range(Advice::Random, start as usize, (end - start) as usize);
    }

    /// Locks the pages of `range` in RAM (`mlock`), reading them in first.
    /// Fails with the OS error (typically ENOMEM or EPERM when the range
    /// exceeds `RLIMIT_MEMLOCK`); nothing is locked past the mapping's end.
    /// The lock lasts until the mapping is dropped.
    pub fn lock_range(&self, range: Range<u64>) -> io::Result<()> {
        let page = 4096u64;
        let start = range.start / page * page;
        let end = range.end.min(self.len());
        if start >= end {
            return Ok(());
        }
        let ptr = self.map[start as usize..].as_ptr();
        // SAFETY: `ptr..ptr + (end - start)` lies inside the live mapping
        // (checked against `self.len()` above); mlock only changes paging,
        // never memory contents, so no Rust reference is affected.
        let rc = unsafe { libc::mlock(ptr.cast(), (end - start) as usize) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("len", &self.len())
            .finish()
    }
}

/// Opens `path` for reading if it is a regular file (after symlinks):
/// opened without blocking (a FIFO would otherwise wait for a writer
/// forever), then checked on the open file itself, so a path swapped
/// between a check and the open cannot slip through.
fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let t = file.metadata()?.file_type();
    if t.is_file() {
        return Ok(file);
    }
    let what = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, format!("is {what}; a model must be a regular file")))
}

