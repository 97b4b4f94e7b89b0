//! `QMatrix`: checked construction, row access, and `matvec` equal to one
//! `vec_dot` per row (serial and rayon-parallel sizes), plus `Activations`.

mod common;

use common::{dequant, random_row, Rng};
use moe_quant::{quantize_activations, vec_dot, Activations, QMatrix, QType};

fn act_bytes(t: QType, x: &[f32]) -> Vec<u8> {
    let at = t.vec_dot_type();
    let mut a = vec![0u8; at.row_bytes_usize(x.len()).unwrap()];
    quantize_activations(at, x, &mut a);
    a
}

#[test]
fn matvec_equals_per_row_vec_dot() {
    let mut rng = Rng::new(21);
    // (type, rows, cols): small ones run serially, the big ones in parallel.
    let cases = [
        (QType::Q4_0, 7, 96),
        (QType::Q8_0, 33, 256),
        (QType::Q4_1, 5, 64),
        (QType::Q6_K, 9, 512),
        (QType::F16, 3, 40),
        (QType::Q4_K, 130, 4096), // 299,520 bytes: serial
        (QType::Q5_K, 257, 1024), // 180,928 bytes: serial
        (QType::Q6_K, 1001, 256), // 210,210 bytes: serial
        (QType::Q4_K, 301, 4096), // 693,504 bytes: parallel
        (QType::Q8_0, 601, 1024), // 653,888 bytes: parallel, last chunk partial
        (QType::MXFP4, 11, 224),    // 7 blocks: pairs and an odd last block
        (QType::MXFP4, 1201, 1056), // 33 blocks, 673,761 bytes: parallel
    ];
    for (t, rows, cols) in cases {
        let bytes = random_row(&mut rng, t, rows * cols);
        let m = QMatrix::new(t, rows, cols, &bytes).expect("valid shape");
        let x = rng.normals(cols, 1.0);
        let a = act_bytes(t, &x);
        let mut out = vec![f32::NAN; rows];
        m.matvec(&a, &mut out);
        for (r, &y) in out.iter().enumerate() {
            let want = vec_dot(t, m.row(r), &a, cols);
            assert_eq!(y.to_bits(), want.to_bits(), "{t} {rows}x{cols} row {r}");
        }
        // matvec_f32 quantizes into the scratch buffer and gives the same.
        let mut scratch = Activations::new();
        let mut out2 = vec![0.0; rows];
        m.matvec_f32(&x, &mut scratch, &mut out2);
        assert_eq!(scratch.act_type(), t.vec_dot_type());
        assert_eq!(scratch.n(), cols);
        assert_eq!(scratch.bytes(), &a[..]);
        assert!(
            out.iter()
                .zip(&out2)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{t} matvec_f32"
        );
    }
}

#[test]
fn matmul_equals_per_token_vec_dot_in_every_tier() {
    let mut rng = Rng::new(23);
    // (type, rows, cols, tokens): serial and parallel sizes, odd row counts
    // (partial 4-row groups and blocks), 1 token (the matvec path).
    let cases = [
        (QType::Q4_1, 7, 96, 3),
        (QType::Q8_0, 301, 576, 5),
        (QType::Q4_0, 65, 1024, 17),
        (QType::Q5_1, 33, 64, 2),
        (QType::Q4_K, 257, 512, 9),
        (QType::Q6_K, 41, 256, 1),
        (QType::F16, 19, 40, 4),
        (QType::Q2_K, 130, 768, 6),
        // 4×4 tiles plus leftover rows and tokens in every 32-element format.
        (QType::Q4_1, 37, 160, 9),
        (QType::Q5_0, 12, 96, 8),
        (QType::Q5_1, 9, 64, 5),
        (QType::Q4_0, 4, 32, 4),
        // K-quant tiles: leftover rows and tokens, one and several blocks.
        (QType::Q4_K, 13, 768, 11),
        (QType::Q5_K, 9, 256, 6),
        (QType::Q5_K, 20, 1280, 8),
        (QType::Q6_K, 7, 512, 5),
        (QType::Q6_K, 16, 256, 12),
        // Wide tiles (4 × 8) then 4 × 4 tiles then leftovers: 8 + 4 + 3.
        (QType::Q4_K, 10, 512, 15),
        (QType::Q5_K, 6, 768, 13),
        (QType::Q3_K, 8, 512, 4),
        (QType::Q3_K, 11, 768, 7),
        (QType::Q2_K, 13, 512, 9),
        // More activations than one L2-sized pass holds (~1 MB: 56 Q8_K
        // and 60 Q8_0 rows of 16384): a second pass with leftovers.
        (QType::Q4_K, 13, 16384, 61),
        (QType::Q8_0, 9, 16384, 63),
        // MXFP4 tiles (blocks in pairs): odd and even block counts, one
        // block (the odd one alone), leftover rows and tokens, two passes.
        (QType::MXFP4, 37, 224, 9),
        (QType::MXFP4, 12, 1056, 8),
        (QType::MXFP4, 9, 64, 5),
        (QType::MXFP4, 4, 32, 4),
        (QType::MXFP4, 7, 32, 13),
        (QType::MXFP4, 9, 16416, 63),
    ];
    for tier in moe_quant::available_tiers() {
        for (t, rows, cols, n) in cases {
            let bytes = random_row(&mut rng, t, rows * cols);
            let m = QMatrix::new(t, rows, cols, &bytes).expect("valid shape");
            let acts: Vec<Vec<u8>> = (0..n).map(|_| act_bytes(t, &rng.normals(cols, 1.0))).collect();
            let mut out = vec![f32::NAN; rows * n];
            m.matmul_with(tier, &acts.concat(), n, &mut out);
            for (j, a) in acts.iter().enumerate() {
                for r in 0..rows {
                    let want = moe_quant::vec_dot_with(tier, t, m.row(r), a, cols);
                    let got = out[j * rows + r];
                    assert_eq!(got.to_bits(), want.to_bits(), "{tier} {t} {rows}x{cols} token {j} row {r}");
                }
            }
        }
    }
}

