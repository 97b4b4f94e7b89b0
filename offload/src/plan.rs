//! How one expert is read: its three slabs (not page-aligned in the file,
//! spec §4.7) become page-aligned extents, and each slab a range inside one
//! owned buffer. Slabs whose aligned extents overlap or touch (the per-expert
//! `ffn_*.E` layout often stores them back to back) share one extent, so
//! they are read in one go and no page is read or held twice.

use std::ops::Range;

use crate::direct_io::ALIGN;
use crate::expert::ExpertRanges;

/// One contiguous read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extent {
    /// Page-aligned file range an O_DIRECT read covers.
    pub file: Range<u64>,
    /// The bytes actually needed (what a buffered read covers).
    pub need: Range<u64>,
    /// Where `file.start` lands in the buffer (a multiple of `ALIGN`).
    pub buf_offset: usize,
}

/// Everything needed to read one expert into one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    pub extents: Vec<Extent>,
    /// Buffer ranges of gate, up, down.
    pub slabs: [Range<usize>; 3],
    /// Buffer length: the sum of the aligned extents. This is what the
    /// expert costs against the cache budget.
    pub buf_len: usize,
    /// Slab bytes (gate + up + down).
    pub payload: u64,
}

impl ReadPlan {
    pub(crate) fn new(r: &ExpertRanges) -> ReadPlan {
        let slabs = [&r.gate, &r.up, &r.down];
        // (aligned extent, needed range, slab indices), sorted by start.
        let mut order: Vec<usize> = (0..3).filter(|&i| slabs[i].end > slabs[i].start).collect();
        order.sort_by_key(|&i| slabs[i].start);
        let mut groups: Vec<(Range<u64>, Range<u64>, Vec<usize>)> = Vec::new();
        for i in order {
            let s = slabs[i];
            let aligned = s.start / ALIGN * ALIGN..s.end.next_multiple_of(ALIGN);
            match groups.last_mut() {
                Some((ext, need, members)) if aligned.start <= ext.end => {
                    ext.end = ext.end.max(aligned.end);
                    need.start = need.start.min(s.start);
                    need.end = need.end.max(s.end);
                    members.push(i);
                }
                _ => groups.push((aligned, s.clone(), vec![i])),
            }
        }
        let mut extents = Vec::with_capacity(groups.len());
        let mut buf_slabs = [0..0, 0..0, 0..0];
        let mut offset = 0usize;
        for (file, need, members) in groups {
            for i in members {
                let start = offset + (slabs[i].start - file.start) as usize;
                buf_slabs[i] = start..start + (slabs[i].end - slabs[i].start) as usize;
            }
            let len = (file.end - file.start) as usize;
            extents.push(Extent {
                file,
                need,
                buf_offset: offset,
            });
            offset += len;
        }
        ReadPlan {
            extents,
            slabs: buf_slabs,
            buf_len: offset,
            payload: r.total_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(g: Range<u64>, u: Range<u64>, d: Range<u64>) -> ExpertRanges {
        ExpertRanges {
            gate: g,
            up: u,
            down: d,
        }
    }

    #[test]
    fn separate_unaligned_slabs_get_their_own_aligned_extents() {
        let p = ReadPlan::new(&ranges(100..5000, 40_000..40_001, 12_300..16_000));
        assert_eq!(p.extents.len(), 3);
        // Sorted by file offset: gate, down, up.
        assert_eq!(
            p.extents[0],
            Extent {
                file: 0..8192,
                need: 100..5000,
                buf_offset: 0
            }
        );
        assert_eq!(
            p.extents[1],
            Extent {
                file: 12288..16384,
                need: 12_300..16_000,
                buf_offset: 8192
            }
        );
        assert_eq!(
            p.extents[2],
            Extent {
                file: 36864..40960,
                need: 40_000..40_001,
                buf_offset: 12288
            }
        );
        assert_eq!(
            p.slabs,
            [
                100..5000,
                12288 + 3136..12288 + 3137,
                8192 + 12..8192 + 3712
            ]
        );
        assert_eq!(p.buf_len, 16384);
        assert_eq!(p.payload, 4900 + 1 + 3700);
    }

    #[test]
    fn touching_or_overlapping_pages_merge() {
        // gate ends and up begins inside the same page; down touches up's last page.
        let p = ReadPlan::new(&ranges(32..4200, 4224..8000, 8192..8200));
        assert_eq!(
            p.extents,
            vec![Extent {
                file: 0..12288,
                need: 32..8200,
                buf_offset: 0
            }]
        );
        assert_eq!(p.slabs, [32..4200, 4224..8000, 8192..8200]);
        assert_eq!(p.buf_len, 12288);
    }

    #[test]
    fn aligned_and_empty_slabs() {
        let p = ReadPlan::new(&ranges(4096..8192, 8192..8192, 16384..20480));
        assert_eq!(p.extents.len(), 2);
        assert_eq!(p.slabs, [0..4096, 0..0, 4096..8192]);
        assert_eq!(p.buf_len, 8192);
    }
}
