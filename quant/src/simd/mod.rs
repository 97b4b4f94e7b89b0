//! SIMD kernel tiers, one module per instruction set:
//!
//! - [`avx2`]: x86-64 AVX2 + FMA + F16C, 256-bit, `maddubs`-based int8 dots.
//! - [`avx512`]: x86-64 AVX-512 F/BW/VL + VNNI: 512-bit K-quant and float
//!   kernels, `vpdpbusd` for the 32-element formats.
//! - [`portable`]: the `wide` crate; compiles on every architecture, no
//!   `unsafe` and no x86 code.
//!
//! All `unsafe` of the crate lives in the two x86 modules: target-feature
//! functions (callable only after run-time detection) and unaligned vector
//! loads from fixed-size byte arrays.
//!
//! Every kernel has the shape `kernel::<R>(rows: [&[u8]; R], act: &[u8]) ->
//! [f32; R]`: R weight rows against one activation row, sharing the
//! activation loads. Each row's float operations are the same for every R,
//! so the multi-row results are bit-identical to the one-row kernel.

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod avx512;
pub(crate) mod portable;

/// Rows and activations per tile of the matmul kernels (4 × 4).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const TILE: usize = 4;

/// Activations per wide tile (4 rows × 8), for the kernels whose per-row
/// decoding is worth sharing across more activations than [`TILE`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const WIDE: usize = 8;

/// `$body` once for each listed value of `$j`, in order: a loop that
/// LLVM would keep, unrolled so that indices derived from `$j` are
/// constants.
macro_rules! unroll {
    ($j:ident in [$($v:literal),*] => $body:block) => {{
        $({ let $j: usize = $v; $body })*
    }};
}
pub(crate) use unroll;

/// Run an R-row kernel over `out.len()` consecutive rows of `rb` bytes:
/// groups of R through `multi`, the remaining rows through `single`.
///
/// # Panics
/// If `w` is shorter than `out.len()` rows.
#[inline(always)]
pub(crate) fn rows_by<const R: usize>(
    w: &[u8],
    rb: usize,
    out: &mut [f32],
    multi: impl Fn([&[u8]; R]) -> [f32; R],
    single: impl Fn(&[u8]) -> f32,
) {
    let w = &w[..out.len() * rb];
    let mut groups = out.chunks_exact_mut(R);
    let mut rows = w.chunks_exact(rb.max(1));
    for o in &mut groups {
        let r: [&[u8]; R] = core::array::from_fn(|_| rows.next().unwrap_or(&[]));
        o.copy_from_slice(&multi(r));
    }
    for o in groups.into_remainder() {
        *o = single(rows.next().unwrap_or(&[]));
    }
}

/// `rows` for a tier without a multi-row kernel: one [`crate::VecDotFn`]
/// call per row.
pub(crate) fn rows_single(
    dot: crate::VecDotFn,
    w: &[u8],
    rb: usize,
    act: &[u8],
    n: usize,
    out: &mut [f32],
) {
    rows_by::<1>(w, rb, out, |[r]| [dot(r, act, n)], |r| dot(r, act, n));
}

/// The number of whole blocks of `wb` bytes that every row holds and of `ab`
/// bytes that `act` holds: the kernels' loop bound, which keeps every block
/// access in bounds whatever the slice lengths.
#[inline(always)]
pub(crate) fn common_blocks<const R: usize>(
    rows: &[&[u8]; R],
    wb: usize,
    act: &[u8],
    ab: usize,
) -> usize {
    rows.iter().fold(act.len() / ab, |m, r| m.min(r.len() / wb))
}

/// [`common_blocks`] for a tile: the whole blocks every one of R weight rows
/// (`wb` bytes per block) and every one of C activations (`ab` bytes)
/// holds.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn tile_blocks<const R: usize, const C: usize>(
    rows: &[&[u8]; R],
    wb: usize,
    acts: &[&[u8]; C],
    ab: usize,
) -> usize {
    acts.iter().fold(common_blocks(rows, wb, acts[0], ab), |m, a| m.min(a.len() / ab))
}

/// Block `i` (of `B` bytes) of `bytes`, as a fixed-size array.
///
/// # Panics
/// If `bytes` holds fewer than `i + 1` blocks.
#[inline(always)]
pub(crate) fn block<const B: usize>(bytes: &[u8], i: usize) -> &[u8; B] {
    let (blocks, _) = bytes.as_chunks::<B>();
    &blocks[i]
}

/// The first `nb` blocks of `B` bytes of `bytes`: a loop over `0..nb` that
/// indexes these slices needs no per-block bounds check.
///
/// # Panics
/// If `bytes` holds fewer than `nb` blocks.
#[inline(always)]
pub(crate) fn blocks<const B: usize>(bytes: &[u8], nb: usize) -> &[[u8; B]] {
    &bytes.as_chunks::<B>().0[..nb]
}

