//! Element-wise and normalisation operations of the forward pass, with the
//! float order of ggml's CPU ops so that results land close to llama.cpp's.

use super::fma::fma_dispatch;
pub use crate::config::Yarn;

/// `1 / sqrt(mean(x²) + eps)`: ggml sums the squares (each computed in
/// f32) in f64, then takes the mean and the scale in f32.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `out = x / sqrt(mean(x²) + eps) * w`, scaled in f32 as ggml does.
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(w) {
        *o = xi * scale * wi;
    }
}

/// `x = x / sqrt(mean(x²) + eps) * w` in place, as [`rms_norm`] (the QK
/// norms run on the projection's output where it lies).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for (xi, &wi) in x.iter_mut().zip(w) {
        *xi = *xi * scale * wi;
    }
}

/// How θ is made for each dimension pair: ggml's `ggml_rope_cache_init`.
#[derive(Debug, Clone, Copy)]
pub struct RopeFreqs<'a> {
    pub base: f32,
    /// Linear scaling: θ is multiplied by this (1: none).
    pub freq_scale: f32,
    /// Every cos and sin is multiplied by this (1: none).
    pub mscale: f32,
    /// YaRN's ramp between extrapolated and interpolated θ.
    pub yarn: Option<Yarn>,
    /// Llama 3's per-pair factors (`rope_freqs.weight`): θ is divided by them.
    pub factors: Option<&'a [f32]>,
}

impl RopeFreqs<'_> {
    /// No scaling, no factors.
    pub fn plain(base: f32) -> RopeFreqs<'static> {
        RopeFreqs { base, freq_scale: 1.0, mscale: 1.0, yarn: None, factors: None }
    }
}

/// Precomputed (cos, sin) of each dimension pair at one position, for
/// either pairing. ggml builds θ by repeated f32 multiplication:
/// θ₀ = pos, θᵢ₊₁ = θᵢ·s with s = base^(−2/head_dim); pair i then uses
/// `freq_scale · (θᵢ / factor_i)` (both exact when 1), or with YaRN
/// (`rope_yarn`) a mix of that and the unscaled `θᵢ / factor_i` by the
/// ramp at pair i; cos and sin are then multiplied by `mscale`.
pub fn rope_cache(cache: &mut [f32], pos: usize, head_dim: usize, f: RopeFreqs<'_>) {
    let theta_scale = f.base.powf(-2.0 / head_dim as f32);
    let mut theta = pos as f32;
    for (i, pair) in cache[..head_dim].chunks_exact_mut(2).enumerate() {
        let ff = f.factors.map_or(1.0, |x| x[i]);
        let extrap = theta / ff;
        let interp = f.freq_scale * extrap;
        let t = match f.yarn {
            None => interp,
            Some(y) => {
                let ramp = (i as f32 - y.corr_dims[0]) / (y.corr_dims[1] - y.corr_dims[0]).max(0.001);
                let mix = (1.0 - ramp.clamp(0.0, 1.0)) * y.ext_factor;
                // GCC contracts `interp·(1 − mix) + extrap·mix` into one FMA.
                interp.mul_add(1.0 - mix, extrap * mix)
            }
        };
        pair[0] = t.cos() * f.mscale;
        pair[1] = t.sin() * f.mscale;
        theta *= theta_scale;
    }
}

fma_dispatch! {
    /// Rotates each adjacent pair `(x[2i], x[2i+1])` of every head in `x`
    /// (GGML_ROPE_TYPE_NORMAL). GCC contracts ggml's `x0·cos − x1·sin` and
    /// `x0·sin + x1·cos` into FMAs (its default `-ffp-contract=fast`); these
    /// are the contractions it chose, checked bit for bit against llama.cpp's
    /// RoPE output.
    pub fn rope_apply(x: &mut [f32], cache: &[f32], head_dim: usize) {
        for head in x.chunks_exact_mut(head_dim) {
            for (pair, cs) in head.chunks_exact_mut(2).zip(cache.chunks_exact(2)) {
                let (x0, x1) = (pair[0], pair[1]);
                let (cos, sin) = (cs[0], cs[1]);
                pair[0] = x0.mul_add(cos, -(x1 * sin));
                pair[1] = x0.mul_add(sin, x1 * cos);
            }
        }
    }
}

