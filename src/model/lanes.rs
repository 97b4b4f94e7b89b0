//! ggml's horizontal reductions of its 16-lane (AVX-512) accumulators, in
//! their exact order: shared by the softmax, the f32 dot product and both
//! attention paths.

/// The sum of 16 lanes in the order of `_mm512_reduce_add_ps`: halves,
/// then quarters, then pairs.
pub fn reduce16(v: &[f32; 16]) -> f32 {
    let mut t = [0.0f32; 8];
    for i in 0..8 {
        t[i] = v[i] + v[i + 8];
    }
    let q = [t[0] + t[4], t[1] + t[5], t[2] + t[6], t[3] + t[7]];
    let p = [q[0] + q[2], q[1] + q[3]];
    p[0] + p[1]
}

/// Folds ggml's four 16-lane accumulators: (a0 + a2) + (a1 + a3), lane-wise.
pub fn fold64(acc: &[f32; 64]) -> [f32; 16] {
    let mut lanes = [0.0f32; 16];
    for (i, l) in lanes.iter_mut().enumerate() {
        *l = (acc[i] + acc[32 + i]) + (acc[16 + i] + acc[48 + i]);
    }
    lanes
}
