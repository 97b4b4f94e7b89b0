//! F32·F32, F16·F16, BF16·BF16: each product in f32, summed in f64 (ggml's
//! non-SIMD `ggml_vec_dot_f32/f16/bf16`, whose accumulator is `ggml_float`).

fn dot_by(w: &[u8], a: &[u8], width: usize, to_f32: impl Fn(&[u8]) -> f32) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(width).zip(a.chunks_exact(width)) {
        sum += f64::from(to_f32(x) * to_f32(y));
    }
    sum as f32
}

pub(super) fn dot_f32(w: &[u8], a: &[u8], _n: usize) -> f32 {
    dot_by(w, a, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(super) fn dot_f16(w: &[u8], a: &[u8], _n: usize) -> f32 {
    const CHUNK: usize = 64;
    let (mut wf, mut af) = ([0.0f32; CHUNK], [0.0f32; CHUNK]);
    let mut sum = 0.0f64;
    for (wc, ac) in w.chunks(2 * CHUNK).zip(a.chunks(2 * CHUNK)) {
        let k = wc.len() / 2;
        crate::fp::f16_bytes_to_f32(wc, &mut wf[..k]);
        crate::fp::f16_bytes_to_f32(ac, &mut af[..k]);
        for (x, y) in wf[..k].iter().zip(&af[..k]) {
            sum += f64::from(x * y);
        }
    }
    sum as f32
}

pub(super) fn dot_bf16(w: &[u8], a: &[u8], _n: usize) -> f32 {
    dot_by(w, a, 2, |b| {
        crate::fp::bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))
    })
}
