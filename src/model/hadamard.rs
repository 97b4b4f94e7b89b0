//! The Walsh–Hadamard rotation llama.cpp applies around a quantized KV
//! cache (its PR 21038, `attn_rot_k`/`attn_rot_v` in `llama-kv-cache.cpp`):
//! rotating spreads outliers over a head, so Q8_0 loses less. Both ends of
//! a dot product turn alike (an orthonormal H, `H·H = I`), so attention is
//! unchanged but for rounding:
//!
//! - keys of a quantized type, head size a multiple of 64: Q and K (after
//!   RoPE) are rotated in chunks of the largest power of two dividing the
//!   head size;
//! - values of a quantized type, head size a multiple of 64: V is rotated
//!   in chunks of 64 before it is stored, and the attention output rotated
//!   back (the same H) before the output projection.
//!
//! The rotation is ggml-cpu's fast transform (`ggml_compute_forward_fwht`):
//! each value scaled by `1/sqrtf(n)` first, then butterflies
//! `(u + v, u − v)` over strides 1, 2, 4, …; its SIMD passes compute
//! `u − v` as `fma(v, −1, u)`, the same single rounding.

/// The rotations a cache of key type `k_quantized`, value type
/// `v_quantized` and head size `head_dim` gets: (key chunk, value chunk).
pub fn rotations(k_quantized: bool, v_quantized: bool, head_dim: usize) -> (Option<usize>, Option<usize>) {
    let rotates = |quantized: bool| quantized && head_dim > 0 && head_dim.is_multiple_of(64);
    let key_chunk = 1 << head_dim.trailing_zeros();
    (rotates(k_quantized).then_some(key_chunk), rotates(v_quantized).then_some(64))
}

/// Rotates every `n`-value chunk of `x` (`n` a power of two dividing
/// `x.len()`).
pub fn rotate_chunks(x: &mut [f32], n: usize) {
    let scale = 1.0 / (n as f32).sqrt();
    for row in x.chunks_exact_mut(n) {
        for v in row.iter_mut() {
            *v *= scale;
        }
        let mut len = 1;
        while len < n {
            for block in row.chunks_exact_mut(2 * len) {
                let (lo, hi) = block.split_at_mut(len);
                for (u, v) in lo.iter_mut().zip(hi.iter_mut()) {
                    (*u, *v) = (*u + *v, *u - *v);
                }
            }
            len <<= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rotation equals the product with ggml's Hadamard matrix
    /// (`ggml_gen_hadamard`: `H[i][j] = (−1)^popcount(i & j) / sqrt(n)`)
    /// up to rounding, and applying it twice gives the input back.
    #[test]
    fn rotation_is_the_normalised_hadamard_product_and_its_own_inverse() {
        for n in [64usize, 128, 256] {
            let x: Vec<f32> = (0..2 * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            let mut y = x.clone();
            rotate_chunks(&mut y, n);
            for (xc, yc) in x.chunks(n).zip(y.chunks(n)) {
                for (i, &got) in yc.iter().enumerate() {
                    let want: f64 = xc.iter().enumerate().map(|(j, &v)| if (i & j).count_ones() % 2 == 0 { v as f64 } else { -v as f64 }).sum::<f64>() / (n as f64).sqrt();
                    assert!((got as f64 - want).abs() < 1e-4, "n {n}, {i}: {got} vs {want}");
                }
            }
            rotate_chunks(&mut y, n);
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() < 1e-4, "n {n}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn which_caches_rotate() {
        assert_eq!(rotations(true, true, 128), (Some(128), Some(64)));
        assert_eq!(rotations(true, false, 64), (Some(64), None));
        assert_eq!(rotations(false, true, 192), (None, Some(64)));
        assert_eq!(rotations(true, true, 192), (Some(64), Some(64)));
        assert_eq!(rotations(true, true, 32), (None, None));
        assert_eq!(rotations(false, false, 128), (None, None));
    }
}
