//! Warm-up: fault the resident weights into RAM before the first token, so
//! the first answer does not wait on the disk page by page (what
//! `MADV_WILLNEED` only asks the kernel to start).

use crate::error::Result;
use crate::model::Model;

/// Bytes between progress calls.
const STEP: usize = 64 << 20;
const PAGE: usize = 4096;

/// Reads one byte of every page of the model's resident ranges, calling
/// `progress(done, total)` (bytes) as it goes. Returns the bytes touched.
/// Nothing to do where the resident weights were copied (the copy read
/// them all).
pub fn warm_resident(model: &Model, progress: &mut dyn FnMut(u64, u64)) -> Result<u64> {
    let file = model.file().file();
    let ranges = model.resident_ranges();
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    if model.resident_copy().is_some() {
        progress(total, total);
        return Ok(total);
    }
    let mut done = 0u64;
    let mut sink = 0u8;
    progress(0, total);
    for r in ranges {
        let bytes = file.bytes(r.clone()).map_err(|e| crate::error::Error::InvalidArgument(format!("warm-up: {e}")))?;
        for chunk in bytes.chunks(STEP) {
            for page in chunk.chunks(PAGE) {
                sink ^= page[0];
            }
            done += chunk.len() as u64;
            progress(done, total);
        }
    }
    std::hint::black_box(sink);
    Ok(total)
}