#[test]
fn rows_are_the_right_slices() {
    let mut rng = Rng::new(22);
    let (t, rows, cols) = (QType::Q4_K, 4, 512);
    let bytes = random_row(&mut rng, t, rows * cols);
    let m = QMatrix::new(t, rows, cols, &bytes).unwrap();
    assert_eq!(m.row_bytes(), 288);
    assert_eq!(m.row(2), &bytes[576..864]);
    let mut y = vec![0.0; cols];
    m.dequantize_row(3, &mut y);
    assert_eq!(y, dequant(t, &bytes[864..], cols));
}

#[test]
fn new_rejects_mismatched_sizes() {
    let bytes = vec![0u8; 2 * 144];
    assert!(QMatrix::new(QType::Q4_K, 2, 256, &bytes).is_some());
    assert!(
        QMatrix::new(QType::Q4_K, 3, 256, &bytes).is_none(),
        "too few bytes"
    );
    assert!(
        QMatrix::new(QType::Q4_K, 1, 256, &bytes).is_none(),
        "too many bytes"
    );
    assert!(
        QMatrix::new(QType::Q4_K, 2, 128, &bytes[..144]).is_none(),
        "partial block"
    );
    assert!(
        QMatrix::new(QType::Q8_K, 1, 256, &[0u8; 292]).is_none(),
        "activation-only type"
    );
    assert!(
        QMatrix::new(QType::F32, usize::MAX, 2, &[]).is_none(),
        "overflow"
    );
    assert!(
        QMatrix::new(QType::F32, 0, 8, &[]).is_some(),
        "empty matrix"
    );
}

#[test]
#[should_panic(expected = "bytes, got")]
fn matvec_rejects_wrong_activation_length() {
    let bytes = vec![0u8; 2 * 18];
    let m = QMatrix::new(QType::Q4_0, 2, 32, &bytes).unwrap();
    m.matvec(&[0u8; 36], &mut [0.0; 2]); // Q8_1-sized, not Q8_0
}

#[test]
#[should_panic(expected = "slots")]
fn matvec_rejects_wrong_output_length() {
    let bytes = vec![0u8; 2 * 18];
    let m = QMatrix::new(QType::Q4_0, 2, 32, &bytes).unwrap();
    m.matvec(&[0u8; 34], &mut [0.0; 3]);
}

#[test]
fn activations_buffer_is_reused() {
    let mut rng = Rng::new(23);
    let mut acts = Activations::with_capacity(4096);
    let x = rng.normals(4096, 1.0);
    acts.quantize(QType::F32, &x);
    let ptr = acts.bytes().as_ptr();
    for t in [
        QType::Q8_K,
        QType::Q8_0,
        QType::Q8_1,
        QType::F16,
        QType::BF16,
        QType::F32,
    ] {
        acts.quantize(t, &x);
        assert_eq!(acts.bytes().len(), t.row_bytes_usize(4096).unwrap());
        assert_eq!(acts.bytes().as_ptr(), ptr, "{t}: no reallocation");
    }
}