/// [`blocks`] of each of R rows. (A plain loop: `array::from_fn` here is
/// not always inlined, which hides the lengths from the kernel's loop.)
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn row_blocks<'a, const R: usize, const B: usize>(
    rows: &[&'a [u8]; R],
    nb: usize,
) -> [&'a [[u8; B]]; R] {
    let mut out: [&[[u8; B]]; R] = [&[]; R];
    for (o, r) in out.iter_mut().zip(rows) {
        *o = blocks::<B>(r, nb);
    }
    out
}

/// The first `2·pairs` blocks of `B` bytes of `bytes`, two by two: for
/// the kernels that take blocks in pairs (MXFP4), whose loop over
/// `0..pairs` then needs no per-block bounds check.
///
/// # Panics
/// If `bytes` holds fewer than `2·pairs` blocks.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn block_pairs<const B: usize>(bytes: &[u8], pairs: usize) -> &[[[u8; B]; 2]] {
    &blocks::<B>(bytes, 2 * pairs).as_chunks::<2>().0[..pairs]
}

/// [`block_pairs`] of each of R rows.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn row_pairs<'a, const R: usize, const B: usize>(
    rows: &[&'a [u8]; R],
    pairs: usize,
) -> [&'a [[[u8; B]; 2]]; R] {
    let mut out: [&[[[u8; B]; 2]]; R] = [&[]; R];
    for (o, r) in out.iter_mut().zip(rows) {
        *o = block_pairs::<B>(r, pairs);
    }
    out
}

/// `L` bytes of `b` at offset `O`, as a fixed-size array (checked at
/// compile time once inlined).
#[inline(always)]
pub(crate) fn sub<const O: usize, const L: usize, const N: usize>(b: &[u8; N]) -> &[u8; L] {
    const { assert!(O + L <= N) };
    b[O..O + L]
        .try_into()
        .expect("in bounds by the const assertion")
}

#[inline(always)]
pub(crate) fn u16_at<const O: usize, const N: usize>(b: &[u8; N]) -> u16 {
    u16::from_le_bytes(*sub::<O, 2, N>(b))
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn u32_at<const O: usize, const N: usize>(b: &[u8; N]) -> u32 {
    u32::from_le_bytes(*sub::<O, 4, N>(b))
}

/// Q4_K/Q5_K 6-bit scales and mins as two `u64`s of 8 bytes each
/// (scales in `.0`, mins in `.1`; byte j = sub-block j).
#[inline(always)]
pub(crate) fn k4_scale_mins(s: &[u8; 12]) -> (u64, u64) {
    const M6: u32 = 0x3f3f_3f3f;
    const M4: u32 = 0x0f0f_0f0f;
    const M2: u32 = 0x0303_0303;
    let (a, b, c) = (
        u32::from_le_bytes(*sub::<0, 4, 12>(s)),
        u32::from_le_bytes(*sub::<4, 4, 12>(s)),
        u32::from_le_bytes(*sub::<8, 4, 12>(s)),
    );
    let sc_lo = a & M6;
    let sc_hi = (c & M4) | (((a >> 6) & M2) << 4);
    let m_lo = b & M6;
    let m_hi = ((c >> 4) & M4) | (((b >> 6) & M2) << 4);
    (
        u64::from(sc_lo) | (u64::from(sc_hi) << 32),
        u64::from(m_lo) | (u64::from(m_hi) << 32),
    )
}

/// Checks a vector unpacking of `R` rows' Q4_K/Q5_K scales and mins
/// (`unpack` returns 16 bytes per row: 8 scales, 8 mins) against
/// [`k4_scale_mins`] on random scale bytes.
#[cfg(test)]
pub(crate) fn check_k4_scale_mins_xn<const R: usize>(unpack: impl Fn(&[[u8; 16]; R]) -> Vec<u8>) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut byte = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 24) as u8
    };
    for _ in 0..500 {
        let w: [[u8; 16]; R] = core::array::from_fn(|_| core::array::from_fn(|_| byte()));
        let got = unpack(&w);
        for r in 0..R {
            let (sc, m) = k4_scale_mins(w[r][..12].try_into().unwrap());
            assert_eq!(got[16 * r..16 * r + 8], sc.to_le_bytes(), "row {r}: {:?}", w[r]);
            assert_eq!(got[16 * r + 8..16 * r + 16], m.to_le_bytes(), "row {r}: {:?}", w[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{Block, BlockQ4K};

    #[test]
    fn k4_scale_unpacking_matches_blocks() {
        let mut s = 0x1234_5678_9abc_def1u64;
        for _ in 0..200 {
            let bytes: [u8; 12] = core::array::from_fn(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            });
            let mut raw4 = [0u8; 144];
            raw4[4..16].copy_from_slice(&bytes);
            let (sc, m) = BlockQ4K::read(&raw4).scale_mins();
            let (sc2, m2) = k4_scale_mins(&bytes);
            assert_eq!(sc2.to_le_bytes(), sc);
            assert_eq!(m2.to_le_bytes(), m);
        }
    }
}
