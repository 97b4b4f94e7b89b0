//! Scalar conversions between f32 and the 16- and 8-bit float formats ggml
//! stores.

/// IEEE half (bits) to f32. Exact, subnormals included.
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// f32 to IEEE half (bits), rounding to nearest, ties to even; overflow goes
/// to infinity and tiny values to subnormals or zero.
///
/// This is what llama.cpp does on x86: `ggml_cpu_fp32_to_fp16` and
/// `GGML_CPU_FP32_TO_FP16` use F16C `vcvtps2ph` with `_MM_FROUND_TO_NEAREST_INT`,
/// and ggml-base's software `GGML_FP32_TO_FP16` rounds the same way.
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Little-endian f16 bytes to f32, `dst.len()` values from `2·dst.len()`
/// bytes of any alignment. Converts in small chunks through `half`'s slice
/// conversion, which uses F16C when the CPU has it (exact either way).
pub fn f16_bytes_to_f32(src: &[u8], dst: &mut [f32]) {
    use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
    const CHUNK: usize = 64;
    assert_eq!(
        src.len(),
        2 * dst.len(),
        "f16_bytes_to_f32: length mismatch"
    );
    let mut bits = [0u16; CHUNK];
    for (s, d) in src.chunks(2 * CHUNK).zip(dst.chunks_mut(CHUNK)) {
        let bits = &mut bits[..d.len()];
        for (b, s) in bits.iter_mut().zip(s.chunks_exact(2)) {
            *b = u16::from_le_bytes([s[0], s[1]]);
        }
        bits.reinterpret_cast::<half::f16>().convert_to_f32_slice(d);
    }
}

/// bf16 (bits) to f32: the bf16 bits are the top half of the f32 bits.
#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// f32 to bf16 (bits) the way ggml's `ggml_compute_fp32_to_bf16` does it
/// (used by `ggml_cpu_fp32_to_bf16` on CPUs without AVX512-BF16, such as
/// this one): NaN keeps its top bits and is forced quiet (bit 6 of the bf16
/// mantissa); everything else rounds to nearest, ties to even, by adding
/// 0x7fff plus the lowest kept bit and truncating (so large finite values
/// may round to infinity).
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 0x40) as u16;
    }
    let lsb = (u >> 16) & 1;
    (u.wrapping_add(0x7fff + lsb) >> 16) as u16
}

/// The bits of `ggml_e8m0_to_fp32_half(e)` (ggml-impl.h): 2^(e−128), the
/// E8M0 scale 2^(e−127) halved because MXFP4's E2M1 values are stored
/// doubled. e = 0 and 1 give the subnormals 2^-128 and 2^-127; e = 255
/// (E8M0's NaN) gives 2^127, as ggml does (it does not handle NaN).
const fn e8m0_half_bits(e: u8) -> u32 {
    if e < 2 {
        0x0020_0000 << e
    } else {
        ((e as u32) - 1) << 23
    }
}

/// [`e8m0_half_bits`] of every byte, as f32: ggml's x86 build reads the
/// same values from its `ggml_table_f32_e8m0_half`.
static E8M0_HALF: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut e = 0;
    while e < 256 {
        t[e] = f32::from_bits(e8m0_half_bits(e as u8));
        e += 1;
    }
    t
};

/// An MXFP4 block's E8M0 exponent byte to its scale for the doubled E2M1
/// values: `GGML_E8M0_TO_FP32_HALF(e)` = 2^(e−128), exact (a table lookup).
#[inline(always)]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    E8M0_HALF[usize::from(e)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounds_ties_to_even() {
        // 1 + 2^-11 is halfway between 1.0 and the next half (1 + 2^-10): even is 1.0.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even).
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(65520.0), 0x7c00, "overflow rounds to inf");
        assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001, "smallest subnormal");
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        assert_eq!(e8m0_to_f32_half(0).to_bits(), 0x0020_0000, "2^-128, subnormal");
        assert_eq!(e8m0_to_f32_half(1).to_bits(), 0x0040_0000, "2^-127, subnormal");
        assert_eq!(e8m0_to_f32_half(2), f32::MIN_POSITIVE, "2^-126");
        assert_eq!(e8m0_to_f32_half(127), 0.5);
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        assert_eq!(e8m0_to_f32_half(255), 2f32.powi(127), "E8M0 NaN is not special in ggml");
        for e in 0..=255u8 {
            let want = 2f64.powi(i32::from(e) - 128);
            assert_eq!(f64::from(e8m0_to_f32_half(e)), want, "e = {e}");
        }
    }

    #[test]
    fn bf16_rounding_matches_ggml() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        // Halfway cases: 0x3f80_8000 ties to even (down), 0x3f81_8000 ties up.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(
            f32_to_bf16(f32::from_bits(0x7f7f_ffff)),
            0x7f80,
            "max finite rounds to inf"
        );
        assert_eq!(
            f32_to_bf16(f32::from_bits(0x7f80_0001)),
            0x7fc0,
            "signalling NaN made quiet"
        );
        assert_eq!(f32_to_bf16(f32::from_bits(0xffc1_2345)), 0xffc1);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
    }
}
