//! F32·F32 and F16·F16 with `wide`: f32 lanes, two FMA chains; F16 is
//! converted 64 elements at a time through `half` (exact).

use wide::f32x8;

fn f32s(b: &[u8; 32]) -> f32x8 {
    f32x8::new(core::array::from_fn(|k| {
        f32::from_le_bytes([b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]])
    }))
}

pub(super) fn dot_f32(w: &[u8], a: &[u8], _n: usize) -> f32 {
    let n = w.len().min(a.len()) / 4;
    let nv = n / 8;
    let (wv, av) = (&w.as_chunks::<32>().0[..nv], &a.as_chunks::<32>().0[..nv]);
    let mut acc = [f32x8::ZERO; 2];
    for (k, (x, y)) in wv.iter().zip(av).enumerate() {
        acc[k % 2] = f32s(x).mul_add(f32s(y), acc[k % 2]);
    }
    let mut tail = 0.0f32;
    for e in 8 * nv..n {
        let v = |b: &[u8]| f32::from_le_bytes([b[4 * e], b[4 * e + 1], b[4 * e + 2], b[4 * e + 3]]);
        tail += v(w) * v(a);
    }
    (acc[0] + acc[1]).reduce_add() + tail
}

pub(super) fn dot_f16(w: &[u8], a: &[u8], _n: usize) -> f32 {
    const CHUNK: usize = 64;
    let n = w.len().min(a.len()) / 2;
    let (mut wf, mut af) = ([0.0f32; CHUNK], [0.0f32; CHUNK]);
    let mut acc = [f32x8::ZERO; 2];
    let mut tail = 0.0f32;
    for (wc, ac) in w[..2 * n].chunks(2 * CHUNK).zip(a[..2 * n].chunks(2 * CHUNK)) {
        let k = wc.len() / 2;
        crate::fp::f16_bytes_to_f32(wc, &mut wf[..k]);
        crate::fp::f16_bytes_to_f32(ac, &mut af[..k]);
        let (wv, wt) = wf[..k].as_chunks::<8>();
        let (av, at) = af[..k].as_chunks::<8>();
        for (v, (x, y)) in wv.iter().zip(av).enumerate() {
            acc[v % 2] = f32x8::new(*x).mul_add(f32x8::new(*y), acc[v % 2]);
        }
        for (x, y) in wt.iter().zip(at) {
            tail += x * y;
        }
    }
    (acc[0] + acc[1]).reduce_add() + tail
}
