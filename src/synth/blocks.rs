//! Random but valid quant blocks, written directly: the quant bytes come
//! straight from a fast PRNG and only the block headers (f16 `d`/`dmin`,
//! 6-bit or int8 sub-block scales) are set, so that the dequantized weights
//! have mean ≈ 0 and a chosen RMS. Quantizing random floats (the path in
//! `rng.rs`) runs at ~20 MB/s; this runs at several GB/s per core, so a
//! 28 GB Mixtral-sized file is disk-bound.
//!
//! Supported: Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, MXFP4 (every type of the
//! Q4_K_M, Q4_0 and MXFP4_MOE mixes but F32). Deterministic: row `r` of stream `s` is the same
//! bytes whatever the batch or thread count.
//!
//! How the RMS is set (q = the stored quant, uniform over its range):
//! - Q4_0: x = d·(q−8), E[(q−8)²] = 21.5; Q8_0: x = d·q, q ∈ −127..127
//!   (−128 is remapped, as ggml never writes it), E[q²] ≈ 5460.5. `d`'s
//!   sign is random per block, so the mean is 0.
//! - Q4_K / Q5_K: x = d·sc·q − dmin·m with sc uniform in 16..=31, dmin =
//!   4d (Q4_K) or 8d (Q5_K) and m = round(sc·mean(q)·d/dmin), so each
//!   sub-block is centred; RMS = d·√(var(q)·E[sc²]), E[sc²] = 573.5.
//! - Q6_K: x = d·S·(q−32), S = ±(16..=31) with a random sign,
//!   E[(q−32)²] = 341.5.
//! - MXFP4: x = v·2^(e−128), v one of ±{0, 1, 2, 3, 4, 6, 8, 12} (the
//!   doubled E2M1 values), E[v²] = 34.25; a block's scale is a power of
//!   two, the one below or above the target, mixed so that the mean
//!   square is the target's. Symmetric codes: mean 0.

use std::io::{self, Write};

use moe_quant::fp::f32_to_f16;
use moe_quant::QType;
use rayon::prelude::*;

use super::rng::mix;

/// E[sc²] for sub-block scales uniform in 16..=31.
const SC2: f64 = 573.5;

/// Whether [`fill_rows`] can generate `qtype` directly.
pub(crate) fn supported(qtype: QType) -> bool {
    matches!(qtype, QType::Q4_0 | QType::Q8_0 | QType::Q4_K | QType::Q5_K | QType::Q6_K | QType::MXFP4)
}

/// RMS of the dequantized weights per unit of `d`.
fn rms_per_d(qtype: QType) -> f64 {
    match qtype {
        QType::Q4_0 => 21.5f64.sqrt(),
        QType::Q8_0 => 5460.5f64.sqrt(),
        QType::Q4_K => (21.25 * SC2).sqrt(),
        QType::Q5_K => (85.25 * SC2).sqrt(),
        QType::Q6_K => (341.5 * SC2).sqrt(),
        // d = 2^(e−128), the unit of the doubled E2M1 values.
        QType::MXFP4 => 34.25f64.sqrt(),
        _ => unreachable!("rms_per_d: {qtype} is not supported"),
    }
}

/// wyrand: one multiply per 8 bytes, plenty for weights nobody trains.
struct Wy(u64);

