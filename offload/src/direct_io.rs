//! The cache's unsafe code, kept in one place: page-aligned buffers (what
//! O_DIRECT needs) and the libc calls around reading.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;

/// Alignment of O_DIRECT offsets, lengths and buffer addresses. 4096 covers
/// devices with 512-byte and 4 KiB logical blocks; a filesystem that wants
/// more answers EINVAL and the reader falls back to buffered reads.
pub(crate) const ALIGN: u64 = 4096;

/// A zero-initialised, page-aligned heap buffer from an anonymous private
/// mapping. Mapping (rather than `alloc_zeroed`) gives alignment and zeroed
/// pages for free, and returns the memory to the system as soon as an
/// evicted expert's buffer is dropped.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    map_len: usize,
}

// SAFETY: an `AlignedBuf` exclusively owns its mapping, like a `Box<[u8]>`;
// shared access only ever hands out `&[u8]`, and `&mut [u8]` needs `&mut self`.
unsafe impl Send for AlignedBuf {}
// SAFETY: as above: `&AlignedBuf` only allows reads.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// `len` zero bytes at a page-aligned address.
    pub(crate) fn zeroed(len: usize) -> io::Result<AlignedBuf> {
        let map_len = len
            .max(1)
            .checked_next_multiple_of(ALIGN as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "buffer size overflows"))?;
        // SAFETY: a fresh anonymous private mapping with no address hint
        // cannot alias any existing memory; the result is checked against
        // MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // Huge pages cut the page faults of filling a ~100 MB expert buffer
        // by 512x. Only a hint: failure (THP off) is harmless.
        #[cfg(target_os = "linux")]
        // SAFETY: the range is exactly the mapping created above.
        unsafe {
            libc::madvise(p, map_len, libc::MADV_HUGEPAGE);
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "mmap returned null"))?;
        Ok(AlignedBuf { ptr, len, map_len })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `map_len >= len` readable bytes, initialised
        // (zeroed by the kernel, then written only through `as_mut_slice`),
        // and lives until `drop`; `&self` rules out a live `&mut`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only
        // reference into the buffer.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AlignedBuf {
    /// Locks the buffer's pages in RAM (`mlock`); fails with the OS error
    /// (ENOMEM or EPERM past `RLIMIT_MEMLOCK`). Lasts until the drop.
    pub(crate) fn lock(&self) -> io::Result<()> {
        // SAFETY: `ptr..ptr + map_len` is exactly the live mapping; mlock
        // only changes paging, never the contents.
        let rc = unsafe { libc::mlock(self.ptr.as_ptr().cast(), self.map_len) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `zeroed`; no slice into
        // it can outlive `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.map_len);
        }
    }
}

/// Opens `path` again for reading with O_DIRECT (bypassing the page cache).
/// Fails with EINVAL where the filesystem does not support it (tmpfs).
#[cfg(target_os = "linux")]
pub(crate) fn open_direct(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn open_direct(_path: &Path) -> io::Result<File> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Asks the kernel to drop the page-cache pages of `start..end`, so bytes
/// we have just copied into a cache buffer are not held twice. Only whole
/// pages inside the range are dropped: the pages at either end may hold a
/// neighbouring tensor. Pages mapped by a process (the resident weights)
/// are never dropped by this advice. Failure is harmless and ignored.
pub(crate) fn drop_page_cache(file: &File, start: u64, end: u64) {
    let s = start.next_multiple_of(ALIGN);
    let e = end / ALIGN * ALIGN;
    if e <= s {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is open
    // for the duration of the borrow of `file`.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            s as libc::off_t,
            (e - s) as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file.as_raw_fd(), s, e);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buf_is_aligned_zeroed_and_writable() {
        for len in [0usize, 1, 4095, 4096, 4097, 3 << 20] {
            let mut b = AlignedBuf::zeroed(len).unwrap();
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN as usize, 0);
            assert_eq!(b.as_slice().len(), len);
            assert!(b.as_slice().iter().all(|&x| x == 0));
            b.as_mut_slice().fill(7);
            assert!(b.as_slice().iter().all(|&x| x == 7));
        }
    }
}
