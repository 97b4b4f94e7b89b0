//! Element-wise and normalisation operations of the forward pass, with the
//! float order of ggml's CPU ops so that results land close to llama.cpp's.

/// `out = x / sqrt(mean(x²) + eps) * w`. ggml sums the squares (each
/// computed in f32) in f64, then scales in f32.
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(w) {
        *o = xi * scale * wi;
    }
}

/// Precomputed cos/sin for "normal" (adjacent-pair) RoPE at one position.
/// ggml builds θ by repeated f32 multiplication: θ₀ = pos, θᵢ₊₁ = θᵢ·s
/// with s = base^(−2/head_dim).
pub fn rope_cache(cache: &mut [f32], pos: usize, head_dim: usize, base: f32) {
    let theta_scale = base.powf(-2.0 / head_dim as f32);
    let mut theta = pos as f32;
    for pair in cache[..head_dim].chunks_exact_mut(2) {
        pair[0] = theta.cos();
        pair[1] = theta.sin();
        theta *= theta_scale;
    }
}

/// Rotates each adjacent pair `(x[2i], x[2i+1])` of every head in `x`.
pub fn rope_apply(x: &mut [f32], cache: &[f32], head_dim: usize) {
    for head in x.chunks_exact_mut(head_dim) {
        for (pair, cs) in head.chunks_exact_mut(2).zip(cache.chunks_exact(2)) {
            let (x0, x1) = (pair[0], pair[1]);
            pair[0] = x0 * cs[0] - x1 * cs[1];
            pair[1] = x0 * cs[1] + x1 * cs[0];
        }
    }
}

/// In-place softmax as ggml computes it: max, exp(x − max), sum in f64,
/// then multiply by the f32 reciprocal.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// SiLU(x) = x / (1 + e^(−x)).
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `gate[i] = SiLU(gate[i]) · up[i]` (SwiGLU).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// Plain f32 dot product (attention scores and weighted value sums).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_definition() {
        let x = [1.0f32, -2.0, 3.0, 0.5];
        let w = [1.0f32, 2.0, 0.5, -1.0];
        let mut out = [0.0f32; 4];
        rms_norm(&mut out, &x, &w, 1e-5);
        let ms = (1.0 + 4.0 + 9.0 + 0.25) / 4.0;
        for i in 0..4 {
            let want = x[i] as f64 / (ms + 1e-5f64).sqrt() * w[i] as f64;
            assert!((out[i] as f64 - want).abs() < 1e-6, "{i}: {} vs {want}", out[i]);
        }
    }

    #[test]
    fn rope_rotates_pairs_by_position_times_frequency() {
        let head_dim = 8;
        let base = 10_000.0f32;
        let pos = 3;
        let mut cache = vec![0.0; head_dim];
        rope_cache(&mut cache, pos, head_dim, base);
        let mut x: Vec<f32> = (0..head_dim).map(|i| i as f32 + 1.0).collect();
        let orig = x.clone();
        rope_apply(&mut x, &cache, head_dim);
        for i in 0..head_dim / 2 {
            let theta = pos as f64 * (base as f64).powf(-2.0 * i as f64 / head_dim as f64);
            let (a, b) = (orig[2 * i] as f64, orig[2 * i + 1] as f64);
            assert!((x[2 * i] as f64 - (a * theta.cos() - b * theta.sin())).abs() < 1e-4);
            assert!((x[2 * i + 1] as f64 - (a * theta.sin() + b * theta.cos())).abs() < 1e-4);
        }
        // Position 0 is the identity.
        rope_cache(&mut cache, 0, head_dim, base);
        let mut y = orig.clone();
        rope_apply(&mut y, &cache, head_dim);
        assert_eq!(y, orig);
    }

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let mut x = [1.0f32, 2.0, 3.0, -100.0];
        softmax(&mut x);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0, -100.0].iter().map(|v| (v - 3.0).exp()).collect();
        let s: f64 = e.iter().sum();
        for i in 0..4 {
            assert!((x[i] as f64 - e[i] / s).abs() < 1e-7);
        }
    }

    #[test]
    fn silu_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.7310586).abs() < 1e-6);
        assert!((silu(-2.0) - (-0.23840584)).abs() < 1e-6);
    }
}
