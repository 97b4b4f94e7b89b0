//! The vectorized `expf` of the attention kernels (`moe::model::libm_exp`)
//! gives the C library's bits, which keeps attention bit-identical to the
//! scalar reference and to llama.cpp (whose CPU flash attention calls
//! `expf`). Exhaustive over [−103.9, 88.7] on the dev machine (2.24e9
//! floats, 0 differences); here a strided sweep of the same range, every
//! float near the underflow and overflow edges, and the special values.

use moe::model::libm_exp::{exp_in_place, mismatches, vector_matches_libm};

#[test]
fn vector_exp_gives_libms_bits() {
    // On x86-64 Linux with glibc and AVX2/FMA the vector path must be the
    // one in use: a silent fall back to scalar would lose its speed.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert!(vector_matches_libm(), "the vector expf does not match this glibc's");
    }
    if !vector_matches_libm() {
        eprintln!("exp_libm: no vector expf here (CPU or C library); f32::exp is used and there is nothing to compare");
        return;
    }
    // A prime stride over every float of the range (about 15M values).
    let bad = mismatches(-104.5, 89.5, 151);
    assert!(bad.is_empty(), "{} differences, first {:?}", bad.len(), &bad[..bad.len().min(5)]);
    // Every float within 2^16 ulps of the edges where expf becomes 0 or inf.
    for edge in [-103.972_08f32, 88.722_83, -87.336_55] {
        let (a, b) = (f32::from_bits(edge.to_bits() - (1 << 16)), f32::from_bits(edge.to_bits() + (1 << 16)));
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let bad = mismatches(lo, hi, 1);
        assert!(bad.is_empty(), "near {edge}: {:?}", &bad[..bad.len().min(5)]);
    }
    // Specials, at every lane of a vector and in the scalar tail.
    for special in [0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45] {
        for len in [1usize, 7, 8, 9, 17] {
            for at in 0..len {
                let mut x: Vec<f32> = (0..len).map(|i| -(i as f32) * 0.37).collect();
                x[at] = special;
                let want: Vec<f32> = x.iter().map(|v| v.exp()).collect();
                exp_in_place(&mut x);
                for (g, w) in x.iter().zip(&want) {
                    assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{special} at {at} of {len}: {g} vs {w}");
                }
            }
        }
    }
}