fma_dispatch! {
    /// Rotates each pair `(x[i], x[i + head_dim/2])` of every head in `x`
    /// (GGML_ROPE_TYPE_NEOX), with pair i's angle; the same `rotate_pairs`
    /// code as the normal pairing in ggml, so the same contractions.
    pub fn rope_apply_neox(x: &mut [f32], cache: &[f32], head_dim: usize) {
        let half = head_dim / 2;
        for head in x.chunks_exact_mut(head_dim) {
            let (lo, hi) = head.split_at_mut(half);
            for ((a, b), cs) in lo.iter_mut().zip(hi.iter_mut()).zip(cache.chunks_exact(2)) {
                let (x0, x1) = (*a, *b);
                let (cos, sin) = (cs[0], cs[1]);
                *a = x0.mul_add(cos, -(x1 * sin));
                *b = x0.mul_add(sin, x1 * cos);
            }
        }
    }
}

/// Lanes per vector in ggml's AVX-512 build, the build our reference
/// outputs come from: element-wise ops run 16 at a time with
/// [`vexp`], and a tail shorter than a vector falls back to libm `expf`.
const LANES: usize = 16;

/// e^x as ggml's vectorised `ggml_v_expf` computes it (the Arm
/// optimized-routines polynomial: max error ≈ 1.5 ulp), lane by lane.
/// Matching it bit for bit matters: SiLU and softmax feed activations that
/// are then quantized to 8 bits, and a one-ulp difference can move a value
/// across a rounding boundary.
#[inline(always)]
pub fn vexp(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 1.5·2^23: adding it rounds to an integer
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // x·log2(e) + r
    let n = z - r;
    // b = x − n·ln2, with ln2 split in two parts for accuracy.
    let b = (-n).mul_add(f32::from_bits(0x35bf_be8e), (-n).mul_add(f32::from_bits(0x3f31_7200), x));
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010)
        .mul_add(b, f32::from_bits(0x3d2b_9f17))
        .mul_add(u, f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)))
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // j·2^n with one rounding (AVX-512 `scalef`): exact in f64, then rounded.
    // n is an integer in [-192, 192], so 2^n is built from its exponent bits.
    let pow2 = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (j as f64 * pow2) as f32
}

fma_dispatch! {
    /// In-place softmax as ggml computes it: max, then exp(x − max) 16 lanes
    /// at a time with [`vexp`] (each vector's lanes summed in f32, the vector
    /// sums in f64), a shorter tail with libm `expf`, then a multiply by the
    /// f32 reciprocal of the sum.
    pub fn softmax(x: &mut [f32]) {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f64;
        let mut chunks = x.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            sum += exp_vector(chunk, max) as f64;
        }
        for v in chunks.into_remainder() {
            *v = (*v - max).exp();
            sum += *v as f64;
        }
        scale_by_reciprocal(x, sum);
    }
}

fma_dispatch! {
    /// Softmax over attention scores. llama.cpp pads the KV length to a
    /// multiple of 256 and masks the padding with −∞ (exp → 0), so every score
    /// goes through the vector path; this does the same with zero lanes. A
    /// sink (gpt-oss) joins as `ggml_soft_max_f32` adds it: the maximum
    /// includes it, and `expf(sink − max)` is added to the f64 sum.
    pub fn softmax_padded(x: &mut [f32], sink: Option<f32>) {
        let mut max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if let Some(s) = sink {
            max = max.max(s);
        }
        let mut sum = 0.0f64;
        for chunk in x.chunks_mut(LANES) {
            sum += exp_vector(chunk, max) as f64;
        }
        if let Some(s) = sink {
            sum += (s - max).exp() as f64;
        }
        scale_by_reciprocal(x, sum);
    }
}

/// One vector of softmax: `v = vexp(v − max)` for up to 16 values, and
/// their sum in `_mm512_reduce_add_ps` order (missing lanes count as 0).
#[inline(always)]
fn exp_vector(chunk: &mut [f32], max: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    for (l, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
        *v = vexp(*v - max);
        *l = *v;
    }
    super::lanes::reduce16(&lanes)
}