impl Wy {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        (t >> 64) as u64 ^ t as u64
    }

    fn fill(&mut self, dst: &mut [u8]) {
        let mut chunks = dst.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// Fills `dst`, whole rows of `ne0` elements of `qtype` starting at row
/// `first_row` of `stream`, with random blocks of RMS ≈ `rms`.
///
/// Panics if `qtype` is not [`supported`] or `dst` is not whole rows
/// (callers are this module's writers and tests).
pub(crate) fn fill_rows(qtype: QType, ne0: u64, stream: u64, first_row: u64, rms: f32, dst: &mut [u8]) {
    assert!(supported(qtype), "fill_rows: {qtype} is not supported");
    let row_bytes = qtype.row_bytes(ne0).expect("whole blocks") as usize;
    assert_eq!(dst.len() % row_bytes, 0, "fill_rows: not whole rows");
    let d = (rms as f64 / rms_per_d(qtype)) as f32;
    let block = qtype.block_bytes();
    for (i, row) in dst.chunks_exact_mut(row_bytes).enumerate() {
        let mut rng = Wy(mix(stream ^ mix(first_row + i as u64)));
        rng.fill(row);
        for b in row.chunks_exact_mut(block) {
            set_header(qtype, d, b);
        }
    }
}

/// Turns a block of random bytes into a valid block with scale `d`. The
/// random header bytes are read first, as the source of the scales' bits.
fn set_header(qtype: QType, d: f32, b: &mut [u8]) {
    let put_f16 = |b: &mut [u8], at: usize, x: f32| b[at..at + 2].copy_from_slice(&f32_to_f16(x).to_le_bytes());
    let signed = |bit: u8| if bit & 1 == 0 { d } else { -d };
    match qtype {
        QType::Q4_0 => put_f16(b, 0, signed(b[0])),
        QType::Q8_0 => {
            put_f16(b, 0, signed(b[0]));
            for q in &mut b[2..] {
                if *q == 0x80 {
                    *q = 0x81;
                }
            }
        }
        QType::Q4_K | QType::Q5_K => {
            let (dmin_per_d, mean_q) = if qtype == QType::Q4_K { (4.0, 7.5) } else { (8.0, 15.5) };
            let bits = u64::from_le_bytes(b[4..12].try_into().unwrap());
            let mut sc = [0u8; 8];
            let mut m = [0u8; 8];
            for j in 0..8 {
                sc[j] = 16 + ((bits >> (4 * j)) & 15) as u8;
                m[j] = (sc[j] as f32 * mean_q / dmin_per_d).round() as u8;
            }
            put_f16(b, 0, d);
            put_f16(b, 2, d * dmin_per_d);
            pack_k4_scales(&sc, &m, (&mut b[4..16]).try_into().unwrap());
        }
        QType::MXFP4 => {
            // The E8M0 exponent byte (first): 2^a or 2^(a+1) around d,
            // the upper with the probability that makes E[scale²] = d²
            // (the random first byte decides).
            let a = d.abs().log2().floor();
            let p_upper = ((d * d) / 4f32.powf(a) - 1.0) / 3.0;
            let upper = (b[0] as f32 + 0.5) / 256.0 < p_upper;
            b[0] = (a + if upper { 129.0 } else { 128.0 }).clamp(1.0, 254.0) as u8;
        }
        QType::Q6_K => {
            for s in &mut b[192..208] {
                let mag = 16 + (*s & 15) as i8;
                *s = (if *s & 0x80 == 0 { mag } else { -mag }) as u8;
            }
            put_f16(b, 208, d);
        }
        _ => unreachable!("set_header: {qtype} is not supported"),
    }
}

/// Packs 6-bit scales and mins as ggml's `get_scale_min_k4` unpacks them.
fn pack_k4_scales(sc: &[u8; 8], m: &[u8; 8], s: &mut [u8; 12]) {
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
}

/// Writes `n_rows` random rows of `ne0` elements of `qtype` with RMS ≈
/// `rms`, generated in parallel a batch (~16 MiB) at a time.
pub(crate) fn write_rows(out: &mut dyn Write, qtype: QType, ne0: u64, n_rows: u64, stream: u64, rms: f32) -> io::Result<()> {
    let row_bytes = qtype.row_bytes(ne0).expect("whole blocks") as usize;
    let batch = ((16usize << 20) / row_bytes).max(1) as u64;
    // Rows per parallel task: enough work to amortise the task (~256 KiB).
    let per_task = ((256usize << 10) / row_bytes).max(1);
    let mut buf = vec![0u8; batch.min(n_rows) as usize * row_bytes];
    let mut start = 0;
    while start < n_rows {
        let n = (n_rows - start).min(batch) as usize;
        let dst = &mut buf[..n * row_bytes];
        dst.par_chunks_mut(per_task * row_bytes).enumerate().for_each(|(i, chunk)| {
            fill_rows(qtype, ne0, stream, start + (i * per_task) as u64, rms, chunk);
        });
        out.write_all(dst)?;
        start += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use moe_quant::dequantize_row;

    const TYPES: [QType; 6] = [QType::Q4_0, QType::Q8_0, QType::Q4_K, QType::Q5_K, QType::Q6_K, QType::MXFP4];

    fn moments(qtype: QType, ne0: u64, rows: u64, rms: f32, stream: u64) -> (f64, f64, f32) {
        let row_bytes = qtype.row_bytes(ne0).unwrap() as usize;
        let mut bytes = vec![0u8; rows as usize * row_bytes];
        fill_rows(qtype, ne0, stream, 0, rms, &mut bytes);
        let mut x = vec![0f32; ne0 as usize];
        let (mut sum, mut sum2, mut max) = (0f64, 0f64, 0f32);
        for r in bytes.chunks_exact(row_bytes) {
            dequantize_row(qtype, r, &mut x);
            for &v in &x {
                assert!(v.is_finite(), "{qtype}: non-finite weight {v}");
                sum += v as f64;
                sum2 += (v as f64) * (v as f64);
                max = max.max(v.abs());
            }
        }
        let n = (rows * ne0) as f64;
        (sum / n, (sum2 / n).sqrt(), max)
    }

    #[test]
    fn dequantized_weights_have_the_intended_rms_and_zero_mean() {
        for qtype in TYPES {
            for rms in [1.0f32, 0.0156, 4e-4] {
                let (mean, got, max) = moments(qtype, 4096, 64, rms, 7);
                let rel = got / rms as f64;
                assert!((0.93..1.07).contains(&rel), "{qtype} rms {rms}: got {got} ({rel:.3}×)");
                assert!(mean.abs() < 0.03 * rms as f64, "{qtype} rms {rms}: mean {mean}");
                // Uniform-ish weights: nothing beyond a few RMS (MXFP4:
                // its largest code is 2.05 block RMS, blocks up to 2× d).
                let bound = if qtype == QType::MXFP4 { 4.2 } else { 4.0 };
                assert!((max as f64) < bound * rms as f64, "{qtype} rms {rms}: max |x| {max}");
            }
        }
    }

    #[test]
    fn deterministic_per_row_whatever_the_batching() {
        for qtype in TYPES {
            let row_bytes = qtype.row_bytes(512).unwrap() as usize;
            let mut all = vec![0u8; 10 * row_bytes];
            fill_rows(qtype, 512, 99, 0, 0.1, &mut all);
            let mut tail = vec![0u8; 3 * row_bytes];
            fill_rows(qtype, 512, 99, 7, 0.1, &mut tail);
            assert_eq!(tail, all[7 * row_bytes..], "{qtype}");
            let mut streamed = Vec::new();
            write_rows(&mut streamed, qtype, 512, 10, 99, 0.1).unwrap();
            assert_eq!(streamed, all, "{qtype}");
            let mut other = vec![0u8; 10 * row_bytes];
            fill_rows(qtype, 512, 100, 0, 0.1, &mut other);
            assert_ne!(other, all, "{qtype}: another stream gives other bytes");
        }
    }

    #[test]
    fn k_quant_scales_round_trip_through_ggml_unpacking() {
        // get_scale_min_k4 from ggml, on the packed bytes.
        let sc = [16, 31, 20, 17, 63, 40, 33, 48];
        let m = [30, 58, 1, 0, 62, 45, 12, 63];
        let mut s = [0u8; 12];
        pack_k4_scales(&sc, &m, &mut s);
        for j in 0..8 {
            let (a, b) = if j < 4 {
                (s[j] & 63, s[j + 4] & 63)
            } else {
                ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
            };
            assert_eq!((a, b), (sc[j], m[j]), "sub-block {j}");
        }
    }

    #[test]
    fn q8_0_never_holds_minus_128() {
        let row_bytes = QType::Q8_0.row_bytes(4096).unwrap() as usize;
        let mut b = vec![0u8; 64 * row_bytes];
        fill_rows(QType::Q8_0, 4096, 3, 0, 1.0, &mut b);
        for blk in b.chunks_exact(34) {
            assert!(!blk[2..].contains(&0x80));
        }
        // The random d signs are about half negative.
        let neg = b.chunks_exact(34).filter(|blk| blk[1] & 0x80 != 0).count();
        let n = b.len() / 34;
        assert!(neg > n * 2 / 5 && neg < n * 3 / 5, "{neg} of {n} negative");
    }
}
