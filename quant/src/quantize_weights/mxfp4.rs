//! ggml's reference MXFP4 quantizer (`quantize_row_mxfp4_ref` in
//! ggml-quants.c, which `llama-quantize` also uses): the exponent from the
//! block's largest |x|, then each element's nearest doubled E2M1 value,
//! with ggml's float operations, scan order and tie-breaking, so the bytes
//! are identical to ggml's.

use crate::blocks::{Block, BlockMxfp4, KVALUES_MXFP4, QK_MXFP4};
use crate::fp::e8m0_to_f32_half;

/// The code whose value `KVALUES_MXFP4[i]·d` is nearest to `x`: the first
/// of equally near ones (strict `<`, as ggml's `best_index_mxfp4`), so an
/// exact tie between two values takes the lower code and zero is always
/// code 0, never the −0 of code 8. A NaN `x` gives code 0.
fn best_index(x: f32, d: f32) -> u8 {
    let err = |i: usize| (f32::from(KVALUES_MXFP4[i]) * d - x).abs();
    let (mut best, mut best_err) = (0, err(0));
    for i in 1..16 {
        let e = err(i);
        if e < best_err {
            best = i;
            best_err = e;
        }
    }
    best as u8
}

/// x86's `cvttss2si` (32-bit): truncation toward zero, and 0x8000_0000 for
/// NaN or a value out of the i32 range (Rust's `as` would saturate).
fn cvttss2si(f: f32) -> i32 {
    if f.is_finite() && (-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        f as i32
    } else {
        i32::MIN
    }
}

/// The exponent byte: `(uint8_t)(floorf(log2f(amax)) − 2 + 127)` for
/// amax > 0, else 0. The float subtractions are ggml's; the cast to
/// `uint8_t`, undefined in C for values outside 0..=255, is what GCC emits
/// on x86 (`cvttss2si` to 32 bits, then the low byte), so a block whose
/// amax is below 2^-125 wraps around as it does in ggml (a subnormal amax
/// of 2^-127 gives e = 254), and an infinite amax gives 0. `log2f` is the C
/// library's, as in ggml.
fn exponent(amax: f32) -> u8 {
    if amax > 0.0 {
        cvttss2si(amax.log2().floor() - 2.0 + 127.0) as u8
    } else {
        0
    }
}

/// One block: `e` from the first largest |x| (strict `<` scan, NaN never
/// counted), then codes in ggml's order (element j and j+16 per byte).
fn block(x: &[f32]) -> BlockMxfp4 {
    let amax = x.iter().fold(0.0f32, |m, &v| if m < v.abs() { v.abs() } else { m });
    let e = exponent(amax);
    let d = e8m0_to_f32_half(e);
    let codes: [u8; 32] = core::array::from_fn(|j| best_index(x[j], d));
    BlockMxfp4::new(e, &codes)
}

pub(super) fn mxfp4(src: &[f32], out: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK_MXFP4).zip(out.chunks_exact_mut(BlockMxfp4::BYTES)) {
        block(x).write(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_follows_ggml_on_x86() {
        assert_eq!(exponent(0.0), 0);
        assert_eq!(exponent(1.0), 125, "amax 1 = 8·2^-3: e − 128 = −3");
        assert_eq!(exponent(1.5), 125);
        assert_eq!(exponent(2.0), 126);
        // log2f(f32::MAX) = 127.99999983 rounds to 128.0.
        assert_eq!(exponent(f32::MAX), 253);
        assert_eq!(exponent(2f32.powi(-125)), 0);
        assert_eq!(exponent(2f32.powi(-126)), 255, "−1 wraps to 255 as on x86");
        assert_eq!(exponent(f32::INFINITY), 0, "cvttss2si gives 0x80000000");
    }

    #[test]
    fn ties_take_the_lower_code() {
        // d = 1: 2.5 lies between 2 (code 2) and 3 (code 3); −2.5 between
        // −2 (code 10) and −3 (code 11); tiny values round to code 0.
        assert_eq!(best_index(2.5, 1.0), 2);
        assert_eq!(best_index(-2.5, 1.0), 10);
        assert_eq!(best_index(-1e-9, 1.0), 0);
        assert_eq!(best_index(100.0, 1.0), 7, "clipped to 12");
        assert_eq!(best_index(f32::NAN, 1.0), 0);
    }
}