fn scale_by_reciprocal(x: &mut [f32], sum: f64) {
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// SiLU(x) = x / (1 + e^(−x)), with libm's exp (ggml's scalar tail).
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SiLU with [`vexp`] (ggml's vector path).
#[inline(always)]
fn vsilu(x: f32) -> f32 {
    x / (1.0 + vexp(0.0 - x))
}

fma_dispatch! {
    /// `gate[i] = SiLU(gate[i]) · up[i]` (SwiGLU), vector path for whole
    /// 16-lane vectors and the scalar SiLU for the tail, as ggml does.
    pub fn swiglu(gate: &mut [f32], up: &[f32]) {
        let whole = gate.len() / LANES * LANES;
        for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
            *g = if i < whole { vsilu(*g) * u } else { silu(*g) * u };
        }
    }
}

/// Adds `bias` to every row of `rows` (ggml_add: one f32 add each).
pub fn add_bias(rows: &mut [f32], bias: &[f32]) {
    for r in rows.chunks_exact_mut(bias.len()) {
        for (x, &b) in r.iter_mut().zip(bias) {
            *x += b;
        }
    }
}

/// gpt-oss's clamped SwiGLU's constants (`LLM_FFN_SWIGLU_OAI_MOE`).
const OAI_ALPHA: f32 = 1.702;
const OAI_LIMIT: f32 = 7.0;

/// `gate[i] = x·σ(α·x) · (y + 1)` with `x = min(gate[i], 7)`, `y =
/// clamp(up[i], −7, 7)`, α = 1.702: `ggml_swiglu_oai`, scalar with libm's
/// `expf` on every element.
pub fn swiglu_oai(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = g.min(OAI_LIMIT);
        let y = u.clamp(-OAI_LIMIT, OAI_LIMIT);
        let glu = x / (1.0 + (OAI_ALPHA * -x).exp());
        *g = glu * (y + 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swiglu_oai_clamps_and_gates() {
        let gate = [0.5f32, 9.0, -3.0, 2.0];
        let up = [1.0f32, 0.5, 20.0, -9.0];
        let mut out = gate;
        swiglu_oai(&mut out, &up);
        for i in 0..4 {
            let x = (gate[i] as f64).min(7.0);
            let y = (up[i] as f64).clamp(-7.0, 7.0);
            let want = x / (1.0 + (-1.702 * x).exp()) * (y + 1.0);
            assert!((out[i] as f64 - want).abs() < 1e-5 * want.abs().max(1.0), "{i}: {} vs {want}", out[i]);
        }
    }

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
        let freqs = RopeFreqs::plain(base);
        rope_cache(&mut cache, pos, head_dim, freqs);
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
        rope_cache(&mut cache, 0, head_dim, freqs);
        let mut y = orig.clone();
        rope_apply(&mut y, &cache, head_dim);
        assert_eq!(y, orig);
    }

    #[test]
    fn neox_rope_rotates_halves_with_scaled_and_factored_angles() {
        let (head_dim, base, pos) = (8, 10_000.0f32, 5);
        let factors = [1.0f32, 2.0, 4.0, 8.0];
        let freqs = RopeFreqs { freq_scale: 0.5, factors: Some(&factors), ..RopeFreqs::plain(base) };
        let mut cache = vec![0.0; head_dim];
        rope_cache(&mut cache, pos, head_dim, freqs);
        let orig: Vec<f32> = (0..2 * head_dim).map(|i| i as f32 * 0.3 - 1.0).collect();
        let mut x = orig.clone();
        rope_apply_neox(&mut x, &cache, head_dim);
        for h in 0..2 {
            for i in 0..head_dim / 2 {
                let theta = 0.5 * pos as f64 * (base as f64).powf(-2.0 * i as f64 / head_dim as f64) / factors[i] as f64;
                let (a, b) = (orig[h * head_dim + i] as f64, orig[h * head_dim + i + head_dim / 2] as f64);
                assert!((x[h * head_dim + i] as f64 - (a * theta.cos() - b * theta.sin())).abs() < 1e-4);
                assert!((x[h * head_dim + i + head_dim / 2] as f64 - (a * theta.sin() + b * theta.cos())).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn rms_norm_in_place_equals_rms_norm() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.77).sin()).collect();
        let w: Vec<f32> = (0..37).map(|i| 1.0 + i as f32 * 0.01).collect();
        let mut out = vec![0.0; 37];
        rms_norm(&mut out, &x, &w, 1e-6);
        let mut y = x.clone();
        rms_norm_in_place(&mut y, &w, 1e-6);
        assert_eq!(out, y);
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
    fn vexp_is_within_two_ulps_of_exp() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.0437;
            let (got, want) = (vexp(x), (x as f64).exp());
            let ulp = (want as f32).abs() * f32::EPSILON;
            assert!((got as f64 - want).abs() <= 2.0 * ulp as f64 + f32::MIN_POSITIVE as f64, "x={x}: {got} vs {want}");
        }
        assert_eq!(vexp(0.0), 1.0);
        assert_eq!(vexp(-200.0), 0.0);
        assert_eq!(vexp(200.0), f32::INFINITY);
    }

    #[test]
    fn silu_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.7310586).abs() < 1e-6);
        assert!((silu(-2.0) - (-0.23840584)).abs() < 1e-6);
    }
}
