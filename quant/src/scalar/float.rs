//! F32·F32 in the order of llama.cpp's x86 AVX-512 build, which every
//! tier follows bit for bit ([`dot_f32`]); F16·F16 and BF16·BF16: each
//! product in f32, summed in f64 (ggml's non-SIMD `ggml_vec_dot_f16/bf16`,
//! whose accumulator is `ggml_float`).

fn dot_by(w: &[u8], a: &[u8], width: usize, to_f32: impl Fn(&[u8]) -> f32) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(width).zip(a.chunks_exact(width)) {
        sum += f64::from(to_f32(x) * to_f32(y));
    }
    sum as f32
}

/// An F32 matrix product's dot as llama.cpp's AVX-512 build takes it. For
/// lengths that are a multiple of 16 it multiplies with llamafile's
/// tinyBLAS at every batch size (decode steps too): one 16-lane FMA chain
/// per output, lane j over elements j, j + 16, …, then
/// `_mm512_reduce_add_ps` ([`reduce16`]). Other lengths go to
/// `ggml_vec_dot_f32`: four 16-lane chains per 64 elements, folded
/// `(a0 + a2) + (a1 + a3)`, reduced, then one scalar FMA per leftover.
pub(super) fn dot_f32(w: &[u8], a: &[u8], _n: usize) -> f32 {
    const CHUNK: usize = 64;
    let n = w.len().min(a.len()) / 4;
    let at = |b: &[u8], i: usize| f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    if n.is_multiple_of(16) {
        let mut acc = [0.0f32; 16];
        for c in (0..n).step_by(16) {
            for (j, l) in acc.iter_mut().enumerate() {
                *l = at(w, c + j).mul_add(at(a, c + j), *l);
            }
        }
        return reduce16(&acc);
    }
    // Whole 64-element chunks, then the rest, without a copy of the row.
    let (mut x, mut y) = ([0.0f32; CHUNK], [0.0f32; CHUNK]);
    let np = n / CHUNK * CHUNK;
    let mut acc = [0.0f32; CHUNK];
    for c in (0..np).step_by(CHUNK) {
        for j in 0..CHUNK {
            (x[j], y[j]) = (at(w, c + j), at(a, c + j));
        }
        for j in 0..CHUNK {
            acc[j] = x[j].mul_add(y[j], acc[j]);
        }
    }
    let lanes: [f32; 16] = core::array::from_fn(|i| (acc[i] + acc[32 + i]) + (acc[16 + i] + acc[48 + i]));
    let mut sum = reduce16(&lanes);
    for i in np..n {
        sum = at(w, i).mul_add(at(a, i), sum);
    }
    sum
}

/// The sum of 16 lanes in `_mm512_reduce_add_ps`'s order: halves, then
/// quarters, then pairs.
pub fn reduce16(v: &[f32; 16]) -> f32 {
    let t: [f32; 8] = core::array::from_fn(|i| v[i] + v[i + 8]);
    let q = [t[0] + t[4], t[1] + t[5], t[2] + t[6], t[3] + t[7]];
    (q[0] + q[2]) + (q[1] + q[3])
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
